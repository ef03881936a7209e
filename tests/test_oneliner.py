"""The crawler without asyncio (``crawl()``, ``fetch()``), ``python -m crawler fetch`` and
``-o -``. The site is served by another process (``python -m http.server``): a crawl called
from inside a running loop blocks that loop, as a notebook cell does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

import crawler
from crawler import RequestFailed, Response, Spider


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    anchors = "".join(f'<a href="/p{i}.html">{i}</a>' for i in range(8))
    (root / "index.html").write_text(f"<html><body>{anchors}</body></html>")  # no title: no item
    for i in range(8):
        (root / f"p{i}.html").write_text(f"<html><title>page {i}</title><body>{i}</body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private\n")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<html><title>docs</title></html>")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split(" port ")[1].split()[0])
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_spider(base: str) -> type[Spider]:
    class Pages(Spider):
        name = "pages"
        start_urls = [f"{base}/index.html"]
        settings = {"rate_limit": 0, "domain_concurrency": 4}

        async def parse(self, response: Response):
            title = response.css("title::text").get()
            if title:
                yield {"title": title}
            for request in response.follow_all(css="a"):
                yield request

    return Pages


def test_crawl_returns_the_items_from_a_plain_script(site):
    items = crawler.crawl(make_spider(site))
    assert sorted(item["title"] for item in items) == [f"page {i}" for i in range(8)]


def test_crawl_takes_settings_and_returns_the_stats_on_request(site):
    items, stats = crawler.crawl(make_spider(site)(), max_items=3, with_stats=True)
    assert len(items) == 3
    assert stats.close_reason == "max_items"


async def test_crawl_and_fetch_work_inside_a_running_loop_as_in_a_notebook(site):
    asyncio.get_running_loop()  # a loop runs here, as in a Jupyter cell: asyncio.run would refuse
    items = crawler.crawl(make_spider(site), max_items=2)
    response = crawler.fetch(f"{site}/p3.html")
    assert len(items) == 2
    assert response.status == 200
    assert response.css("title::text").get() == "page 3"


def test_fetch_returns_any_status_and_obeys_robots_txt(site):
    missing = crawler.fetch(f"{site}/nothing-here.html")
    assert missing.status == 404
    with pytest.raises(RequestFailed) as caught:
        crawler.fetch(f"{site}/private/page.html")
    assert caught.value.reason == "robots"


def test_the_fetch_command_prints_the_body_or_the_headers(site):
    command = [sys.executable, "-m", "crawler", "fetch"]
    body = subprocess.run([*command, f"{site}/p2.html"], capture_output=True, timeout=60)
    assert body.returncode == 0, body.stderr
    assert body.stdout == b"<html><title>page 2</title><body>2</body></html>"

    head = subprocess.run(
        [sys.executable, "-m", "crawler", "fetch", "--headers", f"{site}/p2.html"], capture_output=True, text=True,
        timeout=60,
    )
    assert head.returncode == 0
    assert head.stdout.startswith(f"HTTP 200 {site}/p2.html\n")
    assert "Content-type: text/html" in head.stdout or "Content-Type: text/html" in head.stdout

    refused = subprocess.run(
        [sys.executable, "-m", "crawler", "fetch", f"{site}/private/x.html"], capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "robots" in refused.stderr


def test_output_dash_writes_json_lines_to_stdout_and_logs_to_stderr(site, tmp_path):
    spider = tmp_path / "pages.py"
    spider.write_text(
        "from crawler import Spider\n\n"
        "class Pages(Spider):\n"
        f"    start_urls = [{site + '/index.html'!r}]\n"
        "    settings = {'rate_limit': 0}\n\n"
        "    async def parse(self, response):\n"
        "        title = response.css('title::text').get()\n"
        "        if title:\n"
        "            yield {'title': title}\n"
        "        for request in response.follow_all(css='a'):\n"
        "            yield request\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "crawler", "run", str(spider), "-o", "-"], capture_output=True, text=True, timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(item["title"] for item in items) == [f"page {i}" for i in range(8)]
    assert "crawl finished" in done.stderr
    assert not list(Path(tmp_path).glob("-*"))  # no file named "-"


def test_new_writes_a_spider_that_runs_and_a_test_that_passes(site, tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "crawler", "new", "my shop", f"{site}/index.html", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "my_shop.py").is_file() and (tmp_path / "test_my_shop.py").is_file()

    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_shop.py"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr

    crawled = subprocess.run(
        [sys.executable, "-m", "crawler", "run", "my_shop.py", "-o", "items.jsonl", "-s", "rate_limit=0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert crawled.returncode == 0, crawled.stderr
    titles = {json.loads(line)["title"] for line in (tmp_path / "items.jsonl").read_text().splitlines()}
    assert {f"page {i}" for i in range(8)} <= titles

    again = subprocess.run(
        [sys.executable, "-m", "crawler", "new", "my shop", f"{site}/", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 2 and "not overwriting" in again.stderr


def test_new_refuses_a_name_that_cannot_be_a_module(tmp_path):
    made = subprocess.run(
        [sys.executable, "-m", "crawler", "new", "class", "https://example.com/", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 2 and "module name" in made.stderr
    assert not list(tmp_path.iterdir())


def test_parse_runs_one_callback_on_one_page_and_prints_what_it_yields(site, tmp_path):
    spider = tmp_path / "pages.py"
    spider.write_text(
        "from crawler import Spider\n\n"
        "class Pages(Spider):\n"
        "    async def parse(self, response):\n"
        "        for request in response.follow_all(css='a'):\n"
        "            yield request.replace(callback=self.page)\n\n"
        "    async def page(self, response):\n"
        "        yield {'title': response.css('title::text').get()}\n"
    )
    index = subprocess.run(
        [sys.executable, "-m", "crawler", "parse", f"{site}/index.html", "--spider", str(spider)],
        capture_output=True, text=True, timeout=60,
    )
    assert index.returncode == 0, index.stderr
    assert "# 0 item(s)" in index.stdout and "# 8 request(s)" in index.stdout
    assert f"GET {site}/p0.html  (callback=page)" in index.stdout

    page = subprocess.run(
        [sys.executable, "-m", "crawler", "parse", f"{site}/p5.html", "--spider", str(spider), "-c", "page"],
        capture_output=True, text=True, timeout=60,
    )
    assert page.returncode == 0, page.stderr
    assert '{"title": "page 5"}' in page.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "crawler", "parse", f"{site}/p5.html", "--spider", str(spider), "-c", "nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 2 and "no callback 'nope'" in missing.stderr


def test_shell_fetches_the_page_and_answers_at_its_prompt(site):
    commands = "\n".join([
        'print("STATUS", response.status)',
        'print("TITLE", response.css("title::text").get())',
        f'_ = fetch("{site}/p6.html")',
        'print("NOW", response.css("title::text").get(), request.url.endswith("/p6.html"))',
        'print("VIEW", open(view(response)).read())',
        "",
    ])
    done = subprocess.run(
        [sys.executable, "-m", "crawler", "shell", f"{site}/p1.html"], input=commands, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "STATUS 200" in out
    assert "TITLE page 1" in out
    assert "NOW page 6 True" in out
    assert "VIEW <html><title>page 6</title><body>6</body></html>" in out
    assert "crawler shell: 200" in done.stdout + done.stderr


def test_fetch_follows_redirects(site):
    response = crawler.fetch(f"{site}/docs")  # http.server: 301 to /docs/ (a directory)
    assert response.status == 200
    assert response.url == f"{site}/docs/"
    assert response.css("title::text").get() == "docs"


def test_new_writes_a_url_into_the_source_as_data_never_as_code(tmp_path):
    evil = 'https://x.example/a"];import os;os.system("echo pwned");x=["'
    made = subprocess.run(
        [sys.executable, "-m", "crawler", "new", "evil", evil, "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    source = (tmp_path / "evil.py").read_text()
    namespace: dict = {}
    exec(compile(source, "evil.py", "exec"), namespace)  # would print "pwned" if the URL were code
    assert namespace["EvilSpider"].start_urls[0].startswith("https://x.example/a%22];import")


def test_an_interrupt_stops_a_crawl_started_inside_a_running_loop(site, tmp_path):
    import signal
    import time

    script = tmp_path / "notebook.py"
    parsed = tmp_path / "parsed.txt"
    script.write_text(
        "import asyncio, sys\n"
        "import crawler\n\n"
        "class Slow(crawler.Spider):\n"
        f"    start_urls = [{site + '/index.html'!r}]\n"
        "    settings = {'rate_limit': 0, 'domain_concurrency': 1}\n\n"
        "    async def parse(self, response):\n"
        f"        with open({str(parsed)!r}, 'a') as log:\n"
        "            log.write(response.url + '\\n')\n"
        "        await asyncio.sleep(0.5)\n"
        "        for request in response.follow_all(css='a'):\n"
        "            yield request\n\n"
        "async def cell():  # a notebook cell: a loop runs while crawl() blocks\n"
        "    print('started', flush=True)\n"
        "    try:\n"
        "        crawler.crawl(Slow)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n\n"
        "loop = asyncio.new_event_loop()  # as a kernel runs it: Ctrl-C is a KeyboardInterrupt\n"
        "loop.run_until_complete(cell())\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while not parsed.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "interrupted" in out, err
    assert len(parsed.read_text().splitlines()) < 9  # the crawl (index + 8 pages, 0.5 s each) was cut short


def test_output_dash_stops_the_crawl_when_the_reader_goes_away(tmp_path):
    from test_cli import SLOW_SHOP, write_spider

    spider = write_spider(tmp_path, SLOW_SHOP)  # 400 products, 0.2 s each
    proc = subprocess.Popen(
        [sys.executable, "-m", "crawler", "run", str(spider), "-o", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # `| head -1`: one line, then the pipe closes
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first["title"].startswith("Product")
    assert proc.returncode == 0, err
    assert "crawl stopped" in err  # stopped by the closed pipe, long before its 400 pages
    assert "Traceback" not in err and "BrokenPipe" not in err
