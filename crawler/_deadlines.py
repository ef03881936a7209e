"""Time limits for in-flight fetches, enforced by one periodic sweep instead of a timer each.

aiohttp's own ``total`` and ``sock_read`` timeouts arm a loop timer for every request and
re-arm the read timer on every chunk received: about 17 µs of CPU per request on the bench
(a tenth of the whole hot path). Here each fetch registers an entry in a set, and one
callback, every ``interval`` seconds while anything is in flight, cancels the task of a fetch
whose whole-request time is up or whose response has not grown for ``read_timeout`` (counted
from the start of the request until the first byte arrives). A limit thus fires up to one
interval late; the interval is a tenth of the shorter limit, at most one second (aiohttp
itself rounds limits of 5 s or more up to a whole second).

The cancellation is the task's own, as ``asyncio.timeout`` does it: the fetch sees
``CancelledError``, and :meth:`Deadlines.done` tells it (undoing that one cancellation)
whether it was this sweep's, to be reported as a timeout, or someone else's, to be passed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Deadlines", "Fetch"]


class Fetch:
    """One fetch being watched, and its read progress as the downloader reports it (the
    public name is ``ReadProgress``): ``received``, the body's bytes so far (-1 until the
    status line has arrived), or, for a client that counts them itself, ``count_with``."""

    __slots__ = ("cancelling", "counter", "deadline", "expired", "progress_at", "received", "seen", "task")

    def __init__(self, task: asyncio.Task[object], now: float, deadline: float) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.deadline = deadline
        self.progress_at = now
        self.seen = -1  # bytes of the body received at the last sweep; -1: no response yet
        self.received = -1
        self.counter: Callable[[], int] | None = None
        self.expired: str | None = None  # why the sweep cancelled it: "timeout" or "read_timeout"

    def count_with(self, counter: Callable[[], int]) -> None:
        """The status line has arrived; ``counter()`` tells the body's bytes received so far
        (read by the sweep, so a client's own count costs nothing per chunk)."""
        self.counter = counter


class Deadlines:
    def __init__(self, timeout: float, read_timeout: float) -> None:
        self.timeout = timeout
        self.read_timeout = read_timeout
        self.interval = max(0.01, min(1.0, timeout / 10, read_timeout / 10))
        self._watched: set[Fetch] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweeping: asyncio.AbstractEventLoop | None = None  # the loop _sweeper belongs to

    def watch(self) -> Fetch:
        """Start watching the fetch the current task is about to make."""
        task = asyncio.current_task()
        assert task is not None, "a fetch runs in a task"
        loop = task.get_loop()
        now = loop.time()
        fetch = Fetch(task, now, now + self.timeout)
        self._watched.add(fetch)
        if self._sweeper is None or self._sweeping is not loop:  # (a handle left on a closed loop never fires)
            self._sweeping = loop
            self._sweeper = loop.call_at(now + self.interval, self._sweep, loop)
        return fetch

    def done(self, fetch: Fetch, error: BaseException | None) -> str | None:
        """Stop watching ``fetch``. When ``error`` is the cancellation its deadline caused,
        return which limit it was (``"timeout"`` or ``"read_timeout"``), else None."""
        self._watched.discard(fetch)
        if fetch.expired is None:
            return None
        # Undo our cancel() whatever happened (aiohttp may have swallowed it), so the task's
        # cancellation count is as the fetch found it; a cancellation from elsewhere stays.
        ours = fetch.task.uncancel() <= fetch.cancelling and isinstance(error, asyncio.CancelledError)
        return fetch.expired if ours else None

    def close(self) -> None:
        """Stop sweeping (the fetches still watched are left to end on their own)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._sweeping:
            return  # a stale handle of a loop that has since been replaced
        self._sweeper = None
        if not self._watched:
            return  # armed again by the next watch()
        now = loop.time()
        read_timeout = self.read_timeout
        for fetch in self._watched:
            if fetch.expired is not None:
                continue
            if now >= fetch.deadline:
                self._expire(fetch, "timeout")
                continue
            counter = fetch.counter
            seen = fetch.received if counter is None else counter()
            if seen != fetch.seen:
                fetch.seen = seen
                fetch.progress_at = now
            elif now - fetch.progress_at >= read_timeout:
                self._expire(fetch, "read_timeout")
        self._sweeper = loop.call_at(now + self.interval, self._sweep, loop)

    @staticmethod
    def _expire(fetch: Fetch, limit: str) -> None:
        fetch.expired = limit
        fetch.task.cancel()
