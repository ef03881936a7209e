"""The shared Redis frontier, measured: scaling with processes, politeness across them, memory.

From the repository root (``python bench/shared.py``; nginx and redis-server from Debian):

1. **Scaling.** The 20,000-page bench site (``bench/site.py``, served by nginx as in
   ``bench/run.py``) crawled, alternately, ``--runs`` times each by:

   * ``memory``: one process, the in-memory frontier (the baseline);
   * ``redis-1``: the same command with ``--frontier redis://...`` (one worker);
   * ``redis-2``: that command started twice at once (two workers of one crawl), with 64
     connections to the host per worker, as the one process has: ``domain_concurrency`` is
     the whole crawl's, so it is 128 here (the README's advice for one big site: at least
     the workers' ``concurrency`` together);
   * ``redis-2-split``: two workers sharing the one process's 64 connections to the host
     (``domain_concurrency=64``: 32 each).

   Every command is the one a user types, with ``-s concurrency=64 -s domain_concurrency=64
   -s rate_limit=0 -s obey_robots=false`` (128 for ``redis-2``). Wall time from the first
   spawn to the last exit, CPU of the workers, of redis-server and of nginx, Redis commands
   per page (``INFO stats``) and adds to the seen-set (``SADD`` calls: a URL sent again by a
   second worker is one more). Every run must produce exactly the site's items across
   its outputs (count, one per page, price digest), each crawl under a fresh ``--crawl-id``.
2. **Politeness with two workers.** Both workers on the 50 host aliases at ``rate_limit=10``:
   the target is 500 requests/s in total, measured from nginx's own timestamps over the
   middle of the crawl (within 5 %), and no host above its rate: at most 10.2 requests/s over
   that window, and at most 11 in any one second (the 11th at the window's edge).
3. **Memory.** ``used_memory`` of an empty Redis, then after queueing ``--queue`` requests
   shaped like the site's links (100,000): bytes per seen URL (the seen-set's keys, ``MEMORY
   USAGE``) and per queued URL (the rest of the growth).

``--quick`` is 5,000 pages and 2 runs each. Results go to ``bench/results/shared.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

RESULTS = bench.BENCH / "results" / "shared.json"
#: kind -> (workers, on Redis, the crawl's domain_concurrency); every worker has concurrency 64
KINDS = {
    "memory": (1, False, 64),
    "redis-1": (1, True, 64),
    "redis-2": (2, True, 128),
    "redis-2-split": (2, True, 64),
}


class Redis:
    """redis-server on 127.0.0.1 and a free port, persistence off, for this bench only."""

    def __init__(self, work: Path, exe: str | None = None) -> None:
        self.port = bench.free_port()
        exe = exe or shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(work)],
            stdout=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        while not bench._can_connect("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def info(self, section: str) -> dict[str, str]:
        text = subprocess.run(
            ["redis-cli", "-p", str(self.port), "INFO", section], capture_output=True, text=True, check=True
        ).stdout
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def command_calls(self, command: str) -> int:
        """Calls of ``command`` so far (``INFO commandstats``; from Lua scripts too)."""
        stats = self.info("commandstats").get(f"cmdstat_{command}", "calls=0")
        return int(stats.split(",")[0].split("=")[1])

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def crawl_command(
    python: str, url: str, out: Path, frontier: str | None, crawl_id: str, domain_concurrency: int = 64
) -> list[str]:
    cmd = [python, "-m", "crawler", "run", "bench/spiders/crawler_spider.py", "-O", str(out),
           "-s", "concurrency=64", "-s", f"domain_concurrency={domain_concurrency}", "-s", "rate_limit=0",
           "-s", "obey_robots=false", "-a", f"base={url}", "--log-level", "WARNING"]
    if frontier:
        cmd += ["--frontier", frontier, "--crawl-id", crawl_id]
    return cmd


def run_workers(cmds: list[list[str]], work: Path, tag: str, timeout: float) -> dict[str, Any]:
    """Start every command at once; wall time to the last exit, summed CPU, exit codes."""
    started = time.perf_counter()
    procs = []
    for k, cmd in enumerate(cmds):
        with open(work / f"{tag}-{k}.log", "wb") as log:
            procs.append(subprocess.Popen(cmd, cwd=bench.REPO, stdout=subprocess.DEVNULL, stderr=log))
    killer = threading.Timer(timeout, lambda: [p.kill() for p in procs])
    killer.start()
    cpu, codes = 0.0, []
    try:
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            codes.append(proc.returncode)
    finally:
        killer.cancel()
    return {"wall_s": time.perf_counter() - started, "cpu_s": cpu, "exit_codes": codes}


def scaling(args: argparse.Namespace, nginx: Any, redis: Redis, manifest: dict, work: Path) -> dict[str, Any]:
    url = f"http://127.0.0.1:{nginx.port}/index.html"
    pages = manifest["pages"]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    print(f"\nscaling: {pages:,} pages, concurrency 64 per worker")
    for k in range(1, args.runs + 1):
        for kind, (workers, on_redis, host_connections) in KINDS.items():
            tag = f"{kind}-{k}"
            frontier = redis.url if on_redis else None
            outs = [work / f"{tag}-{n}.jsonl" for n in range(workers)]
            cmds = [crawl_command(args.python, url, out, frontier, tag, host_connections) for out in outs]
            before = redis.info("stats")
            adds_before = redis.command_calls("sadd")
            redis_cpu, nginx_cpu = redis.cpu_s(), nginx.cpu_s()
            result = run_workers(cmds, work, tag, timeout=60 + pages / 50)
            after = redis.info("stats")
            # Adds to the seen-set (intset SADDs, in the scripts): each URL once, plus one for
            # each time a worker sent a URL another worker had already queued.
            result["seen_adds"] = redis.command_calls("sadd") - adds_before
            result["redis_cpu_s"] = round(redis.cpu_s() - redis_cpu, 2)
            result["nginx_cpu_s"] = round((nginx.cpu_s() or 0) - (nginx_cpu or 0), 2)
            commands = int(after["total_commands_processed"]) - int(before["total_commands_processed"])
            result["redis_commands_per_page"] = round(commands / pages, 3)
            merged = work / f"{tag}.all.jsonl"
            with open(merged, "wb") as sink:
                for out in outs:
                    if out.exists():
                        sink.write(out.read_bytes())
            check = bench.benchsite.check_items(merged, manifest, digest=True)
            result["pages_per_s"] = round(pages / result["wall_s"], 1)
            result["ok"] = not check["problems"] and all(code == 0 for code in result["exit_codes"])
            result["problems"] = list(check["problems"])
            if kind != "memory":
                result["per_worker_items"] = [out.read_bytes().count(b"\n") if out.exists() else 0 for out in outs]
            runs[kind].append(result)
            verdict = "ok" if result["ok"] else f"FAILED {result['problems'][:2]} exit {result['exit_codes']}"
            print(
                f"  {tag:<15} {result['wall_s']:6.2f} s {result['pages_per_s']:8,.0f} pages/s"
                f"  CPU {result['cpu_s']:6.2f} s  redis CPU {result['redis_cpu_s']:5.2f} s"
                f"  nginx CPU {result['nginx_cpu_s']:5.2f} s  redis cmds/page {result['redis_commands_per_page']:.2f}"
                f"  seen adds {result['seen_adds']:,}"
                f"  items per worker {result.get('per_worker_items', '-')}  {verdict}",
                flush=True,
            )
    medians = {kind: statistics.median(r["pages_per_s"] for r in rs) for kind, rs in runs.items()}
    base = medians["memory"]
    summary = {
        kind: {"median_pages_per_s": m, "ratio_to_memory": round(m / base, 3)} for kind, m in medians.items()
    }
    for kind, line in summary.items():
        print(f"  {kind:<13} median {line['median_pages_per_s']:8,.0f} pages/s = {line['ratio_to_memory']:.2f}x memory")
    return {"runs": runs, "summary": summary, "ok": all(r["ok"] for rs in runs.values() for r in rs)}


def politeness(args: argparse.Namespace, nginx: Any, redis: Redis, work: Path) -> dict[str, Any]:
    hosts, rate = 50, 10
    target = hosts * rate
    print(f"\npoliteness: 2 workers, {hosts} hosts x rate_limit {rate}/s = {target} req/s")
    cmds = []
    for n in range(2):
        cmds.append([
            args.python, "-m", "crawler", "run", "bench/spiders/politeness_spider.py",
            "-O", str(work / f"pol-{n}.jsonl"),
            "-s", f"rate_limit={rate}", "-s", "domain_concurrency=4", "-s", "concurrency=64",
            "-s", "obey_robots=false", "-s", "max_pages=6000", "-a", f"port={nginx.port}", "-a", f"hosts={hosts}",
            "--frontier", redis.url, "--crawl-id", "politeness", "--log-level", "WARNING",
        ])
    nginx.clear_access_log()
    result = run_workers(cmds, work, "politeness", timeout=30 + 3 * 6000 / target)
    hits = bench._read_access_log(nginx.access_log)
    result.update(bench.steady_rate(hits, 0.1))
    observed = result.get("steady_req_per_s") or 0.0
    result["target_req_per_s"] = target
    result["ratio_to_target"] = round(observed / target, 4)
    worst = result.get("max_requests_one_host_any_1s", 0)
    fastest_host = (result.get("per_host_req_per_s") or {}).get("max", 0.0)
    # No host above its rate: over the window, and in any one second (nginx's millisecond
    # timestamps put an 11th request of an even 10/s at the edge of some windows; the
    # single-process bench sees the same).
    result["ok"] = (
        abs(observed - target) <= 0.05 * target
        and fastest_host <= rate * 1.02
        and worst <= rate + 1
        and all(code == 0 for code in result["exit_codes"])
    )
    print(
        f"  {observed:.1f} req/s over the middle of the crawl = {observed / target:.1%} of {target}; per host "
        f"{result.get('per_host_req_per_s')}; most requests to one host in any 1 s: {worst}  "
        f"{'ok' if result['ok'] else 'FAILED'}"
    )
    return result


def memory(args: argparse.Namespace, redis: Redis) -> dict[str, Any]:
    """Bytes per seen and per queued URL, queueing requests shaped like the site's links."""
    from crawler import Request, Settings, Spider
    from crawler._shared import SharedCrawl

    class Probe(Spider):
        name = "memory"

        async def parse(self, response):  # pragma: no cover - never crawls
            return None

    async def fill() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        shared = SharedCrawl(Probe(), Settings(frontier=redis.url, crawl_id="memory"), [], loop.time)
        await shared._client.flushall()
        before = int(redis.info("memory")["used_memory"])
        await shared.join()
        for start in range(0, args.queue, 2000):
            for i in range(start, min(start + 2000, args.queue)):
                request = Request(f"http://127.0.0.1:8080/p/{i}.html", callback=None)
                request.depth = 3
                request.domain = "127.0.0.1"
                shared.store.push(request, loop.time())
            await shared.store.sync(0)
        after = int(redis.info("memory")["used_memory"])
        keys = [key async for key in shared._client.scan_iter(match="crawler:{memory}:seen:*", count=1000)]
        seen_bytes = 0
        for key in keys:
            seen_bytes += int(await shared._client.memory_usage(key, samples=0) or 0)
        await shared._client.aclose()
        n = args.queue
        return {
            "queued": n,
            "used_memory_growth": after - before,
            "seen_keys": len(keys),
            "bytes_per_seen_url": round(seen_bytes / n, 2),
            "bytes_per_queued_url": round((after - before - seen_bytes) / n, 2),
        }

    result = asyncio.run(fill())
    print(
        f"\nmemory: {result['queued']:,} requests queued: {result['bytes_per_seen_url']} B per seen URL "
        f"({result['seen_keys']} intset keys), {result['bytes_per_queued_url']} B per queued URL"
    )
    result["ok"] = result["bytes_per_seen_url"] <= 16 and result["bytes_per_queued_url"] <= 200
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5,000 pages, 2 runs each")
    parser.add_argument("--queue", type=int, default=100_000, help="requests queued for the memory figure")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--server", help="the server binary (default redis-server; valkey-server, say)")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--no-politeness", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.pages, args.runs = 5_000, 2
    nginx_bin = bench.find_nginx(None)
    if not nginx_bin or not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        print("bench: needs nginx and redis-server (apt-get install -y nginx-light redis-server)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="crawler-bench-shared-"))
    children = bench.Children()
    nginx = redis = None
    previous = signal.signal(signal.SIGTERM, bench._on_sigterm)
    try:
        root = Path(tempfile.gettempdir()) / "crawler-bench"
        site_args = argparse.Namespace(pages=args.pages, seed=7, site_root=root)
        site, manifest, _ = bench._ensure_site_in_child(site_args, children, work)
        bench._warm_page_cache(site)
        aliases = [f"127.0.0.{bench.ALIAS_FIRST + k}" for k in range(50)]
        (work / "nginx").mkdir()
        nginx = bench.Nginx(nginx_bin, site, bench.free_port(), aliases, work / "nginx", children)
        nginx.start()
        redis = Redis(work, args.server)
        server = redis.info("server")
        report: dict[str, Any] = {"pages": manifest["pages"], "redis": server.get("redis_version")}
        if "valkey_version" in server:
            report["valkey"] = server["valkey_version"]
        report["memory"] = memory(args, redis)
        if not args.no_scaling:
            report["scaling"] = scaling(args, nginx, redis, manifest, work)
        if not args.no_politeness:
            report["politeness"] = politeness(args, nginx, redis, work)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        ok = all(part.get("ok", True) for part in report.values() if isinstance(part, dict))
        print(f"\nwritten to {args.json}: {'all ok' if ok else 'FAILURES'}")
        return 0 if ok else 1
    except (KeyboardInterrupt, bench.Interrupted):
        return 130
    finally:
        if redis is not None:
            redis.stop()
        if nginx is not None:
            nginx.stop()
        children.stop_all()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
