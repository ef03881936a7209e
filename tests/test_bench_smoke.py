"""Smoke runs of the benchmark harnesses (bench/run.py, bench/broad.py): every crawl must give every item.

Performance is measured by bench/run.py, never asserted here: this only checks that the
harness, the bench spiders and the crawler agree on the items (counts). It needs nginx
(.ci/run installs it); without nginx the harness exits 2 and this test fails with that message.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke_run_produces_every_item():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--idioms"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for label in ("follow() per link", "Request(urljoin()) per link", "CrawlSpider rule", "floor"):
        assert label in result.stdout


def test_broad_bench_smoke_run_produces_every_item():
    # bench/broad.py (through run.py --broad) on 20 loopback hosts (127.1.0.x) of 2 pages,
    # beside a 200-page single-host crawl.
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--broad", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all runs correct" in result.stdout
