"""The pacer's side of a shared frontier, and the outbox a worker's operations wait in.

Pacing itself happens in Redis, in the claim script (``lua/sync.lua``): what this worker
sees (answers for autothrottle, Retry-After pauses, robots.txt Crawl-delay, when its last
request to a domain actually left) goes into the outbox with the next sync; the local Pace
objects only show this worker's share in stats.

Why the send time: a claim advances its domain's pace at the claim, in Redis time. A request
that leaves late (a middleware held it, a busy event loop, a garbage collection) and the next
one claimed on time, by another worker, would reach the site closer together than its rate
allows. The script keeps a late send, and tells the worker that claims from the domain next how
long to wait (``sent_elsewhere``): its door keeps a full gap after it, as after its own sends.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ._pacer import Pace, pace_for
from ._retry import PAUSE_STATUSES
from ._settings import Settings

__all__ = ["Outbox", "RedisPacer"]


class Outbox:
    """Operations waiting for the next sync, in the order they were made."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[tuple[str | int | float, ...]] = []

    def add(self, *fields: str | int | float) -> None:
        self.ops.append(fields)

    @property
    def count(self) -> int:
        return len(self.ops)

    def take(self) -> list[tuple[str | int | float, ...]]:
        ops, self.ops = self.ops, []
        return ops


class RedisPacer:
    """The pacer's side of a shared frontier: answers and pauses go to Redis with the next
    sync (pacing itself happens in the claim script); ``paces`` shows this worker's share."""

    def __init__(self, settings: Settings, outbox: Outbox, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._outbox = outbox
        self._clock = clock
        self._paces: dict[str, Pace] = {}
        # domain -> [ok, throttled, pause until, last request sent] (loop times)
        self._answers: dict[str, list[float]] = {}

    def _pace(self, key: str) -> Pace:
        return pace_for(self._paces, self._settings, key)

    def _answer(self, key: str) -> list[float]:
        answers = self._answers.get(key)
        if answers is None:
            answers = self._answers[key] = [0, 0, 0.0, -math.inf]
        return answers

    def ready_at(self, key: str, now: float) -> float:
        return now  # the claim script decides

    async def take(self, key: str, now: float) -> float:
        self._pace(key).in_flight += 1
        return now

    def sending(self, key: str, now: float) -> float:
        wait = self._pace(key).door(now)  # this worker's sends, and late ones of others it was told of
        if not wait:
            self._answer(key)[3] = now
        return wait

    def sent_elsewhere(self, key: str, ready: float) -> None:
        """Another worker's request to ``key`` left late: none of this worker's leaves before
        ``ready`` (loop time), a gap after it by the domain's rate in Redis (which autothrottle
        may have lowered below the configured one this worker knows)."""
        pace = self._pace(key)
        pace.not_before = max(pace.not_before, ready)

    def done(self, key: str) -> None:
        pace = self._paces.get(key)
        if pace is not None:
            pace.in_flight -= 1

    def observe(self, key: str, status: int) -> None:
        answers = self._answer(key)
        if status in PAUSE_STATUSES:
            answers[1] += 1
            self._pace(key).throttled += 1
        else:
            answers[0] += 1

    def pause(self, key: str, until: float) -> None:
        answers = self._answer(key)
        answers[2] = max(answers[2], until)
        pace = self._pace(key)
        pace.paused_until = max(pace.paused_until, until)

    def set_floor(self, key: str, seconds: float) -> None:
        self._pace(key).floor = max(self._pace(key).floor, seconds)
        rate, concurrency = self._settings.for_domain(key)
        self._outbox.add("F", key, int(seconds * 1000), concurrency, rate or 0)

    def flush(self) -> None:
        """Into the outbox: what was seen since the last sync, one operation per domain."""
        if not self._answers:
            return
        now = self._clock()
        for key, (ok, throttled, until, sent) in self._answers.items():
            pause_ms = max(0, math.ceil((until - now) * 1000))
            # How long ago it left, rounded down: Redis keeps a moment no sooner than the true
            # one (its clock has moved on by the sync's transit). "": none since the last sync.
            sent_ms = math.floor((now - sent) * 1000) if sent > -math.inf else ""
            self._outbox.add("X", key, int(ok), int(throttled), pause_ms, sent_ms)
        self._answers.clear()

    def pace(self, key: str) -> Pace:
        return self._pace(key)

    def paces(self) -> dict[str, Pace]:
        return self._paces

    def export(self, now: float, wall: float) -> dict[str, dict[str, float]]:
        return {}  # kept in Redis

    def restore(self, saved: dict[str, dict[str, float]], now: float, wall: float) -> None:
        return None
