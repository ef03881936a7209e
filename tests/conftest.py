"""Shared fixtures: a real aiohttp server on 127.0.0.1, a real redis-server, an aioresponses shim."""

from __future__ import annotations

import asyncio
import gc
from unittest.mock import Mock

import aiohttp
import pytest
from support import FAST, RedisServer, TestServer


@pytest.fixture
def steady_loop():
    """For tests that measure gaps between requests on the server's clock (which runs in the
    crawler's own event loop): the session's objects so far are set aside from the garbage
    collector, so a full collection (tens of ms late in the suite on this machine) pauses for
    the test's own objects only, not between a request's send and the server seeing it."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture
async def server():
    srv = TestServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


# --- aioresponses on aiohttp 3.14 -------------------------------------------------------------
# aioresponses 0.7.9 builds ClientResponse without the `stream_writer` argument that aiohttp
# 3.14 requires (aioresponses issue #289, fix unreleased). Delete this shim once aioresponses
# ships the fix.


class _ShimResponse(aiohttp.ClientResponse):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("stream_writer", Mock(output_size=0))
        super().__init__(*args, **kwargs)


@pytest.fixture
def mocked():
    from aioresponses import aioresponses

    with aioresponses() as m:
        original = m.add

        def add(*args, **kwargs):
            kwargs.setdefault("response_class", _ShimResponse)
            return original(*args, **kwargs)

        m.add = add  # type: ignore[method-assign]
        yield m


@pytest.fixture
def no_task_leaks():
    """Fails the test if it leaves tasks running in the loop."""
    yield
    loop = asyncio.get_event_loop()
    pending = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task(loop) and not t.done()]
    assert not pending, f"tasks left running: {pending}"


@pytest.fixture(scope="session")
def redis_server():
    """One redis-server for the session (127.0.0.1, a free port, persistence off)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def frontier(redis_server) -> str:
    """A shared frontier's URL, on an empty Redis."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def downloader(request, monkeypatch) -> str:
    """The downloader a test crawls with (``support.over_downloaders`` runs a test once per
    downloader): set in ``FAST`` and in the test module's own ``RETRY``, if it has one."""
    name = getattr(request, "param", "aiohttp")
    monkeypatch.setitem(FAST, "downloader", name)
    retry = getattr(request.module, "RETRY", None)
    if isinstance(retry, dict):
        monkeypatch.setitem(retry, "downloader", name)
    return name
