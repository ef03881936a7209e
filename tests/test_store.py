"""The store and pacer contracts, checked once for every implementation.

Each test builds a store over a pacer through the factories below; a new store (SQLite,
Redis) joins the parametrisation and must pass the same tests.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest

from crawler import Request, Settings, Spider
from crawler._codec import RequestCodec
from crawler._pacer import MemoryPacer
from crawler._sqlite_store import SqliteStore
from crawler._store import MemoryStore


def memory(settings: Settings):
    pacer = MemoryPacer(settings)
    return MemoryStore(pacer), pacer


class _Owner(Spider):
    async def parse(self, response):
        return None


def sqlite(settings: Settings):
    pacer = MemoryPacer(settings)
    store = SqliteStore(Path(tempfile.mkdtemp()) / "state.db", pacer, RequestCodec(_Owner()))
    store.open()
    return store, pacer


STORES = [pytest.param(memory, id="memory"), pytest.param(sqlite, id="sqlite")]
UNLIMITED = Settings(rate_limit=None, domain_concurrency=10**6)


def request(url: str, *, priority: int = 0, not_before: float = 0.0, attempt: int = 1) -> Request:
    r = Request(url, priority=priority)
    r.domain = url.split("/")[2]
    r.not_before = not_before
    r.attempt = attempt
    return r


async def drain(store, now: float, *, fresh: bool = True) -> list[str]:
    urls = []
    while True:
        got, _ = await store.lease(now, fresh=fresh)
        if got is None:
            return urls
        urls.append(got.url)


@pytest.fixture(params=STORES)
def make(request):
    return request.param


async def test_fifo_within_a_priority_and_higher_priority_first(make):
    store, _ = make(UNLIMITED)
    for path, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5)]:
        store.push(request(f"http://h/{path}", priority=priority), 0.0)
    assert await drain(store, 0.0) == ["http://h/b", "http://h/d", "http://h/a", "http://h/c"]


async def test_domains_take_turns(make):
    store, _ = make(UNLIMITED)
    for i in range(3):
        for host in ("a", "b", "c"):
            store.push(request(f"http://{host}/{i}"), 0.0)
    got = await drain(store, 0.0)
    assert [u.split("/")[2] for u in got] == ["a", "b", "c"] * 3


async def test_a_paused_domain_waits_and_its_end_is_the_wake_time(make):
    store, pacer = make(UNLIMITED)
    store.push(request("http://paused/1"), 0.0)
    store.push(request("http://busy/1"), 0.0)
    pacer.pause("paused", 50.0)
    assert await drain(store, 10.0) == ["http://busy/1"]
    got, wake = await store.lease(10.0, fresh=True)
    assert got is None and wake == 50.0
    assert await drain(store, 50.0) == ["http://paused/1"]


async def test_a_domain_at_its_concurrency_waits_for_a_free_slot(make):
    store, _ = make(Settings(rate_limit=None, domain_concurrency=1))
    for i in range(2):
        store.push(request(f"http://h/{i}"), 0.0)
    assert await drain(store, 0.0) == ["http://h/0"]
    assert (await store.lease(0.0, fresh=True)) == (None, math.inf)
    store.done(request("http://h/0"), 0.0)
    assert await drain(store, 0.0) == ["http://h/1"]


async def test_the_rate_spaces_hand_outs(make):
    store, _ = make(Settings(rate_limit=2, domain_concurrency=100))
    for i in range(3):
        store.push(request(f"http://h/{i}"), 0.0)
    # The clock is the loop's: aiolimiter reads it too, so hand-outs use the real time.
    import asyncio

    now = asyncio.get_running_loop().time()
    assert len(await drain(store, now)) == 1
    got, wake = await store.lease(now, fresh=True)
    assert got is None and wake == pytest.approx(now + 0.5)


async def test_a_retry_waits_for_its_time(make):
    store, _ = make(UNLIMITED)
    store.push(request("http://h/retry", not_before=30.0, attempt=2), 0.0)
    got, wake = await store.lease(0.0, fresh=True)
    assert got is None and wake == 30.0
    assert await drain(store, 30.0) == ["http://h/retry"]


async def test_once_the_budget_is_spent_only_retries_and_hops_go_out(make):
    store, _ = make(UNLIMITED)
    store.push(request("http://h/fresh"), 0.0)
    store.push(request("http://h/retry", attempt=2), 0.0)
    assert store.has_unbudgeted()
    assert await drain(store, 0.0, fresh=False) == ["http://h/retry"]
    assert not store.has_unbudgeted()
    assert await drain(store, 0.0, fresh=False) == []
    store.budget_restored(0.0)
    assert await drain(store, 0.0) == ["http://h/fresh"]


async def test_a_retry_due_later_is_not_stranded_behind_spent_budget(make):
    store, _ = make(UNLIMITED)
    store.push(request("http://h/fresh"), 0.0)
    store.push(request("http://h/retry", not_before=5.0, attempt=2), 0.0)
    assert await drain(store, 0.0, fresh=False) == []
    got, wake = await store.lease(0.0, fresh=False)
    assert got is None and wake == 5.0
    assert await drain(store, 5.0, fresh=False) == ["http://h/retry"]


async def test_see_dedupes_and_drain_empties(make):
    store, _ = make(UNLIMITED)
    assert store.see(42) and not store.see(42)
    for i in range(3):
        store.push(request(f"http://h/{i}"), 0.0)
    store.push(request("http://g/later", not_before=9.0, attempt=2), 0.0)
    assert store.active() and store.queued("h") == 3 and store.queued("g") == 1
    assert store.drain() == 4
    assert not store.active() and await drain(store, 10.0) == []


async def test_many_paused_domains_are_not_looked_at_on_every_hand_out(make):
    """Hand-outs of a busy domain next to 5,000 paused ones: the paused ones are asked about
    once each (when their first turn comes), not once per hand-out."""
    store, pacer = make(UNLIMITED)
    asked: list[str] = []
    ready_at = pacer.ready_at

    def counting(key: str, now: float) -> float:
        asked.append(key)
        return ready_at(key, now)

    pacer.ready_at = counting  # type: ignore[method-assign]
    for i in range(5000):
        store.push(request(f"http://paused-{i}/"), 0.0)
        pacer.pause(f"paused-{i}", 3600.0)
    for i in range(200):
        store.push(request(f"http://busy/{i}"), 0.0)
    assert len(await drain(store, 1.0)) == 200
    assert sum(1 for key in asked if key.startswith("paused-")) == 5000


async def test_domain_stats_show_domains_that_have_only_queued_requests():
    from crawler._frontier import Frontier
    from crawler._stats import StatsCollector

    frontier = Frontier(UNLIMITED.merge({"obey_robots": False}), StatsCollector())
    for i in range(3):
        frontier.add(Request(f"http://queued.example/{i}"))
    stats = frontier.domain_stats()
    assert stats["queued.example"].queued == 3 and stats["queued.example"].in_flight == 0



# -- durable stores: what survives a restart ---------------------------------------------------

DURABLE = [pytest.param(sqlite, id="sqlite")]


def reopen(store):
    """The same file opened by a new process would see: what the last checkpoint committed."""
    fresh = SqliteStore(store.path, MemoryPacer(UNLIMITED), RequestCodec(_Owner()))
    stored = fresh.open()
    stored.requests = fresh.load()
    return fresh, stored


@pytest.mark.parametrize("make", DURABLE)
async def test_accepted_requests_and_fingerprints_survive_until_their_chain_ends(make):
    store, _ = make(UNLIMITED)
    owner = _Owner()
    kept = Request("http://h/kept", meta={"page": 2}, cb_kwargs={"n": 1}, priority=3)
    ended = Request("http://h/ended")
    for r in (kept, ended):
        r.domain = "h"
        store.see(hash(r.url) & (2**64 - 1))
        store.accept(r)
        store.push(r, 0.0)
    store.finish(ended)
    store.checkpoint()
    fresh, stored = reopen(store)
    assert [(r.url, r.meta, r.cb_kwargs, r.priority) for r in stored.requests] == [
        ("http://h/kept", {"page": 2}, {"n": 1}, 3)
    ]
    assert not fresh.see(hash("http://h/kept") & (2**64 - 1))  # still seen
    assert not fresh.see(hash("http://h/ended") & (2**64 - 1))
    del owner


async def test_nothing_after_the_last_checkpoint_is_committed():
    store = SqliteStore(
        Path(tempfile.mkdtemp()) / "state.db", MemoryPacer(UNLIMITED), RequestCodec(_Owner()),
        batch=100, checkpoint_every=3600,
    )
    store.open()
    first = Request("http://h/1")
    store.accept(first)
    store.checkpoint()
    later = Request("http://h/2")
    store.accept(later)
    store.finish(first)  # ended, but no checkpoint since: a crash now keeps it queued
    _, stored = reopen(store)
    assert [r.url for r in stored.requests] == ["http://h/1"]


@pytest.mark.parametrize("make", DURABLE)
def test_a_callback_that_is_not_a_spider_method_cannot_be_stored(make):
    from crawler._codec import UnstorableRequest

    store, _ = make(UNLIMITED)
    with pytest.raises(UnstorableRequest, match="not a method of the spider"):
        store.accept(Request("http://h/", callback=lambda response: None))
