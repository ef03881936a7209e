"""Workers of one shared crawl as real processes: the CLI started three times on one Redis
frontier, one of them killed with SIGKILL mid-crawl; the others finish the crawl, and every
item is in exactly one of the outputs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from test_resume import SPIDER, read_items, run_crawler, shop


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


async def test_three_workers_one_killed_the_others_finish_with_every_item_once(server, frontier, tmp_path):
    paths = shop(server)
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    # domain_concurrency holds for the whole crawl, concurrency for each worker: room for all three.
    common = ["-a", f"base={server.url('').rstrip('/')}", "--frontier", frontier, "-s", "lease_timeout=2",
              "-s", "concurrency=3", "-s", "domain_concurrency=9", "--log-level", "WARNING"]
    outputs = [tmp_path / f"items-{n}.jsonl" for n in range(3)]
    killed, *others = await asyncio.gather(
        run_crawler(tmp_path, *common, "-o", str(outputs[0]), kill_after=1.0),
        *(run_crawler(tmp_path, *common, "-o", str(out)) for out in outputs[1:]),
    )
    assert killed[0] == -signal.SIGKILL, "killed mid-crawl"
    for code, stderr in others:
        assert code == 0, stderr
        assert "crawl finished" in stderr
        assert f"whole crawl (all workers): {len(paths) + 1} pages, {len(paths)} items, 0 queued" in stderr

    items = [item for out in outputs if out.exists() and out.stat().st_size for item in read_items(out, "jsonl")]
    urls = Counter(item["url"] for item in items)
    assert urls == Counter({server.url(p): 1 for p in paths}), "every product exactly once across the outputs"
    assert sum(1 for out in outputs if out.exists() and out.stat().st_size) >= 2, "the workers shared the crawl"

    status = _cli("status", "--frontier", frontier, "--crawl-id", "shop", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["queued"] == state["leased"] == 0
    assert state["totals"]["pages"] == len(paths) + 1 and state["totals"]["items"] == len(paths)
    assert state["workers"] == []

    text = _cli("status", "--frontier", frontier, cwd=tmp_path)
    assert "crawl shop (spider shop): finished" in text.stdout

    cleared = _cli("clear", "--frontier", frontier, "--crawl-id", "shop", cwd=tmp_path)
    assert cleared.returncode == 0 and "cleared crawl shop" in cleared.stdout
    after = _cli("status", "--frontier", frontier, "--crawl-id", "shop", cwd=tmp_path)
    assert "not found" in after.stdout


async def test_a_worker_joining_a_finished_crawl_exits_at_once(server, frontier, tmp_path):
    shop(server)
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    args = ["-a", f"base={server.url('').rstrip('/')}", "--frontier", frontier, "--log-level", "WARNING"]
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    hits = len(server.hits)
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    assert len(server.hits) == hits, "nothing fetched again"
    assert "0 pages" in stderr


def test_status_of_an_unreachable_frontier_is_one_line(tmp_path):
    result = _cli("status", "--frontier", "redis://:secret@127.0.0.1:1/0", cwd=tmp_path)
    assert result.returncode == 1
    assert "secret" not in result.stderr
    assert result.stderr.count("\n") == 1 and "127.0.0.1:1" in result.stderr
