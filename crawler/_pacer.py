"""The pacer: per-domain admission (rate, concurrency, pauses, AIMD, Crawl-delay floor).

Principle 1 of DESIGN.md is split in two: a store (``_store``) holds what is queued, and the
pacer says *when* each domain may send next. ``ready_at(key, now)`` is that time (``inf``
while the domain is at its concurrency), so a store can keep its domains ordered by it and
find a ready one without looking at the ones that are not (a heap here, a sorted set in a
shared store). Every change that could make a domain ready sooner (a slot freed) is reported
by the store's caller; changes that only make it later (a pause, a cut rate, a Crawl-delay)
need no report: the store re-asks when the old time comes.

The in-memory pacer is built on aiolimiter: one token per interval, bucket of one (even
spacing, no burst at start) is the hard cap; autothrottle (AIMD on 429/503) and robots.txt
Crawl-delay only ever slow a domain down from it.
"""

from __future__ import annotations

import math
from typing import Protocol

from aiolimiter import AsyncLimiter

from ._retry import PAUSE_STATUSES
from ._settings import Settings

__all__ = ["MemoryPacer", "Pace", "Pacer", "pace_for"]

# Autothrottle (AIMD): a 429/503 halves the domain's rate; each run of this many successes
# adds a tenth of the configured rate back.
_DECREASE = 0.5
_SUCCESS_RUN = 10
_INCREASE_SHARE = 0.1
# A request within this share of its domain's gap of its turn at the downloader's door goes at
# once: a millisecond's jitter is not worth a timer.
_DOOR_SLACK = 0.05


class Pacer(Protocol):
    """When may each domain send, and what happened to what it sent."""

    def ready_at(self, key: str, now: float) -> float:
        """The soonest time ``key`` may send a request (``now`` if it may now; ``inf`` while it
        is at its concurrency: ``done`` frees it)."""
        ...

    async def take(self, key: str, now: float) -> float:
        """A request of ``key`` goes out now (``ready_at`` said it may): use its token and slot.
        Returns ``ready_at(key, now)`` after it."""
        ...

    def sending(self, key: str, now: float) -> float:
        """A request of ``key`` reaches the downloader: 0 when it goes now, else the seconds
        to wait before asking again (``Pace.door``). ``take`` was when it left the queue; a
        middleware may have held it since."""
        ...

    def done(self, key: str) -> None:
        """A request of ``key`` finished downloading: its slot is free."""
        ...

    def observe(self, key: str, status: int) -> None:
        """The answer's status, for autothrottle."""
        ...

    def pause(self, key: str, until: float) -> None:
        """The server asked the whole domain to wait (Retry-After) until ``until``."""
        ...

    def set_floor(self, key: str, seconds: float) -> None:
        """A lower bound on the interval between requests (robots.txt Crawl-delay)."""
        ...

    def pace(self, key: str) -> Pace:
        """The domain's state, for stats."""
        ...

    def paces(self) -> dict[str, Pace]:
        """Every domain's state, for stats."""
        ...

    def export(self, now: float, wall: float) -> dict[str, dict[str, float]]:
        """What a durable store keeps of the pacing: Retry-After pauses (as wall-clock times)
        and rates autothrottle has lowered, for the domains that have either."""
        ...

    def restore(self, saved: dict[str, dict[str, float]], now: float, wall: float) -> None:
        """Take back what ``export`` gave, in a new process (``now``: its clock; ``wall``: time.time())."""
        ...


class Pace:
    """One domain's admission state."""

    __slots__ = (
        "ceiling",
        "concurrency",
        "configured_rate",
        "floor",
        "in_flight",
        "interval",
        "last_sent",
        "last_token",
        "limiter",
        "not_before",
        "paused_until",
        "rate",
        "step",
        "streak",
        "throttled",
    )

    def __init__(self, rate: float | None, concurrency: int) -> None:
        self.concurrency = concurrency
        self.in_flight = 0
        self.paused_until = 0.0
        self.configured_rate = rate
        self.limiter = AsyncLimiter(1, 1 / rate) if rate else None
        self.rate = rate  #: current (adaptive) rate; None = unlimited
        self.ceiling = rate  #: where autothrottle recovers to before handing back to configured_rate
        self.step = 0.0
        self.interval = 0.0  #: moving average of seconds between hand-outs
        self.streak = 0
        self.throttled = 0
        self.floor = 0.0  #: robots.txt Crawl-delay / Request-rate, seconds
        self.last_token = -math.inf  #: when a request last left the queue
        self.last_sent = -math.inf  #: when one last left for the site (``door``)
        self.not_before = -math.inf  #: none leaves before (another worker's late send, ``door``)

    def door(self, now: float) -> float:
        """Seconds a request about to be sent must wait (then ask again), or 0: it goes now,
        and is the domain's last send. Its turn was given when it left the queue, but a
        middleware, a busy event loop or a garbage collection may have held it (or the one
        before) since: a full gap after the last send, and the end of a Retry-After pause,
        are kept again at the send, as Scrapy's download slots keep their delay after the
        middlewares. Asking again after the wait sees a pause or a slower rate that came
        meanwhile, and two requests waiting for one domain go a gap apart."""
        rate, floor = self.rate, self.floor
        hold = max(self.paused_until, self.not_before)
        if hold > now:
            return hold - now  # (to the end: no slack for a pause)
        if not rate and not floor:
            return 0.0  # the common case: an unlimited domain
        gap = max(floor, 1 / rate) if rate else floor
        wait = self.last_sent + gap - now
        if wait > _DOOR_SLACK * gap:
            return wait
        self.last_sent = now
        return 0.0

    def gap(self) -> float:
        """Seconds that must separate two requests beyond what the limiter enforces."""
        gap = self.floor
        if self.rate is not None and self.rate != self.configured_rate:
            gap = max(gap, 1 / self.rate)
        return gap


def pace_for(paces: dict[str, Pace], settings: Settings, key: str) -> Pace:
    """``key``'s Pace in ``paces``, made from ``settings`` the first time."""
    pace = paces.get(key)
    if pace is None:
        pace = paces[key] = Pace(*settings.for_domain(key))
    return pace


class MemoryPacer:
    """Pacing state of every domain, in this process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._paces: dict[str, Pace] = {}
        self._notable: set[str] = set()  # domains paused or slowed down: what export() looks at

    def _pace(self, key: str) -> Pace:
        return pace_for(self._paces, self._settings, key)

    def ready_at(self, key: str, now: float) -> float:
        pace = self._pace(key)
        if pace.in_flight >= pace.concurrency:
            return math.inf
        ready = max(now, pace.paused_until)
        gap = pace.gap()
        if gap:
            ready = max(ready, pace.last_token + gap)
        if pace.limiter is not None and not pace.limiter.has_capacity():
            ready = max(ready, pace.last_token + 1 / pace.configured_rate)  # type: ignore[operator]
        return ready

    async def take(self, key: str, now: float) -> float:
        pace = self._paces[key]  # ready_at made it
        if pace.last_token > -math.inf:
            pace.interval += 0.1 * ((now - pace.last_token) - pace.interval)
        pace.last_token = now
        pace.in_flight += 1
        if pace.limiter is not None:
            await pace.limiter.acquire()  # has capacity (ready_at said so): returns without waiting
        elif not pace.floor and pace.rate is None and pace.in_flight < pace.concurrency:
            return max(now, pace.paused_until)  # unlimited: the common case of a fast crawl, in short
        return self.ready_at(key, now)

    def sending(self, key: str, now: float) -> float:
        pace = self._paces.get(key)
        return 0.0 if pace is None else pace.door(now)

    def done(self, key: str) -> None:
        pace = self._paces.get(key)
        if pace is not None:
            pace.in_flight -= 1

    def observe(self, key: str, status: int) -> None:
        pace = self._paces.get(key)
        if pace is None:
            return
        if status in PAUSE_STATUSES:
            pace.throttled += 1
            pace.streak = 0
            if self._settings.autothrottle:
                self._slow_down(pace)
                self._notable.add(key)
        elif pace.rate != pace.configured_rate:
            pace.streak += 1
            if pace.streak >= _SUCCESS_RUN:
                pace.streak = 0
                rate = pace.rate + pace.step  # type: ignore[operator]
                pace.rate = pace.configured_rate if rate >= pace.ceiling else rate  # type: ignore[operator]

    def _slow_down(self, pace: Pace) -> None:
        if pace.rate is None:
            # Unlimited until now: cut from the pace it actually had, and recover to that
            # pace before going back to unlimited.
            pace.rate = pace.ceiling = 1 / pace.interval if pace.interval > 0 else 10.0
        pace.step = max(pace.ceiling * _INCREASE_SHARE, self._settings.min_rate)  # type: ignore[operator]
        pace.rate = max(pace.rate * _DECREASE, self._settings.min_rate)

    def pause(self, key: str, until: float) -> None:
        pace = self._pace(key)
        pace.paused_until = max(pace.paused_until, until)
        self._notable.add(key)

    def set_floor(self, key: str, seconds: float) -> None:
        pace = self._pace(key)
        pace.floor = max(pace.floor, seconds)

    def pace(self, key: str) -> Pace:
        return self._pace(key)

    def paces(self) -> dict[str, Pace]:
        """Every domain's state, for stats (a view: do not change it)."""
        return self._paces

    def export(self, now: float, wall: float) -> dict[str, dict[str, float]]:
        saved: dict[str, dict[str, float]] = {}
        for key in list(self._notable):
            pace = self._paces[key]
            entry: dict[str, float] = {}
            if pace.paused_until > now:
                entry["paused_until"] = round(wall + (pace.paused_until - now), 3)
            if pace.rate is not None and pace.rate != pace.configured_rate:
                entry.update(rate=pace.rate, ceiling=pace.ceiling or pace.rate, step=pace.step)
            if entry:
                saved[key] = entry
            else:
                self._notable.discard(key)  # rested and recovered: nothing to keep
        return saved

    def restore(self, saved: dict[str, dict[str, float]], now: float, wall: float) -> None:
        for key, entry in saved.items():
            pace = self._pace(key)
            self._notable.add(key)
            if "paused_until" in entry:
                pace.paused_until = max(pace.paused_until, now + (entry["paused_until"] - wall))
            if "rate" in entry:
                configured = pace.configured_rate
                # A rate above what is configured now (settings changed) is capped by it.
                pace.rate = entry["rate"] if configured is None else min(entry["rate"], configured)
                pace.ceiling = entry["ceiling"] if configured is None else min(entry["ceiling"], configured)
                pace.step = entry["step"]

