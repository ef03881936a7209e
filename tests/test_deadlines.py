"""Fetch time limits (``timeout``, ``read_timeout``) enforced by the downloader's one sweep.

The downloader fetches from a real aiohttp server on 127.0.0.1 whose handlers stall or
trickle on purpose. Bounds on elapsed time are generous: they tell a limit that fired from
one that did not, never how fast anything ran.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web
from support import DOWNLOADERS

from crawler import Request, RequestFailed, Settings
from crawler._deadlines import Deadlines, Fetch
from crawler._downloader import Fetcher, load_downloader


async def _trickle(request: web.Request) -> web.StreamResponse:
    """100 bytes, one every ``gap`` seconds (query ``gap``), after the headers."""
    gap = float(request.query.get("gap", "0.05"))
    response = web.StreamResponse(headers={"Content-Type": "text/plain", "Content-Length": "100"})
    await response.prepare(request)
    for _ in range(100):
        await response.write(b"x")
        await asyncio.sleep(gap)
    await response.write_eof()
    return response


async def _stall_after_headers(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain", "Content-Length": "100"})
    await response.prepare(request)
    await response.write(b"first ten.")
    await asyncio.sleep(30)
    return response


async def _never_answers(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(text="too late")


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="fine")


@pytest.fixture
async def base_url():
    app = web.Application()
    app.router.add_get("/trickle", _trickle)
    app.router.add_get("/stall", _stall_after_headers)
    app.router.add_get("/silent", _never_answers)
    app.router.add_get("/ok", _ok)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture(params=DOWNLOADERS)
async def downloader_for(request):
    """Every downloader meets the same limits: the engine's sweep, fed by its progress."""
    opened: list[Fetcher] = []

    async def make(**settings: float) -> Fetcher:
        downloader = Fetcher(load_downloader(request.param)(), Settings(**settings))
        await downloader.open()
        opened.append(downloader)
        return downloader

    yield make
    for downloader in opened:
        await downloader.aclose()


async def test_whole_request_limit_ends_a_body_that_keeps_coming(base_url, downloader_for):
    downloader = await downloader_for(timeout=0.5, read_timeout=10)
    started = time.monotonic()

    with pytest.raises(RequestFailed) as caught:
        await downloader.fetch(Request(f"{base_url}/trickle?gap=0.05"))  # 5 s in all, never silent

    assert caught.value.reason == "timeout"
    assert "no complete answer within 0.5s" in str(caught.value)
    assert caught.value.request is not None and caught.value.request.url.endswith("/trickle?gap=0.05")
    assert 0.5 <= time.monotonic() - started < 4


async def test_read_limit_ends_a_body_that_stops_coming(base_url, downloader_for):
    downloader = await downloader_for(timeout=30, read_timeout=0.3)
    started = time.monotonic()

    with pytest.raises(RequestFailed) as caught:
        await downloader.fetch(Request(f"{base_url}/stall"))

    assert caught.value.reason == "timeout"
    assert "no data for 0.3s" in str(caught.value)
    assert 0.3 <= time.monotonic() - started < 10


async def test_read_limit_covers_the_wait_for_the_status_line(base_url, downloader_for):
    downloader = await downloader_for(timeout=30, read_timeout=0.3)

    with pytest.raises(RequestFailed) as caught:
        await downloader.fetch(Request(f"{base_url}/silent"))

    assert caught.value.reason == "timeout"


async def test_slow_but_steady_body_inside_both_limits_arrives_whole(base_url, downloader_for):
    # A byte every 20 ms for 2 s: never silent for read_timeout, done well within timeout.
    downloader = await downloader_for(timeout=20, read_timeout=0.5)

    response = await downloader.fetch(Request(f"{base_url}/trickle?gap=0.02"))

    assert response.status == 200
    assert response.body == b"x" * 100


async def test_a_timeout_leaves_the_task_uncancelled_for_what_comes_next(base_url, downloader_for):
    downloader = await downloader_for(timeout=0.3, read_timeout=10)

    with pytest.raises(RequestFailed):
        await downloader.fetch(Request(f"{base_url}/silent"))

    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    response = await downloader.fetch(Request(f"{base_url}/ok"))  # the same task fetches on
    assert response.text == "fine"
    await asyncio.sleep(0.05)  # and a plain await is not hit by a stale cancellation


async def test_cancelling_a_fetch_from_outside_stays_a_cancellation(base_url, downloader_for):
    downloader = await downloader_for(timeout=30, read_timeout=30)
    fetching = asyncio.create_task(downloader.fetch(Request(f"{base_url}/silent")))
    await asyncio.sleep(0.2)

    fetching.cancel()

    with pytest.raises(asyncio.CancelledError):
        await fetching


async def watched_fetch(deadlines: Deadlines, record: dict[str, object]) -> tuple[asyncio.Task[None], Fetch]:
    """A task stuck in a watched "fetch" that records what ``done`` says when it is cancelled."""
    started = asyncio.Event()

    async def fetch() -> None:
        watched = deadlines.watch()
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            record["limit"] = deadlines.done(watched, exc)
            record["cancelling"] = asyncio.current_task().cancelling()  # type: ignore[union-attr]
            if record.get("reraise"):
                raise

    task = asyncio.create_task(fetch())
    await started.wait()
    (watched,) = deadlines._watched
    return task, watched


async def test_outside_cancellation_arriving_with_the_deadline_is_not_swallowed():
    deadlines = Deadlines(timeout=30, read_timeout=30)
    record: dict[str, object] = {"reraise": True}
    task, watched = await watched_fetch(deadlines, record)

    deadlines._expire(watched, "timeout")  # the sweep's cancel ...
    task.cancel()  # ... and the crawl being stopped, in the same loop iteration

    with pytest.raises(asyncio.CancelledError):
        await task
    assert record["limit"] is None  # not reported as a timeout: the outer cancellation goes on
    deadlines.close()


async def test_deadline_alone_is_reported_as_the_limit_and_uncancelled():
    deadlines = Deadlines(timeout=30, read_timeout=30)
    record: dict[str, object] = {}
    task, watched = await watched_fetch(deadlines, record)

    deadlines._expire(watched, "read_timeout")
    await task

    assert record == {"limit": "read_timeout", "cancelling": 0}
    assert not deadlines._watched
    deadlines.close()


def test_limits_still_fire_in_a_second_event_loop():
    """A sweep left armed on a finished loop must not stop the next loop's sweeps."""
    deadlines = Deadlines(timeout=0.2, read_timeout=10)

    async def fetch(wait: float) -> str:
        watched = deadlines.watch()
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError as exc:
            return f"timed out ({deadlines.done(watched, exc)})"
        deadlines.done(watched, None)
        return "completed"

    assert asyncio.run(fetch(0)) == "completed"  # ends with the sweep still armed on that loop
    assert asyncio.run(fetch(5)) == "timed out (timeout)"
