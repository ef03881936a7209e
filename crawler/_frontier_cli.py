"""``python -m crawler status`` and ``clear``: a shared crawl seen from any machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from typing import Any

from ._cli import reader_gone
from ._exceptions import FrontierUnavailable
from ._redis_store import load_scripts
from ._settings import _frontier_url, _redact
from ._shared import crawl_prefix, crawl_status, redis_client

__all__ = ["frontier_command"]


def frontier_command(args: argparse.Namespace) -> int:
    """Exit codes: 0 done; 1 the frontier cannot be reached, or clear refused; 2 a bad URL."""
    try:
        _frontier_url("--frontier", args.frontier)
    except ValueError as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_status(args) if args.command == "status" else _clear(args))
    except (FrontierUnavailable, OSError) as exc:
        print(f"crawler: error: the frontier at {_redact(args.frontier)}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if type(exc).__module__.startswith("redis"):
            print(f"crawler: error: the frontier at {_redact(args.frontier)}: {exc}", file=sys.stderr)
            return 1
        raise


async def _crawl_ids(client: Any) -> list[str]:
    found = []
    async for key in client.scan_iter(match="crawler:{*}:spider", count=1000):
        found.append(key[len("crawler:{") : -len("}:spider")])
    return sorted(found)


async def _status(args: argparse.Namespace) -> int:
    client = redis_client(args.frontier)
    try:
        scripts = load_scripts(client)
        ids = [args.crawl_id] if args.crawl_id else await _crawl_ids(client)
        states = [await crawl_status(scripts, client, crawl_id) for crawl_id in ids]
    finally:
        await client.aclose()
    for state in states:  # (workers of this machine only: others' processes cannot be seen)
        state["ended_here"] = [worker for worker in state["workers"] if _ended_here(worker)]
    if args.json:
        text = json.dumps(states if not args.crawl_id else states[0], indent=2)
    else:
        text = "\n".join(_describe(state) for state in states) or f"no crawls in {_redact(args.frontier)}"
    try:
        print(text, flush=True)
    except BrokenPipeError:
        reader_gone()
    return 0


def _ended_here(worker: str) -> bool:
    """A worker of this machine whose process has ended (killed, say): it counts as alive in
    the frontier until its heartbeat expires (``lease_timeout``), but it is not coming back."""
    host, _, rest = worker.rpartition(":")[0].rpartition(":")  # "host:pid:tag"
    if host != socket.gethostname() or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # another user's process (it runs), or no pid of this machine
        return False
    return False


def _describe(state: dict[str, Any]) -> str:
    if state["spider"] is None:
        return f"crawl {state['crawl_id']}: not found"
    start = state["start"]
    lines = [
        f"crawl {state['crawl_id']} (spider {state['spider']}): "
        + ("finished" if not state["queued"] and not state["leased"] and start == "done" else "in progress"),
        f"  queued {state['queued']}, leased {state['leased']}, seen {state['seen']}"
        + (f", pages left {state['pages_left']}" if state["pages_left"] is not None else ""),
        "  start requests: " + ("all added" if start == "done" else f"being added by {start}" if start else "not done"),
        f"  workers alive: {len(state['workers'])}" + (f" ({', '.join(state['workers'])})" if state["workers"] else ""),
        *(
            [f"  of which ended on this machine (killed?), counted until their heartbeat expires: "
             f"{', '.join(state['ended_here'])}"]
            if state["ended_here"] else []
        ),
        "  totals: " + (", ".join(f"{k} {v}" for k, v in sorted(state["totals"].items())) or "none yet"),
    ]
    if state["paused"]:
        waits = ", ".join(f"{domain} {ms / 1000:.1f}s" for domain, ms in state["paused"].items())
        lines.append(f"  domains waiting (pause or Crawl-delay): {waits}")
    return "\n".join(lines)


def _glob_escaped(text: str) -> str:
    """``text`` matched literally by a SCAN pattern: a crawl named ``shop*`` must not clear
    the crawl ``shop``."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _clear(args: argparse.Namespace) -> int:
    client = redis_client(args.frontier)
    try:
        scripts = load_scripts(client)
        state = await crawl_status(scripts, client, args.crawl_id)
        if state["workers"] and not args.force:
            print(
                f"crawler: error: {len(state['workers'])} workers are still running crawl {args.crawl_id} "
                "(stop them, or pass --force)",
                file=sys.stderr,
            )
            return 1
        deleted = 0
        batch: list[str] = []
        async for key in client.scan_iter(match=_glob_escaped(crawl_prefix(args.crawl_id)) + "*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await client.unlink(*batch)
    finally:
        await client.aclose()
    print(f"cleared crawl {args.crawl_id}: {deleted} keys deleted")
    return 0
