"""The shared frontier: one crawl's queue, seen-set and politeness in Redis, for many workers.

``--frontier redis://host:6379/0`` started N times, on one machine or many, is one crawl.
Each worker keeps what it does in an *outbox* of operations and sends it in one Lua script
call (``lua/sync.lua``), which applies the operations and claims the next batch of
requests in the same atomic step:

* **Claims** take only requests of domains whose next allowed time (Redis ``TIME``) has
  come and that are under their concurrency, and advance the domain's pacing in the same
  script, so N workers together keep each host's rate and concurrency (no check-then-act
  race between workers).
* **Leases**: a claimed request is leased to the worker (``lease_timeout``), renewed by a
  heartbeat while it works; a worker killed with SIGKILL stops renewing, and its requests
  go back to the queue when their leases expire. An acknowledgement (``E``) of a chain whose
  lease the worker no longer holds is refused with the whole batch, so a worker presumed
  dead cannot commit what another worker is redoing.
* **Items exactly once**: a page's items are written to this worker's outputs when its chain
  ends, and the outputs' sizes are committed with the chain's acknowledgement; after a
  refusal or a kill an output is cut back to its committed size (see ``_shared``).
* **Dedupe**: every fingerprint is added in the script with its request (``SADD`` into
  intsets, ~9 bytes per URL); a worker's own memory only caches what it knows to be seen:
  its own finds, and the other workers' (each sync returns what they added since the last
  one, so a URL that every worker finds is mostly sent once, not once per worker), up to
  10 million fingerprints (about 200 MB; past that it learns no more, and Redis dedupes).

Nothing read from Redis is unpickled or evaluated: requests are JSON (``_codec``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, NoReturn

from ._codec import RequestCodec, UnstorableRequest
from ._exceptions import FrontierUnavailable
from ._redis_pacer import Outbox, RedisPacer
from ._request import Request
from ._seen import FingerprintSet
from ._settings import Settings
from ._url import fingerprint

__all__ = ["RedisStore", "load_scripts"]

_SIGN = 1 << 64
_HALF = 1 << 63
_SYNC_EVERY = 0.02  # seconds: a worker with work in flight syncs at least this often
_POLL = 0.05  # seconds: how often an idle worker looks for work other workers may add ...
_POLL_FIRST = 0.005  # ... once it has waited a while: its first look after its last claim (doubling
# up to _POLL), so that a worker joins a crawl, or sees it end, within milliseconds
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_CHUNK = 5000  # operations per script call at most (a call is atomic: Redis serves no one else meanwhile)
_PRIORITY = 1 << 20  # priorities are kept within +/- this (a score holds priority and order)
_RETRIES = 5  # attempts at a Redis call before the crawl fails with FrontierUnavailable
_EARLY = ("A", "L")  # operations a long batch may send ahead of the rest: adds, and that they are local
_LEARN_LIMIT = 10_000_000  # fingerprints in a worker's cache (~200 MB) past which it learns no more


def load_scripts(client: Any) -> dict[str, Any]:
    """The frontier's Lua scripts, registered on ``client`` (each prefixed by ``common.lua``)."""
    folder = resources.files("crawler") / "lua"
    common = (folder / "common.lua").read_text(encoding="utf-8")
    return {
        name: client.register_script(common + (folder / f"{name}.lua").read_text(encoding="utf-8"))
        for name in ("open", "sync", "renew", "release", "status")
    }


class RedisStore:
    """A :class:`~crawler._store.FrontierStore` over a crawl shared in Redis (see the module doc)."""

    def __init__(
        self,
        client: Any,
        raw_client: Any,
        scripts: dict[str, Any],
        prefix: str,
        worker: str,
        settings: Settings,
        codec: RequestCodec,
        outbox: Outbox,
        pacer: RedisPacer,
        *,
        where: str,
        lease_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.seen = FingerprintSet()  # what this worker knows to be seen (a cache of Redis')
        self._client = client
        self._raw = raw_client  # the same Redis, replies as bytes: a claimed entry may be any bytes
        self._scripts = scripts
        self._prefix = prefix
        self.worker = worker
        self._settings = settings
        self._codec = codec
        self._outbox = outbox
        self._pacer = pacer
        self._where = where  # the frontier's URL without its password, for messages
        self._lease_ms = int(lease_timeout * 1000)
        self._clock = clock
        self._claimed: deque[Request] = deque()  # leased to this worker, not handed out yet
        self._internal: deque[Request] = deque()  # robots.txt requests: this worker's own
        self._held: set[int] = set()  # chains leased to this worker whose end is not sent yet
        self._domains: dict[str, tuple[int, float]] = {}  # domain -> (concurrency, rate or 0)
        self._in_flight = 0  # handed out, download not done
        self._freed = 0  # downloads done since the last sync (slots the next sync frees)
        # chain -> domain: downloads done whose slot the next sync frees (a ``D``), unless
        # the chain's end or continuation goes with it and frees it anyway (one op, not two)
        self._downloaded: dict[int, str] = {}
        self._batch = max(1, settings.concurrency // 2)  # freed slots worth a sync
        self._enough = asyncio.Event()  # set when they are
        self._last_fp = 0
        self._accepted: tuple[Request, int, str | None] | None = None  # being added: fingerprint, text
        self._seq = 0  # numbers this worker's syncs: a repeated one is answered, not applied again
        self._log_cursor = 0  # the last entry of the seen log this worker has read
        self._refunds: set[int] = set()  # chains that end without a page: max_pages gets it back
        #: How many requests this worker could send now (the engine's free dispatch slots).
        self.capacity: Callable[[], int] = lambda: settings.concurrency - self._in_flight
        self._last_sync = -math.inf
        self._soonest = -1.0  # seconds until the next claim may succeed (-1: not known)
        self._poll = _POLL_FIRST  # the wait before the next look for work, while none comes
        self._lock = asyncio.Lock()
        #: The last sync's view of the whole crawl.
        self.remote: dict[str, Any] = {"fresh": 0, "cont": 0, "leased": 0, "start": "", "budget": -1}
        #: Set when start requests are being added by a worker that takes over (dedupe them all).
        self.takeover = False
        #: Called at each ``finish``: the outputs' current sizes (committed with that sync).
        self.positions: Callable[[], dict[str, int]] = dict
        self._positions: dict[str, int] | None = None
        #: Each output's size when the last accepted sync committed it.
        self.committed: dict[str, int] = {}
        #: Items this worker has committed, and the whole crawl's (as of the last sync).
        self.committed_items = 0
        self.committed_pages = 0  # (this worker's)
        self._max_items = -1 if settings.max_items is None else settings.max_items
        # With max_items: the outputs' sizes after each item exported since the last ended
        # chain, and those of chains ended since the last sync (the marks a cut needs).
        self._item_marks: list[dict[str, int]] = []
        self._batch_marks: list[dict[str, int]] = []
        #: Called with the number of items Redis did not keep because the crawl reached
        #: max_items with them (the outputs are to be cut back to the committed sizes).
        self.on_cut: Callable[[int], Awaitable[None]] | None = None
        self.items_total = 0
        self.pages_total = 0  # the whole crawl's, as of the last sync
        #: Called with the number of requests Redis found already seen (other workers had them).
        self.on_duplicates: Callable[[int], None] = lambda count: None
        #: Called after every sync (the crawl's totals may have moved).
        self.on_synced: Callable[[], None] = lambda: None
        #: Called with a queue entry that is not a request of this crawl's (and why).
        self.on_bad_entry: Callable[[str, str], None] = lambda entry, reason: None
        #: Called when the crawl's start requests are local (another worker's, perhaps).
        self.on_local_start: Callable[[], None] = lambda: None
        #: Called when the worker adding the start requests left or died before it was done.
        self.on_orphaned_start: Callable[[], None] = lambda: None
        #: Called before each sync: the outputs write what they hold (see ``defer_writes``),
        #: so that the sizes the sync commits are on disk; raises OSError if they cannot.
        self.flush_outputs: Callable[[], None] = lambda: None
        #: Called, with why, when what this worker did since its last commit is dropped (a
        #: batch was refused: its leases had expired; or its outputs could not be written).
        self.on_refused: Callable[[str, str], Awaitable[None]] | None = None
        #: Called with the pages and items a refused batch took back (other workers redo them).
        self.on_redone: Callable[[int, int], None] = lambda pages, items: None
        self._heartbeat: asyncio.Task[None] | None = None
        self._left = False  # this worker has left the crawl (release): nothing more is sent
        #: Why this worker's outputs could not be written: from then on nothing is committed
        #: (every sync raises it), and closing gives back all it holds at once.
        self.broken: OSError | None = None

    # -- Redis calls -----------------------------------------------------------------------

    async def call(self, name: str, *args: str | int | float, raw: bool = False) -> Any:
        """Run script ``name``; a connection failure, or Redis busy with another worker's
        script, is retried, then FrontierUnavailable. ``raw``: the reply as bytes."""
        import redis

        client = self._raw if raw else self._client
        delay = 0.2
        for attempt in range(_RETRIES):
            try:
                return await self._scripts[name](args=[self._prefix, self.worker, *args], client=client)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                error = f"cannot be reached: {exc}"
            except redis.ResponseError as exc:
                if not str(exc).startswith("BUSY"):
                    raise FrontierUnavailable(f"the frontier at {self._where} refused {name}: {exc}") from None
                error = f"is busy: {exc}"
            except redis.RedisError as exc:
                raise FrontierUnavailable(f"the frontier at {self._where} refused {name}: {exc}") from None
            if attempt == _RETRIES - 1:
                raise FrontierUnavailable(f"the frontier at {self._where} {error}")
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def start_heartbeat(self) -> None:
        self._heartbeat = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                await self.call("renew", self._lease_ms)
            except FrontierUnavailable:
                continue  # the next sync reports it; a lease that lapses meanwhile is refused then

    async def stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def aclose(self, *, release: bool = True) -> None:
        """Send what is pending, then give back every request still leased here (and, with
        ``release``, leave the crawl); safe twice."""
        await self.stop_heartbeat()
        if self._left:
            return
        if self.broken is None:
            try:
                await self.sync(0)
            except OSError:
                if self.broken is None:
                    raise
        if release or self.broken is not None:
            self._claimed.clear()
            await self.call("release", 1, *self._held)
            self._held.clear()
            self._left = True

    # -- FrontierStore ---------------------------------------------------------------------

    def see(self, fingerprint: int) -> bool:
        self._last_fp = fingerprint
        return self.seen.add(fingerprint)

    def accept(self, request: Request) -> None:
        # Its fingerprint (just seen) goes with it: for a redirect hop, only when it is first
        # added; the same hop pushed again (released by the robots gate) is deduped already.
        text = None
        if not request.internal and request.chain == 0 and not _plain(request):
            text = self._codec.encode(request)  # raises UnstorableRequest now, not at the next sync
        self._accepted = (request, self._last_fp, text)

    def _added(self, request: Request) -> tuple[int | None, str | None]:
        """The fingerprint (and the text, if accept made it) of a request being added (see,
        accept, push); (None, None) for one pushed again."""
        accepted, self._accepted = self._accepted, None
        if accepted is not None and accepted[0] is request:
            return accepted[1], accepted[2]
        return None, None

    def _domain(self, key: str) -> tuple[int, float]:
        known = self._domains.get(key)
        if known is None:
            rate, concurrency = self._settings.for_domain(key)
            known = self._domains[key] = (concurrency, rate or 0)
        return known

    def push(self, request: Request, now: float) -> None:
        if request.internal:
            self._internal.append(request)
            return
        key = request.domain
        concurrency, rate = self._domain(key)
        added, text = self._added(request)
        if text is None:
            text = self._codec.encode(request)
        if request.chain:  # the chain goes on: a retry, or a redirect hop (deduped in Redis too)
            delay = max(0, math.ceil((request.not_before - now) * 1000))
            hop: tuple[str, int, int] = ("", 0, 0)
            if added is not None:
                hop = (_signed(added), added & 0xFFFFFFFF, int(request.dont_filter))
            self._downloaded.pop(request.chain, None)  # (so does a continuation)
            self._outbox.add("C", str(request.chain), key, delay, concurrency, rate, text, *hop)
            return
        fp = added if added is not None else fingerprint(request.url, request.method, request.body)
        force = request.dont_filter and not (self.takeover and request.depth == 0)
        priority = request.priority
        if priority:
            priority = max(-_PRIORITY, min(int(priority), _PRIORITY))
        signed = str(fp - _SIGN if fp >= _HALF else fp)
        self._outbox.ops.append(("A", signed, fp & 0xFFFFFFFF, key, int(force), priority, concurrency, rate, text))

    async def lease(self, now: float, *, fresh: bool) -> tuple[Request | None, float]:
        if self._internal:
            return self._internal.popleft(), now
        since = time.monotonic() - self._last_sync
        if not self._claimed:
            # Batched: a sync when this worker is idle, when half of its concurrency has
            # freed its slots since the last one, or every _SYNC_EVERY (new work from others).
            # The wait is here rather than a round of the frontier's loop per finished download.
            if self._in_flight and self._freed < self._batch and since < _SYNC_EVERY:
                self._enough.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_SYNC_EVERY - since):
                        await self._enough.wait()
            await self.sync(self._want())
        elif since >= _SYNC_EVERY:
            await self.sync(0)  # what is pending goes out even while claims wait here
        if self._claimed:
            self._in_flight += 1
            request = self._claimed.popleft()
            self._pacer.pace(request.domain).in_flight += 1
            return request, now
        wait = self._poll if self._soonest < 0 else min(self._poll, self._soonest)
        self._poll = min(2 * self._poll, _POLL)
        return None, now + wait

    def _want(self) -> int:
        # Only what can be sent at once: a claim advances its domain's pacing, so a request
        # that waited here would leave too soon after the next one.
        return max(0, min(self.capacity() - len(self._claimed), 256))

    async def sync(self, want: int) -> None:
        """Send the outbox and claim up to ``want`` requests, in one script call."""
        async with self._lock:
            if self.broken is not None:
                raise self.broken
            try:
                self.flush_outputs()
            except OSError as exc:
                self.broken = exc
                # Nothing since the last commit can be kept: those pages go back to the queue
                # (another worker, or this one after a restart, redoes them), then the error
                # ends this worker's crawl.
                why = f"an output could not be written ({exc}); its uncommitted items are redone"
                await self._recover([], "output_write_failed", why)
                raise
            self._pacer.flush()
            sent = self._positions
            batch_items = sum(int(op[3]) for op in self._outbox.ops if op[0] == "E")
            marks, self._batch_marks = self._batch_marks, []
            # Each output's size before the batch's items and after each: where a cut at
            # max_items would leave it (none if the marks do not match the items).
            cuts = {
                output: [self.committed.get(output, 0), *(mark[output] for mark in marks)]
                for output in (sent or {}) if marks and len(marks) == batch_items
            }
            if sent is not None:
                for output, position in sent.items():
                    self._outbox.add("O", output, position, ",".join(map(str, cuts.get(output, ()))))
                self._positions = None
            for chain, domain in self._downloaded.items():
                self._outbox.add("D", str(chain), domain)
            self._downloaded.clear()
            ops_sent = self._outbox.take()
            self._freed = 0
            duplicates = 0
            if len(ops_sent) > _CHUNK:
                # A burst of new requests (start requests, say) goes first, in bounded calls:
                # one long script would keep Redis from every other worker. Adds only move
                # earlier; a chain's end and the outputs' sizes stay in one call.
                adds = [op for op in ops_sent if op[0] in _EARLY]
                ops_sent = [op for op in ops_sent if op[0] not in _EARLY]
                while adds and len(adds) + len(ops_sent) > _CHUNK:
                    chunk, adds = adds[:_CHUNK], adds[_CHUNK:]
                    reply = await self._send(chunk, 0)
                    duplicates += reply[2]
                    self._log_cursor, news = reply[14:]
                    if news:
                        self._learn(news)
                ops_sent = adds + ops_sent
            reply = await self._send(ops_sent, want)
            for op in ops_sent:  # chains whose end or continuation Redis now has: no more renewing
                if op[0] in ("E", "C"):
                    self._held.discard(int(op[1]))
            self._last_sync = time.monotonic()
            claimed, refused, more, soonest, fresh, cont, leased, start, budget, items_total, pages_total = reply[:11]
            cut, late_sends, local = reply[11:14]
            self._log_cursor, news = reply[14:]
            if local:  # before any claim of this reply is fetched
                self.on_local_start()
            if news:
                self._learn(news)
            if late_sends:
                now = self._clock()
                for entry in late_sends.split(b"\n"):
                    domain, wait_ms = entry.split(b"\t")
                    self._pacer.sent_elsewhere(domain.decode(), now + max(0.0, float(wait_ms)) / 1000)
            duplicates += more
            start = start.decode()
            decode = self._codec.decode
            entries = claimed.split(b"\n") if claimed else ()
            if entries:
                self._poll = _POLL_FIRST
            for index in range(0, len(entries), 3):
                chain, domain = int(entries[index]), entries[index + 1].decode()
                try:
                    request = decode(entries[index + 2].decode())
                except (ValueError, TypeError, KeyError, AttributeError, UnstorableRequest) as exc:
                    # Not a request this crawl wrote (or of another spider): never evaluated,
                    # only reported, and its chain ends here.
                    self._outbox.add("E", str(chain), 0, 0, 0)  # (frees its slot too)
                    text = entries[index + 2].decode("utf-8", "replace")
                    self.on_bad_entry(text, f"{type(exc).__name__}: {exc}")
                    continue
                request.chain = chain
                request.domain = domain
                self._held.add(chain)
                self._claimed.append(request)
            if sent is not None and not refused:
                if cut >= 0:  # the crawl reached max_items within this batch: kept up to the cut
                    sent = {output: sizes[cut] for output, sizes in cuts.items()}
                self.committed.update(sent)
            if not refused:
                self.committed_items += batch_items if cut < 0 else cut
                self.committed_pages += sum(int(op[2]) for op in ops_sent if op[0] == "E")
            self.items_total = items_total
            self.pages_total = pages_total
            self._soonest = soonest / 1000 if soonest >= 0 else -1.0
            self.remote = {"fresh": fresh, "cont": cont, "leased": leased, "start": start, "budget": budget}
            if refused:
                why = "this worker's leases expired; its uncommitted items are redone"
                await self._recover(ops_sent, "leases_lost", why)
            elif cut >= 0 and self.on_cut is not None:
                await self.on_cut(batch_items - cut)
        if duplicates:
            self.on_duplicates(duplicates)
        if start == "orphaned":
            self.on_orphaned_start()
        self.on_synced()

    async def _send(self, ops: list[tuple[str | int | float, ...]], want: int) -> Any:
        self._seq += 1
        settings = self._settings
        reply = await self.call(
            "sync", want, self._lease_ms, int(settings.autothrottle), settings.min_rate, _dumps(ops), self._seq,
            self._log_cursor, self._max_items, raw=True,
        )
        if len(reply) == 1:  # {'gone'}: this worker is not in the crawl any more
            self.gone()
        return reply

    def gone(self) -> NoReturn:
        """The crawl's state is gone from Redis (this worker is not in it any more)."""
        raise FrontierUnavailable(
            f"the crawl's state is gone from the frontier at {self._where} (Redis lost it in a restart, "
            "or the crawl was cleared): this worker stops"
        )

    def _learn(self, news: bytes) -> None:
        """Other workers' new fingerprints (the seen log, see ``lua/sync.lua``): their
        requests are queued in Redis, so this worker need not send them again. Only while
        the cache is under _LEARN_LIMIT: past it, a worker of a huge crawl keeps its memory
        for its own finds and lets Redis dedupe the rest."""
        add, seen = self.seen.add, self.seen
        if len(seen) >= _LEARN_LIMIT:
            return
        for entry in news.split(b"\n"):
            for text in entry[entry.index(b"\t") + 1 :].split(b","):
                fp = int(text)
                add(fp + _SIGN if fp < 0 else fp)

    def pending(self) -> int:
        """Operations waiting for the next sync."""
        return self._outbox.count + len(self._downloaded)

    async def _recover(self, refused: list[tuple[str | int | float, ...]], event: str, reason: str) -> None:
        """A batch was refused: this worker's leases had expired (it was presumed dead, and
        other workers may be redoing its chains); or (none refused) the outputs could not be
        written. Chains that ended since the last committed sync are redone too: the outputs
        are cut back to their committed sizes, and those chains (the refused batch's, requeued
        by the script, and the ones ended since) go back."""
        ended = [str(op[1]) for op in self._outbox.ops if op[0] == "E"]
        self._item_marks, self._batch_marks = [], []  # (the outputs are cut back: marks are stale)
        taken_back = [op for op in (*refused, *self._outbox.ops) if op[0] == "E"]
        self.on_redone(sum(int(op[2]) for op in taken_back), sum(int(op[3]) for op in taken_back))
        self._held.difference_update(int(chain) for chain in ended)
        self._outbox.ops = [op for op in self._outbox.ops if op[0] not in ("E", "O")]
        self._positions = None
        if self.on_refused is not None:
            await self.on_refused(event, reason)
        if ended:
            await self.call("release", 0, *ended)

    def done(self, request: Request, now: float) -> None:
        if request.internal:
            return
        self._in_flight -= 1
        self._freed += 1
        if self._freed >= self._batch or not self._in_flight:
            self._enough.set()
        self._pacer.done(request.domain)
        self._downloaded[request.chain] = request.domain

    def finish(self, request: Request, *, page: bool = False, items: int = 0) -> None:
        if request.internal or not request.chain:
            return
        refund = request.chain in self._refunds
        if refund:
            self._refunds.discard(request.chain)
        self._downloaded.pop(request.chain, None)  # (an end frees the slot)
        self._outbox.add("E", str(request.chain), int(page), items, int(refund))
        if items:  # outputs only grow by a chain's items, written just before it ends
            self._positions = self.positions()
            if self._item_marks:
                self._batch_marks += self._item_marks
                self._item_marks = []

    def item_exported(self) -> None:
        """An item is in the outputs (with max_items: its mark, for a cut at the crawl's limit)."""
        if self._max_items >= 0:
            self._item_marks.append(self.positions())

    def items_elsewhere(self) -> int:
        """Items other workers have committed (as of the last sync)."""
        return max(0, self.items_total - self.committed_items)

    def committed_positions(self, positions: dict[str, int]) -> None:
        """The outputs' sizes as they were opened: nothing uncommitted in them yet."""
        self.committed.update(positions)
        self._positions = dict(positions)

    def start_done(self) -> None:
        """Every start request has been added (sent with the next sync)."""
        self._outbox.add("S")

    def local_start(self) -> None:
        """The crawl's start requests are local (sent ahead of them: any worker that claims
        one learns it in the same reply)."""
        self._outbox.add("L")

    def budget_restored(self, now: float, request: Request | None = None) -> None:
        if request is not None and request.chain:
            self._refunds.add(request.chain)  # with its chain's end: not if that end is refused
        else:
            self._outbox.add("R")

    def advance(self, request: Request) -> None:
        return None  # the hop itself is sent (``push``), as the chain's continuation

    def has_unbudgeted(self) -> bool:
        return False  # max_pages is kept in Redis

    def drain(self) -> int:
        """This worker stops: what it claimed goes back when it closes (the crawl's queue stays)."""
        self._internal.clear()
        return 0

    def active(self) -> bool:
        remote = self.remote
        return bool(
            self._claimed
            or self._internal
            or self._outbox.count
            or self._downloaded
            or remote["cont"]
            or remote["leased"]
            or (remote["fresh"] and remote["budget"] != 0)
            or remote["start"] != "done"
        )

    def end_reason(self) -> str | None:
        remote = self.remote
        return "max_pages" if remote["budget"] == 0 and remote["fresh"] else None

    def queued(self, key: str) -> int:
        return sum(1 for request in self._claimed if request.domain == key)

    def domains(self) -> list[str]:
        return []


def _signed(fp: int) -> str:
    """A 64-bit fingerprint as Redis keeps it in an intset (signed), in decimal."""
    return str(fp - _SIGN if fp >= _HALF else fp)


def _plain(request: Request) -> bool:
    """A followed link with nothing a codec could refuse (encoded at push time only)."""
    return request._meta is None and request._cb_kwargs is None and request.callback is None and request.errback is None
