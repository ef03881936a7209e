"""The frontier store: what is queued, per domain, and which domain may send next.

The store keeps each domain's queue (by priority, FIFO within one; retries wait apart until
their not-before time) and the seen-set of fingerprints, and hands out the next request of a
domain that its :class:`~crawler._pacer.Pacer` says is ready. Domains are kept in a heap by
the time they may next send, so a hand-out looks only at domains whose time has come: ten
thousand domains paused by Retry-After cost nothing while they wait, instead of being
skipped one by one on every hand-out. Domains with the same time take turns (round robin).

Entries are compact: a plain followed link is queued as ``(url, (callback, depth))`` with the
template shared by every link of its kind (about 60 bytes besides the URL); anything else is
kept as its Request.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Protocol

from ._pacer import Pacer
from ._request import Request
from ._seen import FingerprintSet

__all__ = ["FrontierStore", "MemoryStore", "uses_budget"]

_Template = tuple[Callable[..., object] | None, int]  # (callback, depth), shared by many links
_Entry = tuple[str, _Template] | Request
_PROMOTED = 1 << 31  # above every priority: see _Queue.promote_unbudgeted


class FrontierStore(Protocol):
    """What the frontier's policy asks of a store."""

    seen: FingerprintSet  #: fingerprints of every request accepted so far (the link screen reads it)

    def see(self, fingerprint: int) -> bool:
        """Record ``fingerprint``; True if it is new."""
        ...

    def accept(self, request: Request) -> None:
        """``request`` enters the crawl (a new chain): a durable store records it now, before
        it may wait for its robots.txt; raises ``UnstorableRequest`` if it cannot keep it."""
        ...

    def push(self, request: Request, now: float) -> None:
        """Queue ``request`` (its ``domain`` set); it waits for its ``not_before`` if that is later."""
        ...

    async def lease(self, now: float, *, fresh: bool) -> tuple[Request | None, float]:
        """The next request of a domain that may send now, or ``(None, when)``: the soonest
        time one may (``inf``: not until a slot is freed or something is pushed). With
        ``fresh`` False, only retries, redirect hops and internal requests go out."""
        ...

    def done(self, request: Request, now: float) -> None:
        """``request`` finished downloading (its domain's slot is free)."""
        ...

    def budget_restored(self, now: float, request: Request | None = None) -> None:
        """Fresh requests may go out again (``request``'s chain ended without a page, and was
        refunded to ``max_pages``)."""
        ...

    def has_unbudgeted(self) -> bool:
        """Any queued retry, redirect hop or internal request."""
        ...

    def drain(self) -> int:
        """Drop everything queued; the number of requests dropped (internal ones not counted)."""
        ...

    def active(self) -> bool:
        """Anything queued or waiting for its not-before time."""
        ...

    def queued(self, key: str) -> int:
        """Requests queued for domain ``key``."""
        ...

    def advance(self, request: Request) -> None:
        """The chain goes on as ``request`` (a redirect hop): a durable store resumes it from there."""
        ...

    def finish(self, request: Request, *, page: bool = False, items: int = 0) -> None:
        """``request``'s chain has ended (a page, with ``items`` exported; filtered; or failed):
        a durable store forgets it."""
        ...

    def end_reason(self) -> str | None:
        """Why the crawl ends when nothing is left to hand out (``max_pages`` kept by a shared store)."""
        ...

    def domains(self) -> list[str]:
        """The domains with requests queued."""
        ...


def uses_budget(entry: _Entry) -> bool:
    """The first hand-out of a chain counts against max_pages; retries and hops do not."""
    if isinstance(entry, tuple):
        return True
    return entry.attempt == 1 and entry.redirects == 0 and not entry.internal


class _Fifo:
    """A FIFO as a list read from a moving start: a broad crawl holds a queue for each of
    100,000 domains with a few requests each, and a deque costs ~620 bytes even empty."""

    __slots__ = ("items", "start")

    def __init__(self) -> None:
        self.items: list[_Entry] = []
        self.start = 0

    def append(self, entry: _Entry) -> None:
        self.items.append(entry)

    def __len__(self) -> int:
        return len(self.items) - self.start

    def __getitem__(self, index: int) -> _Entry:
        return self.items[self.start + index]

    def __iter__(self) -> Iterator[_Entry]:
        return iter(self.items[self.start :])

    def popleft(self) -> _Entry:
        items, start = self.items, self.start
        entry = items[start]
        items[start] = None  # type: ignore[call-overload]  # (no reference kept to what left)
        start += 1
        if start >= 64 and start * 2 >= len(items):  # the read part is half the list: drop it
            del items[:start]
            start = 0
        self.start = start
        return entry

    def remove(self, entry: _Entry) -> None:
        del self.items[self.items.index(entry, self.start)]


# Shared by every domain with no retry waiting (most of them): replaced before it is pushed to.
_NO_DELAYED: list[tuple[float, int, Request]] = []


class _Queue:
    """One domain's queued requests: FIFOs by priority, and retries waiting for their time.

    Most domains only ever see one priority: its FIFO is kept directly (``only``), and a
    dict by priority is made when a second one comes (a dict is ~200 bytes a domain)."""

    __slots__ = ("delayed", "only", "only_priority", "queues", "size", "top")

    def __init__(self) -> None:
        self.only: _Fifo | None = None  # the FIFO of the one priority, while there is one
        self.only_priority = 0
        self.queues: dict[int, _Fifo] | None = None  # priority -> FIFO, once there are several
        self.top = 0  #: highest priority with entries (when size > 0)
        self.size = 0
        self.delayed = _NO_DELAYED  # (not_before, seq, request): retries, a heap

    def push(self, priority: int, entry: _Entry) -> None:
        queues = self.queues
        if queues is None:
            only = self.only
            if only is None:
                only = self.only = _Fifo()
                self.only_priority = priority
            if priority == self.only_priority:
                queue = only
            else:
                queues = self.queues = {self.only_priority: only}
                self.only = None
        if queues is not None:
            queue = queues.get(priority)  # type: ignore[assignment]
            if queue is None:
                queue = queues[priority] = _Fifo()
        queue.append(entry)
        if not self.size or priority > self.top:
            self.top = priority
        self.size += 1

    def _fifo(self, priority: int) -> _Fifo:
        if self.queues is None:
            assert self.only is not None
            return self.only
        return self.queues[priority]

    def _drop(self, priority: int) -> None:
        """The FIFO of ``priority`` is empty."""
        if self.queues is None:
            self.only = None
            return
        del self.queues[priority]
        if self.queues:
            self.top = max(self.queues)
        else:
            self.queues = None

    def head(self) -> _Entry:
        return self._fifo(self.top)[0]

    def pop(self) -> _Entry:
        queue = self._fifo(self.top)
        entry = queue.popleft()
        self.size -= 1
        if not queue:
            self._drop(self.top)
        return entry

    def release_due(self, now: float) -> None:
        delayed = self.delayed
        while delayed and delayed[0][0] <= now:
            request = heapq.heappop(delayed)[2]
            self.push(request.priority, request)

    def promote_unbudgeted(self) -> bool:
        """Move the first queued retry, redirect hop or internal request to the front.

        Once max_pages is reached only those may still go out; they must not wait behind
        fresh links that never will. Rare (the end of a limited crawl), so a scan is fine.
        """
        priorities = sorted(self.queues, reverse=True) if self.queues is not None else [self.only_priority]
        for priority in priorities if self.size else ():
            queue = self._fifo(priority)
            for entry in queue:
                if not uses_budget(entry):
                    queue.remove(entry)
                    self.size -= 1
                    if not queue:
                        self._drop(priority)
                    self.push(_PROMOTED, entry)
                    return True
        return False

    def entries(self) -> Iterator[_Entry]:
        if self.only is not None:
            yield from self.only
        for queue in (self.queues or {}).values():
            yield from queue
        for *_, request in self.delayed:
            yield request


class MemoryStore:
    """The in-process store: queues and the seen-set in memory, lost with the process."""

    def __init__(self, pacer: Pacer) -> None:
        self.seen = FingerprintSet()
        self._pacer = pacer
        self._queues: dict[str, _Queue] = {}  # domains with queued or delayed requests
        self._heap: list[tuple[float, int, str]] = []  # (ready at, seq, domain); stale entries skipped
        self._slot: dict[str, tuple[float, int, str]] = {}  # domain -> its live heap entry (the same tuple)
        self._at_concurrency: set[str] = set()  # queued domains waiting for a slot (not in the heap)
        self._over_budget: set[str] = set()  # queued domains holding only fresh requests, max_pages reached
        self._templates: dict[_Template, _Template] = {}
        self._seq = itertools.count()

    # -- adding ----------------------------------------------------------------------------

    def see(self, fingerprint: int) -> bool:
        return self.seen.add(fingerprint)

    def accept(self, request: Request) -> None:
        return None  # nothing outlives the process

    def push(self, request: Request, now: float) -> None:
        key = request.domain
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if request.not_before > now:
            if queue.delayed is _NO_DELAYED:
                queue.delayed = []
            heapq.heappush(queue.delayed, (request.not_before, next(self._seq), request))
            at = request.not_before
        else:
            queue.push(request.priority, self._compact(request) if request.chain == 0 else request)
            at = now
        slot = self._slot.get(key)
        if slot is not None:  # in the heap (so neither at its concurrency nor over budget)
            if at < slot[0]:
                self._schedule(key, at)
            return
        if key in self._at_concurrency:
            return  # a freed slot schedules it
        if key in self._over_budget:
            if uses_budget(request):
                return
            self._over_budget.discard(key)
        self._schedule(key, at)

    def _compact(self, request: Request) -> _Entry:
        """A plain followed link is queued as (url, template): most of a frontier is these."""
        if (
            request._headers is None
            and not request._meta
            and not request._cb_kwargs
            and request.errback is None
            and request.body is None
            and request.cookies is None
            and request.method == "GET"
            and request.attempt == 1
            and request.redirects == 0
            and not request.dont_filter
            and not request.internal
            and request.priority == 0
            and type(request) is Request  # a subclass is kept whole
        ):
            key = (request.callback, request.depth)
            try:
                template = self._templates.get(key)
            except TypeError:  # an unhashable callable as callback: keep the Request as it is
                return request
            if template is None:
                template = self._templates[key] = key
            return (request.url, template)
        return request

    def _schedule(self, key: str, at: float) -> None:
        entry = self._slot[key] = (at, next(self._seq), key)
        heapq.heappush(self._heap, entry)

    # -- handing out -----------------------------------------------------------------------

    async def lease(self, now: float, *, fresh: bool) -> tuple[Request | None, float]:
        heap = self._heap
        pacer = self._pacer
        while heap:
            turn = heap[0]
            at, _, key = turn
            if at > now:
                return None, at
            heapq.heappop(heap)
            if self._slot.get(key) is not turn:
                continue  # rescheduled since: a stale entry
            del self._slot[key]
            queue = self._queues[key]
            if queue.delayed and queue.delayed[0][0] <= now:
                queue.release_due(now)
            if not queue.size:
                if queue.delayed:
                    self._schedule(key, queue.delayed[0][0])
                else:
                    del self._queues[key]
                continue
            ready = pacer.ready_at(key, now)
            if ready > now:
                if ready == math.inf:
                    self._at_concurrency.add(key)
                else:
                    self._schedule(key, ready)
                continue
            if not fresh and uses_budget(queue.head()) and not queue.promote_unbudgeted():
                # max_pages reached: only a retry still waiting for its time, or a refunded
                # page, can let this domain send again.
                if queue.delayed:
                    self._schedule(key, queue.delayed[0][0])
                else:
                    self._over_budget.add(key)
                continue
            entry = queue.pop()
            nxt = await pacer.take(key, now)
            if queue.size or queue.delayed:
                # Back of the line: after every domain already due now (round robin).
                if not queue.size:
                    nxt = max(nxt, queue.delayed[0][0])
                if nxt == math.inf:
                    self._at_concurrency.add(key)
                else:
                    self._schedule(key, nxt)
            else:
                del self._queues[key]
            if isinstance(entry, tuple):
                url, (callback, depth) = entry
                return Request._link(url, callback, depth, key), now
            return entry, now
        return None, math.inf

    def done(self, request: Request, now: float) -> None:
        key = request.domain
        self._pacer.done(key)
        if key in self._at_concurrency:
            self._at_concurrency.discard(key)
            self._schedule(key, now)

    def budget_restored(self, now: float, request: Request | None = None) -> None:
        for key in self._over_budget:
            self._schedule(key, now)
        self._over_budget.clear()

    # -- the state -------------------------------------------------------------------------

    def advance(self, request: Request) -> None:
        return None  # nothing outlives the process

    def finish(self, request: Request, *, page: bool = False, items: int = 0) -> None:
        return None

    def end_reason(self) -> str | None:
        return None  # max_pages is the frontier's own

    def has_unbudgeted(self) -> bool:
        return any(not uses_budget(entry) for queue in self._queues.values() for entry in queue.entries())

    def drain(self) -> int:
        dropped = sum(
            1
            for queue in self._queues.values()
            for entry in queue.entries()
            if isinstance(entry, tuple) or not entry.internal
        )
        self._queues.clear()
        self._heap.clear()
        self._slot.clear()
        self._at_concurrency.clear()
        self._over_budget.clear()
        return dropped

    def active(self) -> bool:
        return bool(self._queues)

    def queued(self, key: str) -> int:
        queue = self._queues.get(key)
        return 0 if queue is None else queue.size + len(queue.delayed)

    def domains(self) -> list[str]:
        return list(self._queues)
