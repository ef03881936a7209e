"""A crawl worth a report, its ``--report`` file, and a screenshot of it in headless Chromium.

Serves four loopback hosts from one aiohttp app for about 40 seconds: 127.0.0.2 answers
fast, 127.0.0.3 slowly, 127.0.0.4 with a 429 (Retry-After: 3) to one request in eight, and
127.0.0.5 with some 404s and 503s. The crawl (polite defaults but 5 req/s per host) writes
``bench/results/report.html``; with Debian's ``chromium`` on the PATH the page is rendered to
``bench/results/report.png`` (the README shows it).

    python bench/report_demo.py [--seconds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")

SPIDER = """
from crawler import Spider

class Demo(Spider):
    name = "report-demo"
    start_urls = {starts!r}
    allowed_domains = {hosts!r}
    settings = {{"rate_limit": 5, "domain_concurrency": 2, "max_pages": {pages}, "obey_robots": False}}

    async def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        for request in response.follow_all(css="a"):
            yield request
"""


async def page(request: web.Request) -> web.Response:
    host = request.host.split(":")[0]
    n = int(request.match_info.get("n") or 0)
    rng = random.Random(f"{host}{n}")
    if host == "127.0.0.3":
        await asyncio.sleep(0.4)
    if host == "127.0.0.4" and rng.random() < 0.125:
        return web.Response(status=429, headers={"Retry-After": "3"}, text="slow down")
    if host == "127.0.0.5" and rng.random() < 0.1:
        return web.Response(status=rng.choice((404, 503)), text="no")
    links = "".join(f'<a href="/p/{rng.randrange(100_000)}">x</a>' for _ in range(8))
    return web.Response(text=f"<html><title>{host} {n}</title><body>{links}</body></html>", content_type="text/html")


async def main(seconds: float) -> int:
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    first = web.TCPSite(runner, HOSTS[0], 0)
    await first.start()
    port = runner.addresses[0][1]
    for host in HOSTS[1:]:
        await web.TCPSite(runner, host, port).start()
    work = Path(tempfile.mkdtemp(prefix="crawler-report-"))
    spider = work / "demo.py"
    starts = [f"http://{host}:{port}/" for host in HOSTS]
    spider.write_text(SPIDER.format(starts=starts, hosts=list(HOSTS), pages=int(seconds * 5 * len(HOSTS) * 0.8)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = RESULTS / "report.html"
    try:
        crawl = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "crawler", "run", str(spider), "-O", str(work / "items.jsonl"),
            "--report", str(report), "--no-progress", "--log-level", "WARNING", cwd=ROOT,
        )
        code = await crawl.wait()
    finally:
        await runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"report: {report} (crawl exit {code})")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no chromium on PATH (apt-get install chromium): no screenshot")
        return code
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--window-size=1000,2300", "--hide-scrollbars",
             f"--screenshot={RESULTS / 'report.png'}", report.as_uri()],
            check=True, capture_output=True, timeout=60,
        )
    print(f"screenshot: {RESULTS / 'report.png'}")
    return code


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=40, help="about how long the crawl runs (40)")
    sys.exit(asyncio.run(main(ap.parse_args().seconds)))
