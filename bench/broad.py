"""A broad crawl: thousands of hosts, links across them, default politeness; next to the
single-host crawl, for the CPU each page costs and the politeness each host sees.

From the repository root (``python bench/broad.py``; nginx from Debian):

1. **Site.** ``--hosts`` hosts (4,000) on the loopback addresses 127.1.0.1, 127.1.0.2, ...
   (250 per /24), each with an index and ``--pages-per-host`` product pages (8) shaped like
   the bench site's (~8 KB, ~30 links, one item ``{url, title, price}``, a 404, offsite,
   ``mailto:`` and ``javascript:`` links), whose 20 links to other products go to pages of
   random other hosts, as absolute URLs. ``hosts.txt`` (``addr:port`` per
   line) is the seed list; ``manifest.json`` the expected pages and items. Cached under
   ``/tmp/crawler-bench`` by its parameters (the port is in the links, hence ``--port``).
2. **Server.** One nginx: the broad site on every address with one ``listen PORT`` line,
   restricted to 127.0.0.0/8 (``allow``/``deny``), the root chosen by ``$server_addr``, and an
   access log of ``$msec $server_addr $request_uri $status``; and the 20,000-page bench site
   (``bench/site.py``) on 127.0.0.1 on a second port, for the single-host crawl.
3. **Runs**, alternating, ``--runs`` each (2), every one a process started as a user would:

   * ``single``: ``bench/spiders/crawler_spider.py`` on the bench site, ``-s concurrency=64
     -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false`` (as ``bench/run.py``);
   * ``broad``: ``bench/spiders/broad_spider.py -a seeds=hosts.txt -s concurrency=128``,
     everything else default: 2 requests/s and 2 in flight per host, robots.txt obeyed.

   Wall time, CPU (user + sys, from ``wait4``) and peak RSS from outside; nginx's CPU from
   /proc. Every run must produce exactly the expected items (each product page once).
4. **Report.** CPU milliseconds per page of each, and the broad crawl's over the single-host
   one (target: at most 1.2x). Politeness from nginx's timestamps: for each host, the gaps
   between consecutive requests; a gap under 90 % of the host's interval (1/rate) is a
   violation, counted over pages only and with robots.txt included.

Results go to ``bench/results/broad.json`` (``--json``).

``--frontier redis://... [--workers N]`` runs the broad crawl as N processes of one crawl on
that Redis (a fresh ``--crawl-id`` each run, an output each, merged for the items check;
CPU summed over the workers, Redis' own not included); results then go to
``bench/results/broad-shared.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench

RESULTS = bench.BENCH / "results" / "broad.json"
GENERATOR_VERSION = 2
FILLER_WORDS = bench.benchsite.FILLER_WORDS


def host_addr(h: int) -> str:
    return f"127.1.{h // 250}.{h % 250 + 1}"


def page_html(h: int, k: int, hosts: int, per_host: int, port: int, rng: random.Random) -> tuple[str, str]:
    """A product page shaped like the single-host bench site's (``bench/site.py``): ~8 KB,
    ~30 links, but its 20 links to other products go to random other hosts (absolute URLs,
    some with a ``#fragment``), beside its two neighbours on its own host, three offsite
    links, a ``/missing/`` page that 404s, a ``mailto:`` and a ``javascript:`` link."""
    price = f"{rng.randint(100, 99_999) / 100:.2f}"
    links = [f"{(k + 1) % per_host}.html", f"../p/{(k + 2) % per_host}.html"]
    for n in range(20):
        url = f"http://{host_addr(rng.randrange(hosts))}:{port}/p/{rng.randrange(per_host)}.html"
        links.append(url + "#reviews" if n % 5 == 0 else url)
    links += [f"https://external-{rng.randrange(50)}.example/x/{rng.randrange(1000)}" for _ in range(3)]
    links += [f"/missing/{k}.html", "mailto:sales@example.invalid", "javascript:void(0)"]
    rng.shuffle(links)
    anchors = "".join(f'<li><a href="{link}">link {n}</a></li>' for n, link in enumerate(links))
    filler = " ".join(rng.choice(FILLER_WORDS) for _ in range(1000))[:6000]
    html = (
        f"<!DOCTYPE html><html><head><title>Host {h} item {k}</title></head><body>"
        f'<h1 class="title">Host {h} item {k}</h1><span class="price">{price}</span>'
        f"<p>{filler}</p><ul>{anchors}</ul></body></html>"
    )
    return html, price


def generate(out: Path, hosts: int, per_host: int, port: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    for h in range(hosts):
        addr = host_addr(h)
        folder = out / addr / "p"
        folder.mkdir(parents=True)
        index = "".join(f'<a href="p/{k}.html">item {k}</a>' for k in range(per_host))
        (out / addr / "index.html").write_text(f"<html><body><h2>Host {h}</h2>{index}</body></html>")
        for k in range(per_host):
            html, _ = page_html(h, k, hosts, per_host, port, rng)
            (folder / f"{k}.html").write_text(html)
    (out / "hosts.txt").write_text("".join(f"{host_addr(h)}:{port}\n" for h in range(hosts)))
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "hosts": hosts,
        "per_host": per_host,
        "port": port,
        "seed": seed,
        "pages": hosts * (1 + per_host),
        "items": hosts * per_host,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def ensure_site(hosts: int, per_host: int, port: int, seed: int, root: Path) -> tuple[Path, dict[str, Any]]:
    target = root / f"broad-{hosts}x{per_host}-port{port}-seed{seed}"
    with_manifest = target / "manifest.json"
    if with_manifest.exists():
        manifest = json.loads(with_manifest.read_text())
        if manifest.get("generator_version") == GENERATOR_VERSION:
            return target, manifest
    return target, bench.benchsite.build_into(target, lambda tmp: generate(tmp, hosts, per_host, port, seed))


def _workers(args: argparse.Namespace, cmd: list[str], out: Path, work: Path, tag: str) -> Any:
    """``cmd`` started ``--workers`` times as one crawl on ``--frontier`` (a crawl id of its
    own, an output each, merged into ``out``): wall time to the last exit, CPU summed."""
    import types

    from shared import run_workers

    crawl_id = f"broad-{tag}-{os.getpid()}-{time.time_ns()}"
    outs = [work / f"{tag}-w{n}.jsonl" for n in range(args.workers)]
    cmds = [[*cmd[: cmd.index("-O") + 1], str(path), *cmd[cmd.index("-O") + 2 :],
             "--frontier", args.frontier, "--crawl-id", crawl_id] for path in outs]
    result = run_workers(cmds, work, tag, timeout=600)
    with out.open("wb") as merged:
        for path in outs:
            if path.exists():
                merged.write(path.read_bytes())
    codes = [code for code in result["exit_codes"] if code != 0]
    return types.SimpleNamespace(wall_s=result["wall_s"], user_s=result["cpu_s"], sys_s=0.0,
                                 exit_code=codes[0] if codes else 0, maxrss_kib=0)


def nginx_config(work: Path, broad: Path, port: int, single: Path, single_port: int, log: Path) -> str:
    return f"""\
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  sendfile on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  types {{ text/html html; text/plain txt; }}
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  log_format broad '$msec $server_addr $request_uri $status';
  server {{
    listen {port};
    allow 127.0.0.0/8;
    deny all;
    root {broad}/$server_addr;
    access_log {log} broad;
    location / {{ try_files $uri =404; }}
  }}
  server {{
    listen 127.0.0.1:{single_port};
    root {single};
    location / {{ try_files $uri $uri/ =404; }}
  }}
}}
"""


def check_items(path: Path, manifest: dict[str, Any]) -> list[str]:
    expected = {
        f"http://{host_addr(h)}:{manifest['port']}/p/{k}.html"
        for h in range(manifest["hosts"])
        for k in range(manifest["per_host"])
    }
    got: list[str] = []
    if path.exists():
        with path.open() as f:
            got = [json.loads(line)["url"] for line in f if line.strip()]
    problems = []
    if len(got) != len(set(got)):
        problems.append(f"{len(got) - len(set(got))} duplicate items")
    if set(got) != expected:
        problems.append(f"{len(expected - set(got))} items missing, {len(set(got) - expected)} unexpected")
    return problems


def politeness(log: Path, rate: float) -> dict[str, Any]:
    """Gaps between consecutive requests to each host, from nginx's own timestamps."""
    interval = 1 / rate
    times: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    with log.open() as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                times[parts[1]].append((float(parts[0]), parts[2] == "/robots.txt"))
    violations = {"pages": 0, "with_robots": 0}
    gaps_pages: list[float] = []
    for hits in times.values():
        hits.sort()
        pages = [t for t, robots in hits if not robots]
        every = [t for t, _ in hits]
        for series, key in ((pages, "pages"), (every, "with_robots")):
            for a, b in itertools.pairwise(series):
                if b - a < 0.9 * interval:
                    violations[key] += 1
                if key == "pages":
                    gaps_pages.append(b - a)
    return {
        "hosts_seen": len(times),
        "requests": sum(len(v) for v in times.values()),
        "interval_s": interval,
        "violations_pages": violations["pages"],
        "violations_with_robots": violations["with_robots"],
        "min_gap_pages_s": round(min(gaps_pages), 4) if gaps_pages else None,
        "median_gap_pages_s": round(statistics.median(gaps_pages), 4) if gaps_pages else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=4000)
    ap.add_argument("--pages-per-host", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--port", type=int, default=18391, help="the broad site's port (it is in its links)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--single-pages", type=int, default=20_000)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--json", type=Path, default=RESULTS)
    ap.add_argument("--site-root", type=Path, default=bench.benchsite.DEFAULT_ROOT)
    ap.add_argument("--smoke", action="store_true", help="20 hosts of 2 pages, one run each, items checked only")
    ap.add_argument("--frontier", help="the broad crawl as --workers processes of one crawl on this Redis frontier")
    ap.add_argument("--workers", type=int, default=2, help="with --frontier: processes of the broad crawl")
    args = ap.parse_args(argv)
    if args.frontier and args.json == RESULTS:  # (the committed figures are the one-process crawl's)
        args.json = RESULTS.with_name("broad-shared.json")
    if args.smoke:  # (a pytest smoke test: the harness still works; no figures, no JSON)
        args.hosts, args.pages_per_host, args.runs, args.single_pages = 20, 2, 1, 200
        args.port = bench.free_port()
    nginx_bin = bench.find_nginx(None)
    if nginx_bin is None:
        print(f"bench: no nginx; {bench.NGINX_HINT}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    smoke_root = Path(tempfile.mkdtemp(prefix="crawler-broad-site-")) if args.smoke else None
    if smoke_root is not None:
        os.chmod(smoke_root, 0o755)  # nginx's worker must reach the site inside it
    site, manifest = ensure_site(args.hosts, args.pages_per_host, args.port, args.seed, smoke_root or args.site_root)
    single, single_manifest, _ = bench.benchsite.ensure_site(args.single_pages, root=args.site_root)
    print(f"sites: {site} ({manifest['pages']:,} pages on {args.hosts:,} hosts), {single} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    children = bench.Children()
    work = Path(tempfile.mkdtemp(prefix="crawler-broad-"))
    log = work / "access.log"
    single_port = bench.free_port()
    (work / "nginx.conf").write_text(nginx_config(work, site, args.port, single, single_port, log))
    nginx = children.spawn([nginx_bin, "-c", str(work / "nginx.conf"), "-p", str(work), "-e", str(work / "error.log")],
                           cwd=work, log=work / "nginx.out")
    results: dict[str, list[dict[str, Any]]] = {"single": [], "broad": []}
    try:
        deadline = time.monotonic() + 10
        last = host_addr(args.hosts - 1)
        while not (bench._can_connect(last, args.port) and bench._can_connect("127.0.0.1", single_port)):
            if time.monotonic() > deadline or nginx.poll() is not None:
                print(f"bench: nginx did not start: {(work / 'error.log').read_text(errors='replace')[-500:]}")
                return 1
            time.sleep(0.05)
        for k in range(1, args.runs + 1):
            for kind in ("single", "broad"):
                out = work / f"{kind}-{k}.jsonl"
                if kind == "single":
                    cmd = [args.python, "-m", "crawler", "run", "bench/spiders/crawler_spider.py", "-O", str(out),
                           "-s", "concurrency=64", "-s", "domain_concurrency=64", "-s", "rate_limit=0",
                           "-s", "obey_robots=false", "-a", f"base=http://127.0.0.1:{single_port}/index.html",
                           "--log-level", "WARNING"]
                    pages = single_manifest["pages"]
                else:
                    if log.exists():
                        os.truncate(log, 0)  # nginx appends (O_APPEND): truncating in place is safe
                    cmd = [args.python, "-m", "crawler", "run", "bench/spiders/broad_spider.py", "-O", str(out),
                           "-a", f"seeds={site / 'hosts.txt'}", "-s", "concurrency=128", "--log-level", "WARNING"]
                    pages = manifest["pages"]
                if kind == "broad" and args.frontier:
                    child = _workers(args, cmd, out, work, f"{kind}-{k}")
                else:
                    child = children.run(cmd, cwd=bench.REPO, log=work / f"{kind}-{k}.log", timeout=600)
                cpu = child.user_s + child.sys_s
                if kind == "single":
                    problems = [] if bench.benchsite.check_items(out, single_manifest)["ok"] else ["wrong items"]
                else:
                    problems = check_items(out, manifest)
                if child.exit_code != 0:
                    problems.insert(0, f"exit code {child.exit_code}")
                record: dict[str, Any] = {
                    "wall_s": round(child.wall_s, 2),
                    "cpu_s": round(cpu, 2),
                    "pages": pages,
                    "cpu_ms_per_page": round(cpu / pages * 1000, 4),
                    "pages_per_s": round(pages / child.wall_s, 1),
                    "peak_rss_mib": round(child.maxrss_kib / 1024, 1),
                    "problems": problems,
                }
                if kind == "broad":
                    time.sleep(1.5)  # nginx writes its log as requests end
                    record["politeness"] = politeness(log, 2.0)
                results[kind].append(record)
                print(f"  {kind}-{k}: {record}", flush=True)
    finally:
        children.stop_all()
    summary = {
        kind: {
            "cpu_ms_per_page_median": statistics.median(r["cpu_ms_per_page"] for r in runs),
            "pages_per_s_median": statistics.median(r["pages_per_s"] for r in runs),
        }
        for kind, runs in results.items()
    }
    ratio = summary["broad"]["cpu_ms_per_page_median"] / summary["single"]["cpu_ms_per_page_median"]
    ok = all(not r["problems"] for runs in results.values() for r in runs)
    print(f"CPU per page: single {summary['single']['cpu_ms_per_page_median']:.3f} ms, broad "
          f"{summary['broad']['cpu_ms_per_page_median']:.3f} ms = {ratio:.2f}x "
          f"{f'({args.workers} workers on Redis, all of their CPU)' if args.frontier else '(target <= 1.2x)'}; "
          f"{'all runs correct' if ok else 'FAILURES'}")
    if smoke_root is not None:
        shutil.rmtree(smoke_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        return 0 if ok else 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"manifest": manifest, "runs": results, "summary": summary,
                                     "cpu_ratio": round(ratio, 3), "ok": ok}, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
