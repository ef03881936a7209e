"""Throughput and politeness of the crawler against nginx, next to a hand-written aiohttp floor.

What it does, from the repository root (``python bench/run.py``):

1. **Site.** Builds the deterministic bench site with ``bench/site.py`` (the shape of
   ``shared/benchsite``: ~8 KB product pages with ~30 links each in equivalent forms
   (relative, absolute, ``#fragment``, ``../``), offsite links, a 404 under ``/missing/`` per
   page, ``mailto:``/``javascript:`` links) and caches it in a directory named by its
   parameters, e.g. ``/tmp/crawler-bench/site-20000-seed7``; later runs reuse it. The site's
   ``manifest.json`` holds the expected item count and a digest of the prices.
2. **Server.** Serves it with nginx on 127.0.0.1 (one worker, no access log, unlimited
   keep-alive, as ``shared/benchsite/serve.sh``) and on the 50 host aliases 127.0.0.2 ...
   127.0.0.51 (same port; that server block alone keeps an access log with ``$msec``, used by
   the politeness scenario). The port is a free one unless ``--port`` says. nginx runs in the
   foreground as this script's child and is stopped at the end, also on Ctrl-C or SIGTERM.
   Without nginx it says how to install it (``apt-get install -y nginx-light``) and exits 2.
3. **Throughput.** Crawls the whole site with the crawler and with the floor, alternating,
   ``--runs`` times each (5), every run a separate process launched as a user would::

       python -m crawler run bench/spiders/crawler_spider.py -O out.jsonl -s concurrency=64 \\
           -s domain_concurrency=64 -s rate_limit=0 -s obey_robots=false -a base=URL --log-level INFO

   The crawler runs twice per round: with the ``follow_all`` spider above and with
   ``crawler_follow_spider.py``, the same crawl written in Scrapy's tutorial idiom (one
   ``response.follow(href)`` per link), so a fast path only one idiom is on shows as a gap.
   ``--idioms`` adds two more: ``crawler_urljoin_spider.py`` (``Request(response.urljoin(href))``
   per link, as Scrapy spiders were written before ``follow()``) and ``crawler_rules_spider.py``
   (a ``CrawlSpider`` with one rule that takes every link).
       python bench/spiders/raw_aiohttp.py URL 64 out.jsonl

   (plus ``--stats FILE`` for the crawler, kept in the JSON for diagnosis only). INFO logging
   stays on: the figure is the crawler "with everything on". With ``--peers``, Scrapy and
   Crawlee crawl the same site once each (skipped with a note when not installed).
4. **Measurement, from outside.** Each child is timed by this script: wall clock from spawn to
   exit, CPU (user + sys) and peak RSS from ``os.wait4``. pages/s is the manifest's page count
   divided by the wall time; no figure a crawler reports about itself is used.
5. **Correctness.** Every run must produce exactly the manifest's items: the count, one item
   per page, and the price digest (sha256 over ``"<i>:<price>\\n"`` in page order, as the
   generator computes it). A wrong run is a failure (listed, exit 1), not a result.
6. **Politeness.** The crawler on all 50 aliases at once (``bench/spiders/politeness_spider.py``,
   each alias one domain) with ``-s rate_limit=10 -s domain_concurrency=4 -s concurrency=128
   -s max_pages=6000``: the target is 50 x 10 = 500 requests/s. The rate is measured from
   nginx's own timestamps (``$msec``) over the middle of the crawl (the first and last 10 %
   of its time span dropped) and must be within 5 % of the target (else exit 1). Also shown:
   each alias's rate in that window and the most requests one alias got in any second.
7. **Report.** A table per crawler: pages/s median (min-max), CPU seconds per 1,000 pages, peak
   RSS, ratio of its median pages/s to the floor's; then the politeness figures. Everything is
   also written as JSON (``--json FILE``, default ``bench/results/latest.json``; ``--smoke``
   writes none unless asked).

Modes:

* default: 20,000 pages, 5 runs each of the crawler, the crawler with a state file
  (``--state``, SQLite; ``--no-state`` skips it) and the floor, alternating, then politeness
  (about 5 minutes on 2 cores);
* ``--quick``: 5,000 pages, 3 runs each, then politeness;
* ``--smoke``: 200 pages, one run each, item counts checked (not timed figures, not the
  digest); finishes in a few seconds, exit 0 or 1 (for a pytest smoke test);
* ``--politeness``: the politeness scenario alone; ``--no-politeness`` skips it;
* ``--peers``: adds one Scrapy and one Crawlee run (``--peer-runs N``);
* ``--idioms``: adds the crawl written two more ways (see 3.);
* ``--broad``: the broad-crawl scenario instead, ``bench/broad.py`` (its own generated site
  over 4,000 loopback hosts, a manifest, nginx's access log for politeness; its docstring
  says how), with ``--runs`` or ``--smoke``.

``--pages N`` and ``--runs N`` override the mode's values. ``--python PY`` is the interpreter
for the crawler and the floor (default: this one); ``--scrapy-python PY`` and
``--crawlee-python PY`` for the peers (default: ``/tmp/peers/bin/python`` when it has them,
else this interpreter, else ``scrapy`` on PATH; otherwise "not installed"). Every child has a
time limit; only loopback addresses are used; every child and nginx are stopped at the end.
Exit status: 0 all runs correct (and politeness on target), 1 a failure, 2 bad usage or no
nginx, 130 interrupted.

Run from the repository root::

    python bench/run.py                 # full: 20,000 pages, 5 + 5 runs, politeness
    python bench/run.py --quick
    python bench/run.py --smoke
    python bench/run.py --peers --pages 20000 --runs 1 --no-politeness
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SPIDERS = BENCH / "spiders"
DEFAULT_JSON = BENCH / "results" / "latest.json"
PEERS_PYTHON = Path("/tmp/peers/bin/python")
NGINX_HINT = "install it with: apt-get install -y nginx-light   (Debian/Ubuntu; or pass --nginx PATH)"

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

ALIAS_COUNT = 50  # 127.0.0.2 ... 127.0.0.51
ALIAS_FIRST = 2
#: Ours, run alternately: the crawler in memory, the crawler with a state file, the floor.
# Our crawl, one spider per idiom users write (the same items and requests from each).
SPIDER_OF = {
    "crawler": "crawler_spider.py",  # follow_all
    "crawler_follow": "crawler_follow_spider.py",  # response.follow(href) per link
    "crawler_urljoin": "crawler_urljoin_spider.py",  # Request(response.urljoin(href)) per link (--idioms)
    "crawler_rules": "crawler_rules_spider.py",  # CrawlSpider, one catch-all LinkRule (--idioms)
}
OURS = (*SPIDER_OF, "crawler_state", "floor")


def _load_site_module() -> ModuleType:
    """bench/site.py, loaded by path: ``import site`` would give the standard library's module."""
    spec = importlib.util.spec_from_file_location("crawler_bench_site", BENCH / "site.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


benchsite = _load_site_module()


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop the child in flight, nginx, and exit 130."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Interrupted


# -- child processes ---------------------------------------------------------------------------------


@dataclass
class ChildResult:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kib: int
    exit_code: int  # negative: killed by that signal
    timed_out: bool


class Children:
    """Every process this script starts, so that all of them can be stopped at the end."""

    def __init__(self) -> None:
        self.live: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()

    def spawn(self, cmd: Sequence[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: our Ctrl-C is ours to pass on
            )
        with self.lock:
            self.live[proc.pid] = proc
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        """Signal the child's process group, if the child has not been reaped yet."""
        with self.lock:
            if proc.pid in self.live and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)

    def forget(self, proc: subprocess.Popen) -> None:
        """``proc`` was reaped by Popen itself (poll/wait)."""
        with self.lock:
            self.live.pop(proc.pid, None)

    def reaped(self, proc: subprocess.Popen, status: int) -> None:
        with self.lock:
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.live.pop(proc.pid, None)

    def run(self, cmd: Sequence[str], *, cwd: Path, log: Path, timeout: float) -> ChildResult:
        """Run ``cmd`` to its end (killed after ``timeout`` s); wall clock, CPU and peak RSS from outside."""
        start = time.perf_counter()
        proc = self.spawn(cmd, cwd=cwd, log=log)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            self.kill(proc)

        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        finally:
            timer.cancel()
        self.reaped(proc, status)
        return ChildResult(
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            maxrss_kib=usage.ru_maxrss,  # KiB on Linux
            exit_code=proc.returncode,
            timed_out=timed_out.is_set(),
        )

    def stop_all(self) -> None:
        """Kill and reap whatever is still running (after an interrupt or an error)."""
        with self.lock:
            procs = list(self.live.values())
        for proc in procs:
            self.kill(proc)
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(proc.pid, 0)
                self.reaped(proc, status)


# -- nginx -------------------------------------------------------------------------------------------


def find_nginx(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """nginx in the foreground (our child), serving ``site`` on 127.0.0.1 and the aliases, same port."""

    def __init__(self, binary: str, site: Path, port: int, aliases: Sequence[str], workdir: Path, children: Children):
        self.binary = binary
        self.site = site
        self.port = port
        self.aliases = list(aliases)
        self.workdir = workdir
        self.children = children
        self.access_log = workdir / "aliases-access.log"
        self.error_log = workdir / "error.log"
        self.proc: subprocess.Popen | None = None

    def version(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True, timeout=10)
        return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")

    def config(self) -> str:
        w = self.workdir
        alias_listens = "\n".join(f"    listen {host}:{self.port};" for host in self.aliases)
        return f"""\
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  types {{ text/html html; text/plain txt; application/xml xml; application/json json; }}
  client_body_temp_path {w}/body;
  proxy_temp_path {w}/proxy;
  fastcgi_temp_path {w}/fastcgi;
  uwsgi_temp_path {w}/uwsgi;
  scgi_temp_path {w}/scgi;
  log_format bench '$msec $server_addr $status';
  server {{
    listen 127.0.0.1:{self.port};
    root {self.site};
    location / {{ try_files $uri $uri/ =404; }}
  }}
  server {{
{alias_listens}
    root {self.site};
    access_log {self.access_log} bench;
    location / {{ try_files $uri $uri/ =404; }}
  }}
}}
"""

    def start(self, timeout: float = 10.0) -> None:
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        cmd = [self.binary, "-c", str(conf), "-p", str(self.workdir)]
        if "-e filename" in subprocess.run([self.binary, "-h"], capture_output=True, text=True, timeout=10).stderr:
            cmd += ["-e", str(self.error_log)]  # else it may try /var/log/nginx/error.log before reading conf
        self.proc = self.children.spawn(cmd, cwd=self.workdir, log=self.workdir / "nginx.out")
        deadline = time.monotonic() + timeout
        hosts = ["127.0.0.1", *self.aliases[:1], *self.aliases[-1:]]
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.children.forget(self.proc)
                raise RuntimeError(f"nginx exited at start ({self.proc.returncode}): {self.tail()}")
            if all(_can_connect(h, self.port) for h in hosts):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen on port {self.port} within {timeout:.0f} s: {self.tail()}")

    def cpu_s(self) -> float | None:
        """CPU seconds (user + sys) used so far by nginx's master and workers, from /proc; None elsewhere."""
        if self.proc is None or self.proc.returncode is not None:
            return None
        pids = [self.proc.pid]
        with contextlib.suppress(OSError, ValueError):  # the workers
            pids += [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                return None
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime
        return total

    def tail(self) -> str:
        text = ""
        for path in (self.workdir / "nginx.out", self.error_log):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return " | ".join(text.strip().splitlines()[-5:]) or "(no output)"

    def warnings(self) -> list[str]:
        with contextlib.suppress(OSError):
            return [line for line in self.error_log.read_text(errors="replace").splitlines() if line.strip()][-20:]
        return []

    def clear_access_log(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.access_log, 0)  # nginx appends (O_APPEND), so truncating in place is safe

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.children.kill(proc, signal.SIGTERM)  # fast shutdown of master and worker
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.children.kill(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        self.children.forget(proc)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- the crawlers ------------------------------------------------------------------------------------


@dataclass
class Contender:
    key: str  # crawler, floor, scrapy, crawlee; a variant of ours: crawler@httpx, crawler_follow@uvloop ...
    label: str
    python: str | None  # None: the command is on PATH
    version: str | None
    available: bool
    note: str = ""
    runs: list[dict] = field(default_factory=list)
    extra: tuple[str, ...] = ()  # more arguments for a variant of ours (-s downloader=httpx, --loop uvloop)

    @property
    def base(self) -> str:
        return self.key.split("@", 1)[0]

    def command(self, url: str, out: Path, stats: Path, concurrency: int) -> list[str]:
        if self.extra:
            plain = Contender(self.base, self.label, self.python, None, True)
            return [*plain.command(url, out, stats, concurrency), *self.extra]
        py = self.python
        if self.key == "crawler_state":  # the same crawl, resumable: a fresh state file per run
            plain = Contender("crawler", "", py, None, True).command(url, out, stats, concurrency)
            return [*plain, "--state", str(out.with_suffix(".state.db"))]
        if self.key in SPIDER_OF:
            spider = SPIDER_OF[self.key]
            return [
                py,
                "-m",
                "crawler",
                "run",
                f"bench/spiders/{spider}",
                "-O",
                str(out),
                "-s",
                f"concurrency={concurrency}",
                "-s",
                f"domain_concurrency={concurrency}",
                "-s",
                "rate_limit=0",
                "-s",
                "obey_robots=false",
                "-a",
                f"base={url}",
                "--log-level",
                "INFO",
                "--stats",
                str(stats),
            ]
        if self.key == "floor":
            return [py, str(SPIDERS / "raw_aiohttp.py"), url, str(concurrency), str(out)]
        if self.key == "scrapy":
            head = [py, "-m", "scrapy"] if py else [shutil.which("scrapy") or "scrapy"]
            return [
                *head,
                "runspider",
                str(SPIDERS / "scrapy_spider.py"),
                "-a",
                f"base={url}",
                "-s",
                f"CONCURRENT_REQUESTS={concurrency}",
                "-O",
                str(out),
            ]
        if self.key == "crawlee":
            return [py, str(SPIDERS / "crawlee_spider.py"), url, str(concurrency), str(out)]
        raise ValueError(self.key)


def probe(python: str, module: str, dist: str) -> str | None:
    """The version of ``dist`` if ``python`` can import ``module``, else None."""
    code = f"import importlib.metadata as m, {module}; print(m.version({dist!r}))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def find_peer(key: str, explicit: str | None) -> Contender:
    module, dist, label = {"scrapy": ("scrapy", "Scrapy", "Scrapy"), "crawlee": ("crawlee", "crawlee", "Crawlee")}[key]
    label = f"{label} (peer)"
    candidates = [explicit] if explicit else [str(PEERS_PYTHON), sys.executable]
    for py in candidates:
        if py and (os.access(py, os.X_OK) or shutil.which(py)):
            version = probe(py, module, dist)
            if version:
                return Contender(key, label, py, version, True)
    if key == "scrapy" and not explicit and shutil.which("scrapy"):
        out = subprocess.run(
            ["scrapy", "version"], capture_output=True, text=True, timeout=60, cwd=tempfile.gettempdir()
        )
        version = out.stdout.strip().removeprefix("Scrapy ") or None
        return Contender(key, label, None, version, True, note="scrapy on PATH")
    where = explicit or f"{PEERS_PYTHON} / {sys.executable}"
    hint = "pip install scrapy" if key == "scrapy" else "pip install 'crawlee[parsel]'"
    return Contender(key, label, None, None, False, note=f"not installed (looked in {where}; {hint})")


# -- measuring ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, children: Children, nginx: Nginx, manifest: dict, work: Path):
        self.args = args
        self.children = children
        self.nginx = nginx
        self.manifest = manifest
        self.work = work
        self.failures: list[str] = []
        self.pages = manifest["pages"]
        self.url = f"http://127.0.0.1:{nginx.port}/index.html"
        self.counter = 0

    def timeout_for(self, key: str) -> float:
        if self.args.run_timeout:
            return self.args.run_timeout
        # ours and the floor: at least 100 pages/s; the peers: at least 20 pages/s
        return 30 + self.pages / (100 if key.split("@")[0] in OURS else 20)

    def run_once(self, who: Contender, index: int, total: int, label: str) -> dict:
        self.counter += 1
        tag = f"{who.key}-{index}"
        out, stats, log = self.work / f"{tag}.jsonl", self.work / f"{tag}.stats.json", self.work / f"{tag}.log"
        cmd = who.command(self.url, out, stats, self.args.concurrency)
        cwd = REPO
        if who.base not in OURS:  # peers may write ./storage and the like
            cwd = self.work / f"{tag}.cwd"
            cwd.mkdir()
        timeout = self.timeout_for(who.key)
        server_before = self.nginx.cpu_s()
        child = self.children.run(cmd, cwd=cwd, log=log, timeout=timeout)
        server_after = self.nginx.cpu_s()
        server_cpu = None if server_before is None or server_after is None else server_after - server_before
        check = benchsite.check_items(out, self.manifest, digest=not self.args.smoke)
        cpu = child.user_s + child.sys_s
        record: dict[str, Any] = {
            "run": index,
            "ok": False,
            "wall_s": round(child.wall_s, 3),
            "pages_per_s": round(self.pages / child.wall_s, 1),
            "user_s": round(child.user_s, 3),
            "sys_s": round(child.sys_s, 3),
            "cpu_s_per_1000_pages": round(cpu / self.pages * 1000, 3),
            "peak_rss_mib": round(child.maxrss_kib / 1024, 1),
            "server_cpu_s": None if server_cpu is None else round(server_cpu, 2),
            "exit_code": child.exit_code,
            "timed_out": child.timed_out,
            "items": check["items"],
            "distinct_pages": check["distinct"],
            "digest_ok": check["digest_ok"],
            "problems": list(check["problems"]),
        }
        if child.timed_out:
            record["problems"].insert(0, f"killed after {timeout:g} s")
        elif child.exit_code != 0:
            record["problems"].insert(0, f"exit code {child.exit_code}")
        record["ok"] = not record["problems"]
        if who.base in OURS and who.base != "floor":
            record["self_reported"] = _self_reported(stats)  # diagnosis only, never a figure
        if who.base == "crawler_state":
            record["state_disk"] = _state_disk(out.with_suffix(".state.db"))
        if not record["ok"]:
            record["log_tail"] = _tail(log, 15)
            self.failures.append(f"{who.label} run {index}: " + "; ".join(record["problems"]))
        status = "ok" if record["ok"] else "FAILED: " + "; ".join(record["problems"])
        counter = f"[{self.counter}/{total}]"
        server = "" if server_cpu is None else f"  nginx CPU {server_cpu:5.2f} s"
        print(
            f"  {counter:>7} {label:<22} {child.wall_s:7.2f} s  {record['pages_per_s']:8,.0f} pages/s  "
            f"CPU {cpu:6.2f} s  RSS {record['peak_rss_mib']:6.1f} MiB{server}  items {check['items']:,}  {status}",
            flush=True,
        )
        return record

    def throughput(self, contenders: list[Contender]) -> None:
        ours = [c for c in contenders if c.base in OURS]
        peers = [c for c in contenders if c.base not in OURS and c.available]
        runs = self.args.runs
        total = runs * len(ours) + self.args.peer_runs * len(peers)
        print(f"\nthroughput: {self.pages:,} pages from {self.url}, concurrency {self.args.concurrency}", flush=True)
        for k in range(1, runs + 1):
            for who in ours:  # alternating: crawler, floor, crawler, floor, ...
                who.runs.append(self.run_once(who, k, total, f"{who.key} run {k}/{runs}"))
        for who in peers:
            for k in range(1, self.args.peer_runs + 1):
                who.runs.append(self.run_once(who, k, total, f"{who.key} run {k}/{self.args.peer_runs}"))

    def politeness(self, python: str) -> dict:
        a = self.args
        hosts = a.hosts
        target = hosts * a.host_rate
        settings = {
            "rate_limit": a.host_rate,
            "domain_concurrency": a.politeness_domain_concurrency,
            "concurrency": a.politeness_concurrency,
            "obey_robots": "false",
            "max_pages": a.politeness_pages,
        }
        print(
            f"\npoliteness: {hosts} hosts (127.0.0.{ALIAS_FIRST}-127.0.0.{ALIAS_FIRST + hosts - 1}) x "
            f"rate_limit {a.host_rate:g}/s = target {target:g} req/s; "
            + ", ".join(f"{k} {v}" for k, v in settings.items() if k != "rate_limit"),
            flush=True,
        )
        out, stats, log = (self.work / f"politeness.{ext}" for ext in ("jsonl", "stats.json", "log"))
        cmd = [python, "-m", "crawler", "run", "bench/spiders/politeness_spider.py", "-O", str(out)]
        for name, value in settings.items():
            cmd += ["-s", f"{name}={value}"]
        cmd += ["-a", f"port={self.nginx.port}", "-a", f"hosts={hosts}", "-a", f"first={ALIAS_FIRST}"]
        cmd += ["--log-level", "INFO", "--stats", str(stats)]
        timeout = a.run_timeout or 30 + 3 * a.politeness_pages / target
        self.nginx.clear_access_log()
        child = self.children.run(cmd, cwd=REPO, log=log, timeout=timeout)
        hits = _read_access_log(self.nginx.access_log)
        result: dict[str, Any] = {
            "hosts": hosts,
            "rate_limit_per_host": a.host_rate,
            "target_req_per_s": target,
            "tolerance": a.tolerance,
            "settings": settings,
            "command": " ".join(cmd),
            "wall_s": round(child.wall_s, 3),
            "cpu_s": round(child.user_s + child.sys_s, 3),
            "peak_rss_mib": round(child.maxrss_kib / 1024, 1),
            "exit_code": child.exit_code,
            "timed_out": child.timed_out,
            "self_reported": _self_reported(stats),
        }
        result.update(steady_rate(hits, a.trim))
        problems = []
        if child.timed_out:
            problems.append(f"killed after {timeout:g} s")
        elif child.exit_code != 0:
            problems.append(f"exit code {child.exit_code}")
        if result.get("hosts_seen", 0) != hosts:
            problems.append(f"requests reached {result.get('hosts_seen', 0)} of {hosts} hosts")
        observed = result.get("steady_req_per_s")
        if observed is None:
            problems.append("too few requests to measure a rate")
        else:
            result["ratio_to_target"] = round(observed / target, 4)
            if abs(observed - target) > a.tolerance * target:
                problems.append(f"{observed:.1f} req/s is outside {target:g} +/- {a.tolerance:.0%}")
        result["problems"] = problems
        result["ok"] = not problems
        if problems:
            result["log_tail"] = _tail(log, 15)
            self.failures.append("politeness: " + "; ".join(problems))
        return result


def steady_rate(hits: list[tuple[float, str, int]], trim: float) -> dict:
    """The aggregate request rate over the middle of the crawl, from the server's timestamps."""
    if len(hits) < 20:
        return {"requests": len(hits), "hosts_seen": len({h for _, h, _ in hits})}
    times = sorted(t for t, _, _ in hits)
    first, last = times[0], times[-1]
    span = last - first
    lo, hi = first + trim * span, last - trim * span
    window = hi - lo
    in_window = [(t, host) for t, host, _ in hits if lo <= t < hi]
    per_host: dict[str, list[float]] = {}
    for t, host in in_window:
        per_host.setdefault(host, []).append(t)
    all_per_host: dict[str, list[float]] = {}
    for t, host, _ in hits:
        all_per_host.setdefault(host, []).append(t)
    host_rates = sorted(len(ts) / window for ts in per_host.values()) if window > 0 else []
    statuses: dict[str, int] = {}
    for _, _, status in hits:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": len(hits),
        "statuses": statuses,
        "hosts_seen": len(all_per_host),
        "span_s": round(span, 3),
        "window_s": round(window, 3),
        "window_requests": len(in_window),
        "steady_req_per_s": round(len(in_window) / window, 2) if window > 0 else None,
        "whole_crawl_req_per_s": round(len(hits) / span, 2) if span > 0 else None,
        "per_host_req_per_s": {
            "min": round(host_rates[0], 2),
            "median": round(statistics.median(host_rates), 2),
            "max": round(host_rates[-1], 2),
        }
        if host_rates
        else None,
        "max_requests_one_host_any_1s": max(_max_in_window(sorted(ts), 1.0) for ts in all_per_host.values()),
    }


def _max_in_window(times: list[float], width: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


def _read_access_log(path: Path) -> list[tuple[float, str, int]]:
    hits = []
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                with contextlib.suppress(ValueError):
                    hits.append((float(parts[0]), parts[1], int(parts[2])))
    return hits


def _self_reported(path: Path) -> dict | None:
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    keys = ("close_reason", "pages", "items", "requests", "retries", "failures", "filtered", "callback_errors")
    return {k: stats.get(k) for k in keys}


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


# -- the report --------------------------------------------------------------------------------------


def _state_disk(path: Path) -> dict[str, Any]:
    """The state file's size, and bytes on disk per seen and per queued URL (SQLite's dbstat)."""
    import sqlite3

    if not path.exists():
        return {}
    db = sqlite3.connect(path)
    try:
        seen = db.execute("SELECT count(*) FROM seen").fetchone()[0]
        queued = db.execute("SELECT count(*) FROM queue").fetchone()[0]
        sizes = dict(db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    except sqlite3.Error as exc:
        return {"error": str(exc)}
    finally:
        db.close()
    files = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return {
        "file_bytes": files,
        "seen_rows": seen,
        "queue_rows": queued,
        "seen_bytes_per_url": round(sizes.get("seen", 0) / seen, 1) if seen else None,
        "queue_bytes_per_url": round(sizes.get("queue", 0) / queued, 1) if queued else None,
    }


def summarize(who: Contender, floor_median: float | None) -> dict:
    good = [r for r in who.runs if r["ok"]]
    summary: dict[str, Any] = {"runs": len(who.runs), "ok_runs": len(good)}
    if good:
        rates = [r["pages_per_s"] for r in good]
        summary.update(
            pages_per_s_median=round(statistics.median(rates), 1),
            pages_per_s_min=min(rates),
            pages_per_s_max=max(rates),
            wall_s_median=round(statistics.median(r["wall_s"] for r in good), 3),
            cpu_s_per_1000_pages_median=round(statistics.median(r["cpu_s_per_1000_pages"] for r in good), 3),
            peak_rss_mib_max=max(r["peak_rss_mib"] for r in good),
            peak_rss_mib_median=round(statistics.median(r["peak_rss_mib"] for r in good), 1),
        )
        if floor_median:
            summary["ratio_to_floor"] = round(summary["pages_per_s_median"] / floor_median, 3)
    return summary


def table(contenders: list[Contender], summaries: dict[str, dict]) -> list[str]:
    width = max(36, *(len(f"{who.label} {who.version or ''}".strip()) for who in contenders))
    head = f"{'crawler':<{width}} {'ok runs':>7}  {'pages/s median (min-max)':<26} {'CPU s/1k pages':>14}  "
    head += f"{'peak RSS':>9}  {'vs floor':>8}"
    lines = [head, "-" * len(head)]
    for who in contenders:
        name = f"{who.label} {who.version or ''}".strip()
        s = summaries.get(who.key)
        if not who.available:
            lines.append(f"{name:<{width}} {'-':>7}  {who.note}")
            continue
        if not s or not s.get("ok_runs"):
            runs = s["runs"] if s else 0
            lines.append(f"{name:<{width}} {'0/' + str(runs):>7}  no correct run")
            continue
        rate = f"{s['pages_per_s_median']:,.0f} ({s['pages_per_s_min']:,.0f}-{s['pages_per_s_max']:,.0f})"
        ratio = f"{s['ratio_to_floor']:.2f}x" if "ratio_to_floor" in s else "-"
        lines.append(
            f"{name:<{width}} {str(s['ok_runs']) + '/' + str(s['runs']):>7}  {rate:<26} "
            f"{s['cpu_s_per_1000_pages_median']:>14.2f}  {s['peak_rss_mib_max']:>5.0f} MiB  {ratio:>8}"
        )
    return lines


def politeness_lines(p: dict) -> list[str]:
    lines = [
        f"politeness: target {p['target_req_per_s']:g} req/s ({p['hosts']} hosts x {p['rate_limit_per_host']:g}/s), "
        f"crawl {p['wall_s']:.1f} s wall, {p['cpu_s']:.1f} s CPU, exit {p['exit_code']}"
    ]
    if p.get("steady_req_per_s") is not None:
        lines.append(
            f"  server saw {p['requests']:,} requests over {p['span_s']:.2f} s "
            f"({p['whole_crawl_req_per_s']:.1f} req/s overall); statuses {p['statuses']}"
        )
        lines.append(
            f"  steady state (middle {1 - 2 * p['trim']:.0%}, {p['window_s']:.2f} s, "
            f"{p['window_requests']:,} requests): "
            f"{p['steady_req_per_s']:.1f} req/s observed vs {p['target_req_per_s']:g} target = "
            f"{p['ratio_to_target']:.1%}  {'OK' if p['ok'] else 'OUT OF TARGET'} (+/- {p['tolerance']:.0%})"
        )
        h = p["per_host_req_per_s"]
        if h:
            lines.append(
                f"  per host in the window: min {h['min']:.2f}, median {h['median']:.2f}, max {h['max']:.2f} req/s; "
                f"most requests to one host in any 1 s: {p['max_requests_one_host_any_1s']}"
            )
    if p["problems"]:
        lines.append("  FAILED: " + "; ".join(p["problems"]))
    return lines


# -- main --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Crawler throughput vs a hand-written aiohttp floor (and peers) on an nginx-served site; "
        "politeness as nginx sees it.",
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="3 + 3 runs on a 5,000-page site")
    mode.add_argument("--smoke", action="store_true", help="one run each on a 200-page site, item counts only")
    ap.add_argument("--pages", type=int, help="pages in the site (default 20000; --quick 5000; --smoke 200)")
    ap.add_argument("--runs", type=int, help="runs each of the crawler and the floor (default 5; --quick 3)")
    ap.add_argument("--peers", action="store_true", help="also Scrapy and Crawlee, when installed")
    ap.add_argument("--peer-runs", type=int, default=1, help="runs of each peer with --peers (default 1)")
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--politeness", action="store_true", help="only the politeness scenario")
    only.add_argument("--no-politeness", action="store_true", help="skip the politeness scenario")
    ap.add_argument("--no-state", action="store_true", help="skip the crawler --state (SQLite) runs")
    ap.add_argument("--concurrency", type=int, default=64, help="throughput concurrency for every crawler (64)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the crawler and the floor")
    ap.add_argument("--scrapy-python", help=f"interpreter with Scrapy (default {PEERS_PYTHON}, else scrapy on PATH)")
    ap.add_argument("--crawlee-python", help=f"interpreter with crawlee[parsel] (default {PEERS_PYTHON})")
    ap.add_argument("--hosts", type=int, default=ALIAS_COUNT, help="politeness: host aliases crawled at once (50)")
    ap.add_argument("--host-rate", type=float, default=10.0, help="politeness: rate_limit per host, req/s (10)")
    ap.add_argument("--politeness-pages", type=int, default=6000, help="politeness: max_pages (6000)")
    ap.add_argument("--politeness-concurrency", type=int, default=128, help="politeness: concurrency (128)")
    ap.add_argument("--politeness-domain-concurrency", type=int, default=4, help="politeness: domain_concurrency (4)")
    ap.add_argument("--tolerance", type=float, default=0.05, help="politeness: allowed deviation from target (0.05)")
    ap.add_argument("--trim", type=float, default=0.10, help="politeness: share of the span dropped at each end (0.1)")
    ap.add_argument("--seed", type=int, default=benchsite.DEFAULT_SEED, help="site generator seed (7)")
    ap.add_argument("--site-root", type=Path, default=benchsite.DEFAULT_ROOT, help="site cache (%(default)s)")
    ap.add_argument("--port", type=int, default=0, help="nginx port (default: a free one)")
    ap.add_argument("--nginx", help="nginx binary (default: nginx on PATH or /usr/sbin/nginx)")
    ap.add_argument("--run-timeout", type=float, help="seconds before a run is killed (default from the site size)")
    ap.add_argument(
        "--json", type=Path, help=f"write the results here (default {DEFAULT_JSON.relative_to(REPO)}; --smoke: none)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory (outputs, logs, nginx.conf)")
    ap.add_argument(
        "--downloaders",
        type=lambda text: [d.strip() for d in text.split(",") if d.strip()],
        default=["aiohttp"],
        help="both idioms with each of these downloaders too, e.g. aiohttp,httpx,pyreqwest (aiohttp)",
    )
    ap.add_argument(
        "--broad",
        action="store_true",
        help="the broad-crawl scenario instead (bench/broad.py: 4,000 hosts beside the single-host crawl; "
        "with --runs, --smoke)",
    )
    ap.add_argument(
        "--idioms",
        action="store_true",
        help="also the crawl written with Request(response.urljoin(href)) and as a CrawlSpider with one rule",
    )
    ap.add_argument("--uvloop", action="store_true", help="each downloader on uvloop too (crawler run --loop uvloop)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.pages = args.pages or 200
        args.runs = args.runs or 1
        args.no_politeness = not args.politeness
    elif args.quick:
        args.pages = args.pages or 5000
        args.runs = args.runs or 3
    args.pages = args.pages or 20000
    args.runs = args.runs if args.runs is not None else 5
    if args.pages < 1 or args.runs < 1 or args.peer_runs < 1 or args.concurrency < 1:
        ap.error("--pages, --runs, --peer-runs and --concurrency must be at least 1")
    if not 1 <= args.hosts <= 253 - ALIAS_FIRST:
        ap.error("--hosts must be between 1 and 251")
    if not 0 <= args.trim < 0.5:
        ap.error("--trim must be in [0, 0.5)")
    if args.json is None and not args.smoke:
        args.json = DEFAULT_JSON
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return args


def variants(args: argparse.Namespace, version: str | None) -> list[Contender]:
    """Both idioms again for each other downloader (``--downloaders``), and each downloader
    on uvloop (``--uvloop``)."""
    made: list[Contender] = []
    for downloader in args.downloaders:
        for loop in ("asyncio", "uvloop") if args.uvloop else ("asyncio",):
            if downloader == "aiohttp" and loop == "asyncio":
                continue  # the plain contenders
            extra = ("-s", f"downloader={downloader}") if downloader != "aiohttp" else ()
            extra += ("--loop", "uvloop") if loop == "uvloop" else ()
            tag = downloader + ("+uvloop" if loop == "uvloop" else "")
            for key, label in (("crawler", "crawler"), ("crawler_follow", "crawler, follow() per link")):
                variant = Contender(f"{key}@{tag}", f"{label}, {tag}", args.python, version, bool(version), extra=extra)
                made.append(variant)
    return made


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.broad:
        import broad  # bench/broad.py, beside this file

        return broad.main(["--smoke"] if args.smoke else ["--runs", str(args.runs or 2)])
    nginx_bin = find_nginx(args.nginx)
    if not nginx_bin:
        print(f"bench: nginx not found. {NGINX_HINT}", file=sys.stderr)
        return EXIT_USAGE
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    children = Children()
    work = Path(tempfile.mkdtemp(prefix="crawler-bench-run-"))
    state: dict[str, Any] = {}  # what the finally below must stop
    code = EXIT_FAILED
    try:
        code = _main(args, nginx_bin, children, work, state)
    except (KeyboardInterrupt, Interrupted):
        print("\nbench: interrupted; stopping the run in flight and nginx", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except RuntimeError as exc:  # nginx would not start
        print(f"bench: {exc}", file=sys.stderr)
        code = EXIT_FAILED
    finally:
        try:
            if "nginx" in state:
                state["nginx"].stop()
        finally:
            children.stop_all()  # the crawl in flight, if any (and nginx, if stopping it failed)
            signal.signal(signal.SIGTERM, previous_sigterm)
        if args.keep or code not in (0, EXIT_INTERRUPTED):
            print(f"bench: outputs and logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


def _main(args: argparse.Namespace, nginx_bin: str, children: Children, work: Path, state: dict) -> int:
    started = datetime.datetime.now(datetime.UTC)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    site, manifest, generated = _ensure_site_in_child(args, children, work)
    gen_s = time.perf_counter() - t0
    print(
        f"site: {manifest['pages']:,} pages, {manifest['items']:,} items expected, "
        f"{'generated' if generated else 'cached'} in {site} ({gen_s:.1f} s)",
        flush=True,
    )
    _warm_page_cache(site)

    aliases = [f"127.0.0.{ALIAS_FIRST + k}" for k in range(args.hosts)]
    port = args.port or free_port()
    nginx_dir = work / "nginx"
    nginx_dir.mkdir()
    nginx = Nginx(nginx_bin, site, port, aliases, nginx_dir, children)
    state["nginx"] = nginx
    nginx.start()
    print(f"server: {nginx.version()} on 127.0.0.1:{port} and {aliases[0]}-{aliases[-1]}:{port}", flush=True)

    ours_version = probe(args.python, "crawler", "crawler")
    floor_version = probe(args.python, "aiohttp", "aiohttp")
    contenders = [
        Contender(
            "crawler",
            "crawler",
            args.python,
            ours_version,
            ours_version is not None,
            note="" if ours_version else f"cannot import crawler with {args.python}",
        ),
        Contender(
            "crawler_follow",
            "crawler, follow() per link",
            args.python,
            ours_version,
            ours_version is not None,
            note="" if ours_version else f"cannot import crawler with {args.python}",
        ),
        *(
            []
            if args.no_state
            else [Contender("crawler_state", "crawler --state (SQLite)", args.python, ours_version, bool(ours_version))]
        ),
        Contender(
            "floor",
            "raw aiohttp floor",
            args.python,
            floor_version and f"(aiohttp {floor_version})",
            floor_version is not None,
            note="" if floor_version else f"no aiohttp in {args.python}",
        ),
    ]
    more = variants(args, ours_version)
    if args.idioms:
        more += [
            Contender(key, label, args.python, ours_version, ours_version is not None)
            for key, label in (
                ("crawler_urljoin", "crawler, Request(urljoin()) per link"),
                ("crawler_rules", "crawler, CrawlSpider rule"),
            )
        ]
    contenders[2:2] = more  # after both idioms on aiohttp, before --state and the floor
    for who in contenders:
        if not who.available:
            print(f"bench: {who.label}: {who.note}", file=sys.stderr)
            return EXIT_USAGE
    if args.peers:
        peers = [find_peer("scrapy", args.scrapy_python), find_peer("crawlee", args.crawlee_python)]
        contenders += peers
        for who in peers:
            if not who.available:
                print(f"note: {who.label} skipped: {who.note}", flush=True)

    bench = Bench(args, children, nginx, manifest, work)
    if not args.politeness:
        bench.throughput(contenders)
    politeness = None if args.no_politeness else bench.politeness(args.python)
    if politeness is not None:
        politeness["trim"] = args.trim

    floor_summary = summarize(next(c for c in contenders if c.key == "floor"), None)
    floor_median = floor_summary.get("pages_per_s_median")
    summaries = {who.key: summarize(who, floor_median) for who in contenders if who.available}
    lines: list[str] = []
    if not args.politeness:
        lines += [
            "",
            f"{manifest['pages']:,} pages, {args.runs} run(s) each of "
            + ", ".join(c.key for c in contenders if c.base in OURS)
            + (f", {args.peer_runs} per peer" if args.peers else "")
            + f", concurrency {args.concurrency}; pages/s = {manifest['pages']:,} / wall time of the process",
            *table(contenders, summaries),
        ]
    if politeness is not None:
        lines += ["", *politeness_lines(politeness)]
    if bench.failures:
        lines += ["", f"FAILURES ({len(bench.failures)}):", *(f"  {f}" for f in bench.failures)]
    print("\n".join(lines), flush=True)

    if args.json:
        result = {
            "mode": args.mode,
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "ok": not bench.failures,
            "failures": bench.failures,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "loadavg_start": [round(x, 2) for x in load_start],
                "loadavg_end": [round(x, 2) for x in os.getloadavg()],
            },
            "git": _git_info(),
            "site": {"dir": str(site), "generated": generated, "generate_s": round(gen_s, 2), **manifest},
            "server": {
                "nginx": nginx.version(),
                "port": port,
                "aliases": [aliases[0], aliases[-1]],
                "error_log": nginx.warnings(),
            },
            "throughput": None
            if args.politeness
            else {
                "url": bench.url,
                "concurrency": args.concurrency,
                "runs": args.runs,
                "pages_per_s_is": "manifest pages / wall time of the child process",
                "crawlers": {
                    who.key: {
                        "label": who.label,
                        "version": who.version,
                        "python": who.python,
                        "available": who.available,
                        "note": who.note,
                        "command": " ".join(
                            map(str, who.command(bench.url, Path("out.jsonl"), Path("stats.json"), args.concurrency))
                        ),
                        "summary": summaries.get(who.key),
                        "runs": who.runs,
                    }
                    for who in contenders
                },
            },
            "politeness": politeness,
            "table": lines,
            "harness_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nresults: {args.json}", flush=True)
    return EXIT_FAILED if bench.failures else 0


def _ensure_site_in_child(args: argparse.Namespace, children: Children, work: Path) -> tuple[Path, dict, bool]:
    """The cached site, generated by a child process when missing (keeps this process small:
    a child's peak RSS, as ``wait4`` reports it, starts from its parent's)."""
    directory = benchsite.site_dir(args.pages, args.seed, benchsite.DEFAULT_FILLER, args.site_root)
    manifest = benchsite.load_manifest(directory)
    if manifest and manifest.get("generator_version") == benchsite.GENERATOR_VERSION:
        return directory, manifest, False
    print(f"site: generating {args.pages:,} pages in {directory} ...", flush=True)
    cmd = [
        sys.executable,
        str(BENCH / "site.py"),
        "--pages",
        str(args.pages),
        "--seed",
        str(args.seed),
        "--root",
        str(args.site_root),
    ]
    child = children.run(cmd, cwd=REPO, log=work / "site.log", timeout=60 + args.pages / 100)
    manifest = benchsite.load_manifest(directory)
    if child.exit_code != 0 or not manifest:
        raise SystemExit(f"bench: site generation failed: {' | '.join(_tail(work / 'site.log', 5))}")
    return directory, manifest, True


def _warm_page_cache(site: Path) -> None:
    """Read every file once, so the first timed run does not pay for the disk.

    ``os.scandir`` iterates without building a list of 20,000 paths: this process stays small.
    """
    buf = bytearray(1 << 20)
    dirs = [str(site)]
    while dirs:
        with os.scandir(dirs.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    with open(entry.path, "rb", buffering=0) as f:
                        while f.readinto(buf):
                            pass


def _git_info() -> dict:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {
        "commit": git("rev-parse", "HEAD"),
        "framework_dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "crawler", "plugins")),
    }


if __name__ == "__main__":
    sys.exit(main())
