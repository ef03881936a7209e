"""Workers of one shared crawl as real processes: the CLI started three times on one Redis
frontier, one of them killed with SIGKILL mid-crawl; the others finish the crawl, and every
item is in exactly one of the outputs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_resume import SPIDER, read_items, run_crawler, shop


def _shop(server, tmp_path: Path) -> list[str]:
    """The shop site on ``server`` and its spider in ``tmp_path``; the product pages' paths."""
    paths = shop(server)
    (tmp_path / "spider.py").write_text(SPIDER, encoding="utf-8")
    return paths


def _items_in(out: Path, fmt: str = "jsonl") -> list[dict]:
    """The items in an output (none if its worker never wrote to it)."""
    return read_items(out, fmt) if out.exists() and out.stat().st_size else []


def _workers(server, frontier: str, *, lease_timeout: int) -> list[str]:
    """The arguments of a worker of the shop crawl: 3 connections each, 9 for the crawl
    (domain_concurrency holds for the whole crawl, concurrency for each worker)."""
    return ["-a", f"base={server.url('').rstrip('/')}", "--frontier", frontier, "-s", f"lease_timeout={lease_timeout}",
            "-s", "concurrency=3", "-s", "domain_concurrency=9", "--log-level", "WARNING"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


async def test_three_workers_one_killed_the_others_finish_with_every_item_once(server, frontier, tmp_path):
    paths = _shop(server, tmp_path)
    # domain_concurrency holds for the whole crawl, concurrency for each worker: room for all three.
    common = _workers(server, frontier, lease_timeout=2)
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

    items = [item for out in outputs for item in _items_in(out)]
    urls = Counter(item["url"] for item in items)
    assert urls == Counter({server.url(p): 1 for p in paths}), "every product exactly once across the outputs"
    assert sum(1 for out in outputs if _items_in(out)) >= 2, "the workers shared the crawl"

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
    _shop(server, tmp_path)
    args = ["-a", f"base={server.url('').rstrip('/')}", "--frontier", frontier, "--log-level", "WARNING"]
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    hits = len(server.hits)
    code, stderr = await run_crawler(tmp_path, *args)
    assert code == 0, stderr
    assert len(server.hits) == hits, "nothing fetched again"
    assert "0 pages" in stderr
    assert "no_pages_crawled" not in stderr, "the other workers' pages are the crawl's"


def test_clear_deletes_only_the_crawl_named_even_with_glob_characters(frontier, redis_server, tmp_path):
    for crawl_id in ("shop", "shop*", "sh?p", "[s]hop"):
        redis_server.command("SET", f"crawler:{{{crawl_id}}}:spider", "shop")
        redis_server.command("RPUSH", f"crawler:{{{crawl_id}}}:q:example.com", '{"url":"http://example.com/"}')
    cleared = _cli("clear", "--frontier", frontier, "--crawl-id", "shop*", cwd=tmp_path)
    assert cleared.returncode == 0 and "2 keys deleted" in cleared.stdout, cleared.stdout + cleared.stderr
    left = sorted(redis_server.command("KEYS", "crawler:*"))
    kept = ("shop", "sh?p", "[s]hop")
    assert left == sorted(f"crawler:{{{c}}}:{k}" for c in kept for k in ("spider", "q:example.com"))


def test_status_into_a_closed_pipe_reports_no_error(frontier, tmp_path):
    read, write = os.pipe()
    os.close(read)  # like `| head` that has read what it wanted
    try:
        result = subprocess.run([sys.executable, "-m", "crawler", "status", "--frontier", frontier], cwd=tmp_path,
                                stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_status_of_an_unreachable_frontier_is_one_line(tmp_path):
    result = _cli("status", "--frontier", "redis://:secret@127.0.0.1:1/0", cwd=tmp_path)
    assert result.returncode == 1
    assert "secret" not in result.stderr
    assert result.stderr.count("\n") == 1 and "127.0.0.1:1" in result.stderr


async def _start(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "run", str(tmp_path / "spider.py"), *args,
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def _end(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    stderr = await asyncio.wait_for(proc.stderr.read(), timeout=90)  # type: ignore[union-attr]
    return await asyncio.wait_for(proc.wait(), timeout=90), stderr.decode("utf-8", "replace")


async def _writing(out: Path) -> None:
    """Until the worker writing ``out`` has written an item (it has joined and holds the file:
    a fixed sleep may end before a loaded machine has even started it)."""
    for _ in range(600):
        if out.exists() and out.stat().st_size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing written to {out} in 30 s")


def _once(outputs: list[Path], server, paths: list[str]) -> None:
    items = [item for out in outputs for item in _items_in(out)]
    assert Counter(item["url"] for item in items) == Counter({server.url(p): 1 for p in paths}), "each item once"


async def test_a_stalled_workers_output_is_not_taken_over_and_every_item_stays_once(server, frontier, tmp_path):
    # A worker stopped (SIGSTOP) past its lease is presumed dead: others redo its requests.
    # A new worker on the stalled one's file is refused: that process still holds the file,
    # and when it comes back it cuts the file back to what it committed.
    paths = _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=1)
    stalled_out, other_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    stalled = await _start(tmp_path, *common, "-o", str(stalled_out))
    other = await _start(tmp_path, *common, "-o", str(other_out))
    await _writing(stalled_out)
    stalled.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(1.6)  # past its lease
        code, stderr = await run_crawler(tmp_path, *common, "-o", str(stalled_out))
        assert code == 2 and "being written by another process" in stderr, stderr
    finally:
        stalled.send_signal(signal.SIGCONT)
    summaries = []
    for proc in (stalled, other):
        code, stderr = await _end(proc)
        assert code == 0, stderr
        summaries.append(stderr)
    _once([stalled_out, other_out], server, paths)
    # The stalled worker's own count is what its file kept, not the items it cut back.
    kept = len(_items_in(stalled_out))
    assert re.search(rf"crawl finished: \d+ pages, {kept} items", summaries[0]), summaries[0]
    pages = [int(re.search(r"crawl finished: (\d+) pages", text).group(1)) for text in summaries]  # type: ignore[union-attr]
    assert sum(pages) == len(paths) + 1, "each page counted by the one worker whose work was kept"


async def test_a_killed_workers_output_is_taken_over_at_once(server, frontier, tmp_path):
    # SIGKILL frees the dead worker's file at once (the kernel drops its lock): a worker
    # restarted on it is accepted without waiting for the dead one's leases to expire, and
    # starts from what the dead one committed.
    paths = _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=4)
    first_out, other_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    other = await _start(tmp_path, *common, "-o", str(other_out))
    first = await _start(tmp_path, *common, "-o", str(first_out))
    await _writing(first_out)
    first.kill()
    assert await first.wait() == -signal.SIGKILL
    code, stderr = await run_crawler(tmp_path, *common, "-o", str(first_out))  # long before 4 s
    assert code == 0, stderr
    code, stderr = await _end(other)
    assert code == 0, stderr
    _once([first_out, other_out], server, paths)


async def test_status_names_a_killed_worker_of_this_machine_as_ended(server, frontier, tmp_path):
    # Until its heartbeat expires (lease_timeout) a killed worker counts as alive; on its own
    # machine, status can tell that its process has ended.
    _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=60)
    doomed = await _start(tmp_path, *common, "-o", str(tmp_path / "a.jsonl"))
    other = await _start(tmp_path, *common, "-o", str(tmp_path / "b.jsonl"))
    try:
        await _writing(tmp_path / "a.jsonl")
        doomed.kill()
        await doomed.wait()
        state = json.loads(_cli("status", "--frontier", frontier, "--crawl-id", "shop", "--json", cwd=tmp_path).stdout)
        ended = [worker for worker in state["workers"] if worker.split(":")[-2] == str(doomed.pid)]
        assert ended and state["ended_here"] == ended, state
        text = _cli("status", "--frontier", frontier, "--crawl-id", "shop", cwd=tmp_path).stdout
        assert f"ended on this machine (killed?), counted until their heartbeat expires: {ended[0]}" in text
    finally:
        other.kill()
        await other.wait()


async def test_workers_whose_crawl_is_wiped_from_redis_stop_with_one_clear_error(server, frontier, redis_server,
                                                                                 tmp_path):
    # Redis restarted empty (no persistence) mid-crawl: the workers cannot know what was done,
    # so they stop at once with a plain message, rather than waiting forever.
    _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=60)
    workers = [await _start(tmp_path, *common, "-o", str(tmp_path / f"{n}.jsonl")) for n in "ab"]
    try:
        await _writing(tmp_path / "a.jsonl")
        redis_server.command("FLUSHALL")
        for proc in workers:
            code, stderr = await _end(proc)
            assert code == 1, stderr
            assert "crawler: error: crawl failed: the crawl's state is gone from the frontier" in stderr, stderr
            assert "Group" not in stderr and "Traceback" not in stderr and "frontier_close_error" not in stderr, stderr
            # Its file is cut back to what Redis had committed, and its count says so.
            out = tmp_path / f"{'ab'[workers.index(proc)]}.jsonl"
            kept = len(_items_in(out))
            assert re.search(rf"crawl error: \d+ pages, {kept} items", stderr), stderr
    finally:
        for proc in workers:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert redis_server.command("KEYS", "*") == [], "nothing of the old crawl written back"


@pytest.mark.parametrize("max_items", [1, 150])
async def test_max_items_is_exact_for_the_whole_crawl(server, frontier, tmp_path, max_items):
    # Each worker sees the others' items a sync late; a batch that takes the crawl past
    # max_items is kept only up to it, and the outputs are cut back to match. A worker that
    # got no page before the limit was reached has done its part too: exit 0.
    paths = _shop(server, tmp_path)
    common = [*_workers(server, frontier, lease_timeout=60), "-s", f"max_items={max_items}"]
    outputs = [tmp_path / f"items-{n}.jsonl" for n in range(3)]
    # Each worker also writes a CSV file: both of its outputs are cut at the same item.
    results = await asyncio.gather(
        *(run_crawler(tmp_path, *common, "-o", str(out), "-o", str(out.with_suffix(".csv"))) for out in outputs)
    )
    for code, stderr in results:
        assert code == 0, stderr
        assert "whole crawl (all workers): " in stderr and f" {max_items} items" in stderr, stderr
    items = [item for out in outputs for item in _items_in(out)]
    assert len(items) == max_items and len({item["url"] for item in items}) == max_items
    for out in outputs:
        lines = _items_in(out)
        table = out.with_suffix(".csv")
        rows = _items_in(table, "csv")
        assert [row["url"] for row in rows] == [item["url"] for item in lines]
    assert {item["url"] for item in items} <= {server.url(p) for p in paths}
    # Each worker's own count is what its file kept.
    for out, (_, stderr) in zip(outputs, results, strict=True):
        kept = len(_items_in(out))
        assert re.search(rf"crawl max_items: \d+ pages, {kept} items", stderr), stderr


async def test_max_items_is_exact_when_a_worker_is_killed(server, frontier, redis_server, tmp_path):
    # The crawl reaches max_items before the killed worker's heartbeat expires: its file is
    # cut back to what it committed all the same (the kernel dropped its lock), by a worker
    # of its machine as it closes.
    _shop(server, tmp_path)
    common = [*_workers(server, frontier, lease_timeout=60), "-s", "max_items=200"]
    outputs = [tmp_path / f"items-{n}.jsonl" for n in range(3)]
    doomed = await _start(tmp_path, *common, "-o", str(outputs[0]))
    others = [await _start(tmp_path, *common, "-o", str(out)) for out in outputs[1:]]
    await _writing(outputs[0])
    output_id = f"{socket.gethostname()}:{outputs[0].resolve()}"
    # Killed while its file holds items Redis has not committed: a worker writes its items
    # just before the sync that commits them, so the syncs are held up (CLIENT PAUSE) until
    # one has written and waits for Redis.
    for _ in range(100):
        redis_server.command("CLIENT", "PAUSE", "300", "WRITE")
        try:
            await asyncio.sleep(0.05)
            record = redis_server.command("HGET", "crawler:{shop}:outputs", output_id)
            if record and outputs[0].stat().st_size > int(record.split("\t")[1]):
                doomed.kill()
                break
        finally:
            redis_server.command("CLIENT", "UNPAUSE")
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the worker never had uncommitted items in its file")
    await doomed.wait()
    for proc in others:
        code, stderr = await _end(proc)
        assert code == 0, stderr
    items = [item for out in outputs for item in _items_in(out)]
    assert len(items) == 200 and len({item["url"] for item in items}) == 200
    # A worker started once the crawl has its items has nothing to do, and that is no error.
    code, stderr = await run_crawler(tmp_path, *common, "-o", str(tmp_path / "late.jsonl"))
    assert code == 0 and "no pages crawled" not in stderr, stderr


async def test_a_worker_whose_output_cannot_be_written_stops_and_its_pages_are_redone(server, frontier, tmp_path):
    # Its disk is full (a file size limit: EFBIG, as ENOSPC): the write before a commit fails,
    # so nothing since the last commit is kept, those pages go back to the queue, and the
    # worker stops with the error. The other worker finishes the crawl: every item once.
    import resource

    paths = _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=30)
    full, other_out = tmp_path / "full.jsonl", tmp_path / "other.jsonl"
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, hard))

    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crawler", "run", str(tmp_path / "spider.py"), *common, "-o", str(full),
        cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, preexec_fn=small_disk,
    )
    other = await _start(tmp_path, *common, "-o", str(other_out))
    code, stderr = await _end(doomed)
    assert code != 0 and "output_write_failed" in stderr, stderr
    assert str(full) in stderr, "the error names the output"
    assert 0 < full.stat().st_size <= 600
    code, stderr = await _end(other)
    assert code == 0, stderr
    _once([full, other_out], server, paths)


async def test_two_workers_started_at_once_on_one_output_one_is_refused(server, frontier, tmp_path):
    paths = _shop(server, tmp_path)
    common = ["-a", f"base={server.url('').rstrip('/')}", "--frontier", frontier, "--log-level", "WARNING"]
    out = tmp_path / "same.jsonl"
    results = await asyncio.gather(*(run_crawler(tmp_path, *common, "-o", str(out)) for _ in range(2)))
    assert sorted(code for code, _ in results) == [0, 2], results
    assert any("being written by another process" in stderr for _, stderr in results)
    _once([out], server, paths)


async def test_a_json_array_output_taken_over_stays_locked_and_whole(server, frontier, tmp_path):
    # Taking over a dead worker's JSON array cuts it back and closes the array again in
    # place: the file stays the one the new worker locked, so a third process is refused.
    paths = _shop(server, tmp_path)
    common = _workers(server, frontier, lease_timeout=3)
    array, other_out = tmp_path / "items.json", tmp_path / "b.jsonl"
    other = await _start(tmp_path, *common, "-o", str(other_out))
    code, _ = await run_crawler(tmp_path, *common, "-O", str(array), kill_after=1.0)
    assert code == -signal.SIGKILL
    replacement = await _start(tmp_path, *common, "-o", str(array))
    await asyncio.sleep(1.0)
    code, stderr = await run_crawler(tmp_path, *common, "-o", str(array))
    assert code == 2 and "being written by another process" in stderr, stderr
    for proc in (replacement, other):
        code, stderr = await _end(proc)
        assert code == 0, stderr
    items = json.loads(array.read_text(encoding="utf-8")) + read_items(other_out, "jsonl")
    assert Counter(item["url"] for item in items) == Counter({server.url(p): 1 for p in paths})
