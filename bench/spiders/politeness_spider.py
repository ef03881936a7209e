"""The politeness scenario's spider: the bench site crawled on many host aliases at once.

``bench/run.py`` serves the same site on 127.0.0.2, 127.0.0.3, ... (one nginx, same port); this
spider starts at ``/p/0.html`` on each of ``hosts`` aliases and follows links within them (the
site's links are relative or host-relative, so each alias is crawled on its own). Each alias is
one domain for the crawler's per-domain limits, so with ``-s rate_limit=10`` and 50 aliases the
aggregate rate should be 500 requests/s, which the harness measures from nginx's access log.

Run::

    python -m crawler run bench/spiders/politeness_spider.py -O out.jsonl -a port=8080 -a hosts=50 \\
        -s rate_limit=10 -s domain_concurrency=4 -s concurrency=128 -s obey_robots=false -s max_pages=6000
"""

from crawler_spider import BenchSpider  # the same parse as the throughput crawl (same folder)


def alias_hosts(count: int, first: int = 2) -> list[str]:
    """``count`` loopback addresses from 127.0.0.<first> on (127.0.0.2 ... 127.0.0.51 for 50)."""
    if count < 1 or first < 1 or first + count - 1 > 254:
        raise ValueError(f"cannot make {count} aliases from 127.0.0.{first}")
    return [f"127.0.0.{first + k}" for k in range(count)]


class PolitenessSpider(BenchSpider):
    name = "politeness"

    def __init__(self, port: str = "8080", hosts: str = "50", first: str = "2", **kwargs) -> None:
        super().__init__(**kwargs)
        names = alias_hosts(int(hosts), int(first))
        self.start_urls = [f"http://{host}:{int(port)}/p/0.html" for host in names]
        self.allowed_domains = names
