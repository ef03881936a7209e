"""The pacer's side of a shared frontier, and the outbox a worker's operations wait in.

Pacing itself happens in Redis, in the claim script (``lua/sync.lua``): what this worker
sees (answers for autothrottle, Retry-After pauses, robots.txt Crawl-delay) goes into the
outbox with the next sync; the local Pace objects only show this worker's share in stats.
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
        self._answers: dict[str, list[float]] = {}  # domain -> [ok, throttled, pause until (loop time)]

    def _pace(self, key: str) -> Pace:
        return pace_for(self._paces, self._settings, key)

    def ready_at(self, key: str, now: float) -> float:
        return now  # the claim script decides

    async def take(self, key: str, now: float) -> float:
        self._pace(key).in_flight += 1
        return now

    def done(self, key: str) -> None:
        pace = self._paces.get(key)
        if pace is not None:
            pace.in_flight -= 1

    def observe(self, key: str, status: int) -> None:
        answers = self._answers.get(key)
        if answers is None:
            answers = self._answers[key] = [0, 0, 0.0]
        if status in PAUSE_STATUSES:
            answers[1] += 1
            self._pace(key).throttled += 1
        else:
            answers[0] += 1

    def pause(self, key: str, until: float) -> None:
        answers = self._answers.setdefault(key, [0, 0, 0.0])
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
        for key, (ok, throttled, until) in self._answers.items():
            self._outbox.add("X", key, int(ok), int(throttled), max(0, math.ceil((until - now) * 1000)))
        self._answers.clear()

    def pace(self, key: str) -> Pace:
        return self._pace(key)

    def paces(self) -> dict[str, Pace]:
        return self._paces

    def export(self, now: float, wall: float) -> dict[str, dict[str, float]]:
        return {}  # kept in Redis

    def restore(self, saved: dict[str, dict[str, float]], now: float, wall: float) -> None:
        return None
