"""Peak memory of a crawl that meets hostile bodies: does ``max_response_bytes`` bound it?

What it measures: the peak resident set size (RSS) of one crawl process that fetches a few good
pages plus one hostile body, served from a local aiohttp server on 127.0.0.1:

* ``gzip_bomb``: 1 GiB of zeros, gzip-compressed to about 1 MB and sent with
  ``Content-Encoding: gzip`` (the client inflates it);
* ``plain_200mib_chunked``: a 200 MiB plain body, generated on the fly with chunked transfer
  encoding (no Content-Length, so only the streaming cap can stop it);
* ``plain_200mib_length``: the same body announced by ``Content-Length`` (rejected from the header);
* ``both``: the bomb and the chunked body in one crawl (both in flight together);
* ``baseline``: the good pages only, for comparison (interpreter, imports, session).

Why: the downloader promises (DESIGN.md principle 6, ``_downloader.py``) that a body is read
under ``max_response_bytes`` (default 10 MiB) *after* decompression, so a bomb costs about the
cap, never its inflated size. A unit test can check the outcome (``too_large``); only a
separate process's peak RSS shows what the crawl really held in memory.

How: each crawl runs in its own child process (``--crawl SCENARIO``), so its peak RSS is its
own: the parent reaps it with ``os.wait4`` and reads ``ru_maxrss``; the child also reports its
own ``VmHWM`` from /proc as a cross-check. The server is another child (``--serve``), so its
memory is never counted. The parent itself imports nothing heavy: on Linux a child's
``ru_maxrss`` starts from its parent's peak at spawn time (the high-water mark survives
``exec``), so a big parent would inflate every figure; its own peak is in the JSON. Every crawl uses the default
``max_response_bytes`` with ``obey_robots: False`` and ``rate_limit: 0``. The outcome is
checked too: the hostile page must fail with ``too_large`` and every good page must give its
item. Exit status 1 if any check fails.

Run from the repository root::

    /tmp/venv/bin/python bench/hardening_memory.py [--json FILE] [--good-pages N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

MIB = 1024 * 1024
BOMB_INFLATED = 1024 * MIB  # 1 GiB of zeros before compression
BIG_BODY = 200 * MIB
CHUNK = 64 * 1024
CHILD_TIMEOUT_S = 45.0  # one crawl
TOTAL_BUDGET_S = 60.0  # the whole run: later crawls get what is left

# scenario -> the hostile paths it fetches besides the good pages
SCENARIOS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "gzip_bomb": ("/bomb",),
    "plain_200mib_chunked": ("/big",),
    "plain_200mib_length": ("/big-length",),
    "both": ("/bomb", "/big"),
}


# -- the server (its own process) ------------------------------------------------------------


def make_bomb() -> bytes:
    """gzip of 1 GiB of zeros, compressed chunk by chunk (never 1 GiB in memory): about 1 MB."""
    import zlib

    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits=31: gzip container
    zeros = bytes(MIB)
    parts = [compressor.compress(zeros) for _ in range(BOMB_INFLATED // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


def serve() -> None:
    """Serve on 127.0.0.1, print the port, run until stdin closes, then print what was sent."""
    import asyncio

    from aiohttp import web

    started = time.perf_counter()
    bomb = make_bomb()
    bomb_build_s = time.perf_counter() - started
    sent: dict[str, list[int]] = {}  # "scenario path" -> body bytes written, one entry per request
    filler = b"x" * CHUNK

    def page(i: int) -> str:
        words = " ".join(f"word{j}" for j in range(200))
        return f"<!DOCTYPE html><html><head><title>good {i}</title></head><body><p>{words}</p></body></html>"

    async def good(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        return web.Response(text=page(i), content_type="text/html")

    async def bomb_handler(request: web.Request) -> web.Response:
        sent.setdefault(_key(request), []).append(len(bomb))
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"})

    async def big(request: web.Request) -> web.StreamResponse:
        announce = request.path == "/big-length"
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if announce:
            response.content_length = BIG_BODY
        else:
            response.enable_chunked_encoding()
        written = 0
        try:
            await response.prepare(request)
            while written < BIG_BODY:
                await response.write(filler)
                written += len(filler)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: that is the point
        finally:
            sent.setdefault(_key(request), []).append(written)
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/good/{i}", good)
        app.router.add_get("/bomb", bomb_handler)
        app.router.add_get("/big", big)
        app.router.add_get("/big-length", big)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        print(json.dumps({"port": port, "bomb_bytes": len(bomb), "bomb_build_s": round(bomb_build_s, 2)}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
        await runner.cleanup()
        print(json.dumps({"sent": sent}), flush=True)

    asyncio.run(main())


def _key(request) -> str:
    """Which scenario's crawl asked for which hostile path (the crawl tags it with ``?run=``)."""
    return f"{request.query.get('run', '?')} {request.path}"


# -- one crawl (its own process) -------------------------------------------------------------


def crawl(scenario: str, port: int, good_pages: int) -> None:
    """Run one crawl and print its outcome as one JSON line."""
    import asyncio
    import logging

    from crawler import Crawler, Failure, Pipeline, Request, Response, Spider

    # The too_large failure is expected here; keep the table readable.
    logging.getLogger("crawler").setLevel(logging.ERROR)

    base = f"http://127.0.0.1:{port}"
    paths = [f"/good/{i}" for i in range(good_pages)]
    for n, bad in enumerate(SCENARIOS[scenario]):  # spread the hostile pages among the good ones
        paths.insert(min(len(paths), 1 + 2 * n), f"{bad}?run={scenario}")

    class MemorySpider(Spider):
        name = "hardening_memory"

        def __init__(self) -> None:
            super().__init__()
            self.failed: dict[str, str] = {}

        async def start(self):
            for path in paths:
                yield Request(base + path, errback=self.on_error, dont_filter=True)

        async def parse(self, response: Response):
            yield {"url": response.url, "bytes": len(response.body)}

        async def on_error(self, failure: Failure) -> None:
            self.failed[failure.url.removeprefix(base).split("?")[0]] = failure.reason

    class Keep(Pipeline):
        def __init__(self) -> None:
            self.items: list = []

        async def process_item(self, item, spider):
            self.items.append(item)
            return item

    spider, keep = MemorySpider(), Keep()
    crawler = Crawler(spider, {"obey_robots": False, "rate_limit": 0}, pipelines=[keep])
    started = time.perf_counter()
    stats = asyncio.run(crawler.run())
    elapsed = time.perf_counter() - started
    result = {
        "scenario": scenario,
        "elapsed_s": round(elapsed, 3),
        "max_response_bytes": crawler.settings.max_response_bytes,
        "pages": stats.pages,
        "items": len(keep.items),
        "good_pages": good_pages,
        "failures": stats.failures,
        "failed_urls": spider.failed,
        "close_reason": stats.close_reason,
        "body_bytes_kept": stats.bytes,
        "self_vmhwm_kib": _proc_status_kib("VmHWM"),
        "self_vmrss_end_kib": _proc_status_kib("VmRSS"),
    }
    print(json.dumps(result), flush=True)


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# -- the parent: start the server, run each crawl in a child, report ------------------------


def run_child(scenario: str, port: int, good_pages: int, deadline: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--crawl", scenario, "--port", str(port)]
    cmd += ["--good-pages", str(good_pages)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(max(min(CHILD_TIMEOUT_S, deadline - time.monotonic()), 1.0), proc.kill)
    timer.start()
    try:
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)  # reap it ourselves to get its rusage
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out.strip():
        return {"scenario": scenario, "error": f"child exited with {proc.returncode}", "peak_rss_kib": usage.ru_maxrss}
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_kib"] = usage.ru_maxrss  # Linux: KiB
    return result


def check(result: dict) -> list[str]:
    """What is wrong with a crawl's outcome (empty when it is as it should be)."""
    if "error" in result:
        return [result["error"]]
    problems = []
    bad_paths = SCENARIOS[result["scenario"]]
    if result["items"] != result["good_pages"]:
        problems.append(f"{result['items']} items for {result['good_pages']} good pages")
    if result["failures"].get("too_large", 0) != len(bad_paths):
        problems.append(f"failures {result['failures']}, expected too_large={len(bad_paths)}")
    for path in bad_paths:
        if result["failed_urls"].get(path) != "too_large":
            problems.append(f"{path} ended as {result['failed_urls'].get(path)!r}, not too_large")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--good-pages", type=int, default=5, help="good pages per crawl (default 5)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--crawl", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    if args.crawl:
        crawl(args.crawl, args.port, args.good_pages)
        return 0

    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        hello = json.loads(server.stdout.readline())
        deadline = time.monotonic() + TOTAL_BUDGET_S
        results = [run_child(scenario, hello["port"], args.good_pages, deadline) for scenario in SCENARIOS]
    finally:
        server.stdin.close()
        try:
            tail = server.stdout.read()
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            tail = ""
    sent = json.loads(tail.strip().splitlines()[-1])["sent"] if tail.strip() else {}

    baseline = next((r["peak_rss_kib"] for r in results if r["scenario"] == "baseline" and "error" not in r), None)
    print(
        f"gzip bomb: {BOMB_INFLATED // MIB} MiB inflated, {hello['bomb_bytes']:,} bytes on the wire "
        f"(built in {hello['bomb_build_s']} s); plain body: {BIG_BODY // MIB} MiB; "
        f"max_response_bytes = {results[0].get('max_response_bytes', 0) / MIB:g} MiB; {args.good_pages} good pages"
    )
    header = (
        f"{'scenario':<22} {'peak RSS':>9} {'VmHWM':>9} {'vs base':>8} {'pages':>5} {'items':>5} "
        f"{'server sent':>12} {'time':>6}  outcome"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for r in results:
        problems = check(r)
        failed = failed or bool(problems)
        rss = r["peak_rss_kib"] / 1024
        hwm = (r.get("self_vmhwm_kib") or 0) / 1024
        delta = f"{rss - baseline / 1024:+.1f}" if baseline is not None else "?"
        bad = SCENARIOS[r["scenario"]]
        r["server_sent_bytes"] = {p: sent.get(f"{r['scenario']} {p}", []) for p in bad}
        server_sent = sum(sum(writes) for writes in r["server_sent_bytes"].values())
        r["problems"] = problems
        outcome = "OK" if not problems else "FAIL: " + "; ".join(problems)
        if not problems and bad:
            outcome += f" (too_large x{len(bad)})"
        print(
            f"{r['scenario']:<22} {rss:>6.1f}MiB {hwm:>6.1f}MiB {delta:>8} {r.get('pages', '-'):>5} "
            f"{r.get('items', '-'):>5} {server_sent / MIB:>9.1f}MiB {r.get('elapsed_s', 0):>5.2f}s  {outcome}"
        )
    print(
        "peak RSS: the child's ru_maxrss from os.wait4; VmHWM: its own /proc high-water mark; "
        "server sent: body bytes the server wrote for the hostile path(s) before the client hung up"
    )
    if args.json:
        report = {
            "benchmark": "hardening_memory",
            "python": sys.version.split()[0],
            "bomb_inflated_bytes": BOMB_INFLATED,
            "bomb_wire_bytes": hello["bomb_bytes"],
            "big_body_bytes": BIG_BODY,
            "parent_maxrss_kib": _self_maxrss_kib(),
            "results": results,
        }
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
        print(f"wrote {args.json}")
    return 1 if failed else 0


def _self_maxrss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    sys.exit(main())
