"""The connection pool stays bounded in a broad crawl, and keeps a busy host's connection.

Real aiohttp servers on 127.0.0.1, one per port: each port is a host to the pool. Each
server records the client port of every request, so reuse and closes are seen from the
server side.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from crawler._connector import BoundedConnector, default_max_idle_hosts


async def _servers(count: int) -> tuple[list[web.AppRunner], list[str], list[list[int]]]:
    runners, urls, peers = [], [], []
    for _ in range(count):
        seen: list[int] = []

        async def handler(request: web.Request, seen: list[int] = seen) -> web.Response:
            seen.append(request.transport.get_extra_info("peername")[1])
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}/")
        peers.append(seen)
    return runners, urls, peers


async def test_idle_connections_are_kept_for_the_most_recent_hosts_only():
    runners, urls, peers = await _servers(6)
    connector = BoundedConnector(limit=16, max_idle_hosts=2)
    assert connector._bounded, "aiohttp's pool is not where the bound looks for it"
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            busy, others = urls[0], urls[1:]

            async def get(url: str) -> None:
                async with session.get(url) as response:
                    assert await response.text() == "ok"

            await asyncio.gather(get(busy), get(busy))  # the busy host keeps two connections
            for other in others:  # the busy host between every other host
                for url in (busy, other):
                    async with session.get(url) as response:
                        assert await response.text() == "ok"
            async with session.get(busy) as response:
                await response.read()
            idle_hosts = len(connector._conns)
            idle = sum(len(connections) for connections in connector._conns.values())
    finally:
        for runner in runners:
            await runner.cleanup()
    assert idle_hosts == 2 and idle == 3  # the busy host's two, and the last other host's one
    assert len(peers[0]) == 8 and len(set(peers[0])) == 2, "the busy host's two connections were reused every time"


async def test_the_default_bound_leaves_room_in_the_open_file_limit():
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    hosts = default_max_idle_hosts(128, 2)
    assert hosts >= 16
    if soft != resource.RLIM_INFINITY and soft > 600:
        assert 128 + 2 * hosts <= soft // 2 + 2


async def test_a_crawl_over_more_hosts_than_open_files_allow_finishes(tmp_path):
    # 250 hosts to the pool (one server per port), each an index and a page; the crawler
    # process may open 200 files. Unbounded, the idle keep-alive sockets (one per host) use
    # them up and later connections fail; bounded, the crawl finishes. (One host name: the
    # ports are one domain to politeness, hence its limits lifted.)
    import resource
    import sys

    hosts = 250
    runners, urls, _ = await _servers_with_pages(hosts)
    spider = tmp_path / "many.py"
    spider.write_text(
        "from crawler import Spider\n"
        "class Many(Spider):\n"
        f"    start_urls = {urls!r}\n"
        "    allowed_domains = ['127.0.0.1']\n"
        "    async def parse(self, response):\n"
        "        if response.url.endswith('/p'):\n"
        "            yield {'url': response.url}\n"
        "        for request in response.follow_all(css='a'):\n"
        "            yield request\n"
    )
    out = tmp_path / "items.jsonl"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "run", str(spider), "-O", str(out),
            "-s", "concurrency=64", "-s", "domain_concurrency=64", "-s", "rate_limit=0", "--log-level", "WARNING",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=low_limit,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        for runner in runners:
            await runner.cleanup()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert len(out.read_text().splitlines()) == hosts, stderr.decode()[-2000:]


async def _servers_with_pages(count: int) -> tuple[list[web.AppRunner], list[str], None]:
    runners, urls = [], []

    async def index(request: web.Request) -> web.Response:
        return web.Response(text='<a href="/p">p</a>', content_type="text/html")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p>leaf</p>", content_type="text/html")

    for _ in range(count):
        app = web.Application()
        app.router.add_get("/", index)
        app.router.add_get("/p", page)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/")
    return runners, urls, None
