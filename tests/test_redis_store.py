"""The store contract (tests/test_store.py) for the Redis store, in real time.

The memory and SQLite stores take the loop's time as an argument; the shared store keeps
Redis' own clock (one clock for every worker), so these tests wait for real and keep their
rates high and their waits short.
"""

from __future__ import annotations

import asyncio

from test_shared_frontier import _queued, _worker

from crawler import Request
from crawler._shared import redis_client
from crawler._url import fingerprint


async def _take(store, loop, *, limit: int = 100) -> list[str]:
    """Every request the store hands out now (one sync, then what it claimed)."""
    store._last_sync = -1e9
    store._in_flight = 0
    urls = []
    while len(urls) < limit:
        request, _ = await store.lease(loop.time(), fresh=True)
        if request is None:
            return urls
        urls.append(request.url)
    return urls


def _request(url: str, priority: int = 0) -> Request:
    request = Request(url, priority=priority)
    request.domain = url.split("/")[2]
    return request


async def test_fifo_within_a_priority_and_higher_priority_first(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=100)
    try:
        for url, priority in [("0a", 0), ("5a", 5), ("1a", 1), ("m3", -3), ("0b", 0), ("5b", 5)]:
            worker.store.push(_request(f"http://h/{url}", priority), loop.time())
        worker.store.start_done()
        order = [url.rsplit("/", 1)[1] for url in await _take(worker.store, loop)]
        assert order == ["5a", "5b", "1a", "0a", "0b", "m3"]
    finally:
        await worker.close(repair=False)


async def test_a_burst_of_claims_keeps_max_pages_and_retries_go_out_after_it(frontier):
    # One unlimited domain: the script claims many of its requests at once (LPOP with a
    # count). The budget still caps the fresh requests; retries (continuations) are not
    # fresh, so they go out even with max_pages spent.
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=100, max_pages=7)
    try:
        for i in range(30):
            _queued(worker.store, f"http://h/{i}", loop.time())
        worker.store.start_done()
        first = await _take(worker.store, loop)
        assert first == [f"http://h/{i}" for i in range(7)], "max_pages=7 caps the fresh ones"
        chains = sorted(worker.store._held)[:2]
        for url, chain in zip(first[:2], chains, strict=True):
            retry = _request(url)
            retry.chain = chain
            retry.attempt = 2
            worker.store.push(retry, loop.time())  # the chain goes on: back to the queue
        assert await _take(worker.store, loop) == first[:2]
        assert worker.store.end_reason() == "max_pages"
    finally:
        await worker.close(repair=False)


async def test_domains_take_turns(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=100)
    try:
        for host in ("a", "b"):
            for i in range(3):
                _queued(worker.store, f"http://{host}/{i}", loop.time())
        worker.store.start_done()
        hosts = [url.split("/")[2] for url in await _take(worker.store, loop)]
        assert sorted(hosts) == ["a", "a", "a", "b", "b", "b"]
        assert hosts[:2] in (["a", "b"], ["b", "a"]), "the second domain does not wait for the first to empty"
    finally:
        await worker.close(repair=False)


async def test_a_domain_at_its_concurrency_waits_for_a_free_slot(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, domain_concurrency=1)
    try:
        for i in range(2):
            _queued(worker.store, f"http://h/{i}", loop.time())
        worker.store.start_done()
        first = await _take(worker.store, loop)
        assert first == ["http://h/0"]
        assert await _take(worker.store, loop) == []
        worker.store.done(_claimed(first[0], worker), loop.time())
        assert await _take(worker.store, loop) == ["http://h/1"]
    finally:
        await worker.close(repair=False)


def _claimed(url: str, worker) -> Request:
    """A request handed out by ``worker``'s store, as the engine would hold it."""
    chain = max(worker.store._held)
    request = _request(url)
    request.chain = chain
    return request


async def test_the_rate_spaces_hand_outs(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, rate_limit=5, domain_concurrency=100)
    try:
        for i in range(3):
            _queued(worker.store, f"http://h/{i}", loop.time())
        worker.store.start_done()
        assert await _take(worker.store, loop) == ["http://h/0"], "one now, the next in 200 ms"
        await asyncio.sleep(0.25)
        assert await _take(worker.store, loop) == ["http://h/1"]
    finally:
        await worker.close(repair=False)


async def test_a_retry_waits_for_its_time(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier)
    try:
        _queued(worker.store, "http://h/1", loop.time())
        worker.store.start_done()
        (url,) = await _take(worker.store, loop)
        first = _claimed(url, worker)
        worker.store.done(first, loop.time())
        retry = first.replace(attempt=2, not_before=loop.time() + 0.3)
        worker.store.push(retry, loop.time())
        assert await _take(worker.store, loop) == []
        await asyncio.sleep(0.35)
        assert await _take(worker.store, loop) == ["http://h/1"]
    finally:
        await worker.close(repair=False)


async def test_once_the_budget_is_spent_only_retries_go_out(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, max_pages=1, domain_concurrency=100)
    try:
        for i in range(3):
            _queued(worker.store, f"http://h/{i}", loop.time())
        worker.store.start_done()
        (url,) = await _take(worker.store, loop)
        first = _claimed(url, worker)
        worker.store.done(first, loop.time())
        worker.store.push(first.replace(attempt=2), loop.time())  # its retry
        assert await _take(worker.store, loop) == [url], "the retry, and no fresh request"
        assert worker.store.end_reason() == "max_pages"
    finally:
        await worker.close(repair=False)


async def test_see_dedupes_across_workers(frontier):
    loop = asyncio.get_running_loop()
    first, second = await _worker(frontier), await _worker(frontier)
    try:
        _queued(first.store, "http://h/same", loop.time())
        await first.store.sync(0)
        assert second.store.see(12345) and not second.store.see(12345), "a worker's own cache"
        found: list[int] = []
        second.store.on_duplicates = found.append
        _queued(second.store, "http://h/same", loop.time())
        await second.store.sync(0)
        assert found == [1]
        assert (await first.status())["queued"] == 1
    finally:
        await first.close(repair=False)
        await second.close(repair=False)


def _found(store, url: str, now: float) -> bool:
    """A link a worker found, as the frontier adds it: False when the worker knows it is seen."""
    request = _request(url)
    if not store.see(fingerprint(url)):
        return False
    store.accept(request)
    store.push(request, now)
    return True


async def test_a_worker_learns_what_the_others_queued_and_does_not_send_it_again(frontier):
    # Workers find the same links (a site's navigation is on every page): each sync returns
    # the fingerprints the other workers added since the last one (the seen log), so such a
    # URL reaches Redis once, not once per worker.
    loop = asyncio.get_running_loop()
    first, second = await _worker(frontier), await _worker(frontier)
    try:
        urls = [f"http://h/{i}" for i in range(200)]
        assert all(_found(first.store, url, loop.time()) for url in urls)
        await first.store.sync(0)
        await second.store.sync(0)
        assert [url for url in urls if _found(second.store, url, loop.time())] == [], "known from the log"
        assert second.store.pending() == 0, "nothing to send"
        assert _found(second.store, "http://h/new", loop.time()), "a URL no worker queued is still new"
        assert _found(first.store, "http://h/mine", loop.time())
        await second.store.sync(0)
        await first.store.sync(0)
        assert not _found(first.store, "http://h/new", loop.time()), "and the other way round"
        learned: list[bytes] = []
        first.store._learn = learned.append
        first.store._log_cursor = 0
        await first.store.sync(0)
        entries = [entry for news in learned for entry in news.split(b"\n")]
        theirs = second.store.worker.encode() + b"\t"
        assert entries and all(entry.startswith(theirs) for entry in entries), "never its own entries"
        assert (await first.status())["queued"] == 202
    finally:
        await first.close(repair=False)
        await second.close(repair=False)


async def test_a_worker_far_behind_the_seen_log_still_dedupes_in_redis(frontier):
    # The log keeps the last hundred or so syncs, and one call returns the latest 64 of them
    # (a call stays short): a worker that synced long ago learns only those and sends the
    # rest, which Redis finds seen (counted as duplicates); nothing is queued twice.
    loop = asyncio.get_running_loop()
    first, second = await _worker(frontier), await _worker(frontier)
    try:
        await second.store.sync(0)
        urls = [f"http://h/{i}" for i in range(400)]
        for url in urls:  # one sync each: 400 entries, more than the log keeps
            _found(first.store, url, loop.time())
            await first.store.sync(0)
        await second.store.sync(0)
        sent = [url for url in urls if _found(second.store, url, loop.time())]
        assert sent == urls[:-64], "the latest 64 syncs' URLs are known, the older ones not"
        found: list[int] = []
        second.store.on_duplicates = found.append
        await second.store.sync(0)
        assert found == [len(sent)]
        assert (await first.status())["queued"] == 400
    finally:
        await first.close(repair=False)
        await second.close(repair=False)


async def test_a_lone_worker_keeps_no_seen_log(frontier):
    loop = asyncio.get_running_loop()
    worker = await _worker(frontier, crawl_id="alone")
    client = redis_client(frontier)
    try:
        for i in range(20):
            _found(worker.store, f"http://h/{i}", loop.time())
        await worker.store.sync(0)
        assert await client.exists("crawler:{alone}:seenlog") == 0, "nobody would read it"
    finally:
        await client.aclose()
        await worker.close(repair=False)


async def test_a_worker_with_a_full_cache_learns_no_more_and_redis_still_dedupes(frontier, monkeypatch):
    # Each worker's cache would otherwise grow towards the whole crawl's seen-set.
    import crawler._redis_store

    monkeypatch.setattr(crawler._redis_store, "_LEARN_LIMIT", 5)
    loop = asyncio.get_running_loop()
    first, second = await _worker(frontier), await _worker(frontier)
    try:
        for i in range(5):
            _found(second.store, f"http://h/own{i}", loop.time())
        await second.store.sync(0)
        urls = [f"http://h/{i}" for i in range(20)]
        for url in urls:
            _found(first.store, url, loop.time())
        await first.store.sync(0)
        await second.store.sync(0)
        assert [url for url in urls if _found(second.store, url, loop.time())] == urls, "its cache is full"
        found: list[int] = []
        second.store.on_duplicates = found.append
        await second.store.sync(0)
        assert found == [20]
        assert (await first.status())["queued"] == 25
    finally:
        await first.close(repair=False)
        await second.close(repair=False)
