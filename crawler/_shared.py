"""A worker of a shared crawl: the engine's side of a Redis frontier (``--frontier URL``).

Connects, joins the crawl (the spider's name must match the crawl's), says whether this
worker adds the start requests (the first worker of a new crawl does; another takes over
if it leaves or dies before it is done), and keeps this worker's outputs exactly-once:

* an output is known to the crawl by host and path, with its *committed* size: the size
  when the last batch of ended chains was acknowledged;
* a worker holds a lock on each of its outputs (``flock``) for as long as it runs, so no two
  processes on a machine write one file: a second one is refused, even when the first is
  only stalled (its leases expired: it cuts back its own file when it comes back), and a
  file whose writer died (the kernel dropped its lock) can be taken over at once;
* when a worker opens an output the crawl knows, the output is cut back to that size (a
  killed worker's uncommitted items are redone by other workers);
* when a batch is refused (this worker's leases had expired: it was presumed dead), its
  outputs are cut back at once;
* with ``max_items``, a batch whose items take the crawl past it is committed up to the
  item that reaches it (Redis keeps the first ones), and the outputs are cut back there;
* when the crawl has finished, a worker cuts back the outputs on its host left by workers
  that died, so that every item of the crawl is in exactly one output.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._codec import RequestCodec
from ._exceptions import FrontierUnavailable, SpiderLoadError
from ._log import get_logger
from ._pipeline import ItemPipeline, ResumableExporter
from ._redis_pacer import Outbox, RedisPacer
from ._redis_store import RedisStore, load_scripts
from ._settings import Settings, _redact
from ._shared_robots import SharedRobots
from ._spider import Spider

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the workers' heartbeats decide alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["SharedCrawl", "crawl_prefix", "crawl_status", "redis_client"]

_CONNECTIONS = 32  # per client: a worker's calls wait for one of these (see redis_client)
_CONNECTION_WAIT = 60.0  # seconds a call may wait for a free connection before it fails


def crawl_prefix(crawl_id: str) -> str:
    """The keys of one crawl: ``crawler:{id}:`` (one Redis, not a cluster: the scripts
    compute the keys they touch)."""
    return f"crawler:{{{crawl_id}}}:"


def redis_client(url: str, *, decode: bool = True) -> Any:
    """A redis-py asyncio client for ``url`` (replies as text, or as bytes).

    Its calls share at most ``_CONNECTIONS`` connections and wait for a free one: a broad
    crawl's worker asks for the robots.txt answers of up to ``concurrency`` origins at once,
    and redis-py's default pool refuses a call past 100 connections (``MaxConnectionsError``)
    rather than making it wait."""
    try:
        import redis.asyncio
    except ImportError:  # pragma: no cover - redis is a dependency
        raise SpiderLoadError('a shared frontier needs redis-py: pip install "crawler[redis]"') from None
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url, max_connections=_CONNECTIONS, timeout=_CONNECTION_WAIT,
        decode_responses=decode, socket_connect_timeout=10, health_check_interval=30,
    )
    return redis.asyncio.Redis.from_pool(pool)


class SharedCrawl:
    def __init__(
        self,
        spider: Spider,
        settings: Settings,
        exporters: Sequence[ItemPipeline],
        clock: Any,
    ) -> None:
        assert settings.frontier is not None
        self._spider = spider
        self._settings = settings
        self.where = _redact(settings.frontier)
        self.crawl_id = settings.crawl_id or spider.name
        self._exporters = [e for e in exporters if isinstance(e, ResumableExporter)]
        self._host = socket.gethostname()
        self._outputs = [(self._output_id(e), e) for e in self._exporters]
        self.worker = f"{self._host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._client = redis_client(settings.frontier)
        self._raw = redis_client(settings.frontier, decode=False)
        self._scripts = load_scripts(self._client)
        outbox = Outbox()
        self.pacer = RedisPacer(settings, outbox, clock)
        self.store = RedisStore(
            self._client,
            self._raw,
            self._scripts,
            crawl_prefix(self.crawl_id),
            self.worker,
            settings,
            RequestCodec(spider),
            outbox,
            self.pacer,
            where=self.where,
            lease_timeout=settings.lease_timeout,
            clock=clock,
        )
        self.store.positions = self._positions
        self.store.on_refused = self._cut_back
        self.store.flush_outputs = self._flush_outputs
        self.store.on_cut = self._over_max_items
        #: Called with the number of items cut off at max_items (the worker's count drops them).
        self.items_over: Callable[[int], None] = lambda count: None
        self._committed: dict[str, int] = {}
        self._log = get_logger(spider=spider.name)
        self._closed = False
        self._joined = False
        self._locks: dict[Path, int] = {}  # a descriptor per output, holding its lock
        #: The whole crawl's totals when this worker closed (all workers': pages, items, ...).
        self.totals: dict[str, int] | None = None

    def _output_id(self, exporter: ResumableExporter) -> str:
        return f"{self._host}:{exporter.key}"

    def _positions(self) -> dict[str, int]:
        """Each output's size now (taken at every ended chain: the ids are made once)."""
        return {output: exporter.position() for output, exporter in self._outputs}

    async def open(self) -> str:
        """Join the crawl; who adds start requests: ``new``, ``takeover`` or ``no``.

        Raises SpiderLoadError when the crawl belongs to another spider or an output is held
        by a live worker, FrontierUnavailable when Redis cannot be reached.
        """
        feed = await self.join()
        self._joined = True
        await self._claim_outputs()
        self.store.start_heartbeat()
        return feed

    async def join(self, *, rejoin: bool = False) -> str:
        """Register this worker; whether it is to add the start requests (see ``open``).
        ``rejoin``: it is in the crawl already, and asks to take over the start requests
        (FrontierUnavailable if the crawl's state is gone meanwhile)."""
        settings = self._settings
        max_pages = settings.max_pages if settings.max_pages is not None else -1
        feed, owner = await self.store.call(
            "open", int(settings.lease_timeout * 1000), self._spider.name, max_pages, int(rejoin)
        )
        if feed == "gone":
            self.store.gone()
        if feed == "format":
            raise SpiderLoadError(
                f"the crawl {self.crawl_id!r} in {self.where} was stored by another version of the crawler, "
                "which keeps a crawl's state otherwise: finish it with that version, or clear it"
            )
        if owner != self._spider.name:
            raise SpiderLoadError(
                f"the crawl {self.crawl_id!r} in {self.where} belongs to the spider {owner!r}, not "
                f"{self._spider.name!r}: pass another --crawl-id, or clear that crawl"
            )
        return str(feed)

    async def _claim_outputs(self) -> None:
        if not self._exporters:
            return
        outputs = crawl_prefix(self.crawl_id) + "outputs"
        known = await self._client.hgetall(outputs)
        for exporter in self._exporters:
            output = self._output_id(exporter)
            record = known.get(output)
            owner, _, position = (record or "").partition("\t")
            path = Path(exporter.key)
            locked = _lock(path)
            if locked is None and fcntl is not None:
                raise SpiderLoadError(
                    f"the output {exporter.key} is being written by another process on this machine: give this "
                    "worker its own output file"
                )
            if locked is not None:
                self._locks[path] = locked
            elif record is not None and owner != self.worker and await self._alive(owner):
                raise SpiderLoadError(
                    f"the output {exporter.key} is being written by the running worker {owner}: give this worker "
                    "its own output file"
                )
            if record is None:
                continue
            exporter.resume_at(int(position))  # a dead worker's uncommitted items are redone elsewhere
            self._committed[output] = int(position)
            await self._client.hset(outputs, output, f"{self.worker}\t{position}")  # this worker's now

    def release_outputs(self) -> None:
        """Let go of the outputs' locks (once they are closed); safe twice."""
        locks, self._locks = self._locks, {}
        for descriptor in locks.values():
            os.close(descriptor)

    def _check_locks(self) -> None:
        """After the outputs were (re)opened: an exporter that rewrote its file through a new
        one (a torn JSON array repaired) left the lock on the old file; lock the new one."""
        for path, descriptor in list(self._locks.items()):
            try:
                if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
                    continue
            except OSError:
                continue
            locked = _lock(path)
            if locked is None:
                raise SpiderLoadError(f"the output {path} was taken by another process while it was being repaired")
            os.close(descriptor)
            self._locks[path] = locked

    async def _alive(self, worker: str) -> bool:
        expiry = await self._client.zscore(crawl_prefix(self.crawl_id) + "workers", worker)
        if expiry is None:
            return False
        seconds, micros = await self._client.time()
        return bool(float(expiry) > seconds * 1000 + micros // 1000)

    def outputs_opened(self) -> None:
        """The outputs are open: their sizes now are what this worker starts from, and their
        writes wait for the commits (one write a sync, not one an item)."""
        for exporter in self._exporters:
            exporter.defer_writes()
        self._check_locks()
        positions = self._positions()
        self._committed.update(positions)
        self.store.committed_positions(positions)

    async def _cut_back(self, event: str, reason: str) -> None:
        """What this worker did since its last commit is dropped (a batch was refused, or the
        outputs could not be written): so is what the outputs got since their committed size."""
        self._log.warning(event, reason=reason)
        await self._truncate()

    def _flush_outputs(self) -> None:
        """Before a sync commits the outputs' sizes: what they hold goes to disk."""
        for exporter in self._exporters:
            try:
                exporter.flush()
            except OSError as exc:
                if exc.filename is not None:
                    raise
                raise OSError(exc.errno, exc.strerror, exporter.key) from exc

    async def _over_max_items(self, dropped: int) -> None:
        """The crawl reached max_items within this worker's last batch: Redis kept its first
        items only, and committed the outputs' sizes after them; the rest are cut off."""
        self._log.info("max_items_reached", items_dropped=dropped)
        await self._truncate()
        self.items_over(dropped)

    async def _truncate(self) -> None:
        """Cut each output back to its last committed size."""
        committed = self.store.committed
        for exporter in self._exporters:
            position = committed.get(self._output_id(exporter))
            if position is None or exporter.position() <= position:
                continue
            with contextlib.suppress(OSError):  # (what it could not write is cut off anyway)
                await exporter.close(self._spider)
            exporter.resume_at(position)
            await exporter.open(self._spider)
        self._check_locks()

    async def close(self, *, repair: bool = True, frontier_failed: bool = False) -> None:
        """Send what is pending, give back what this worker holds, and repair the outputs of
        dead workers on this host. Safe twice. ``frontier_failed``: the crawl ended because
        the frontier failed (unreachable, or the crawl's state gone): nothing is sent, as it
        would only fail again (and retry, and say so twice); the leases expire instead, and
        the outputs are cut back to their committed sizes (the crawl redoes those pages)."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._joined or frontier_failed:  # (not joined: nothing of this worker's is in the crawl)
                await self.store.stop_heartbeat()
                if self._joined:
                    await self._truncate()
                return
            await self.store.aclose()
            if self.store.broken is not None:
                await self._truncate()  # (what it exported since its last commit is redone elsewhere)
            if repair:
                await self._repair_dead_outputs()
            state = await self.status()
            self.totals = {**state["totals"], "queued": state["queued"], "leased": state["leased"]}
        except FrontierUnavailable as exc:
            self._log.error("frontier_close_error", frontier=self.where, reason=str(exc))
        finally:
            await self._client.aclose()
            await self._raw.aclose()

    async def _repair_dead_outputs(self) -> None:
        # First every expired lease goes back (a call requeues up to 200): a worker that only
        # stalled then finds its chains gone and cuts its own output back to the same size,
        # rather than committing ends after its file was cut here. A worker whose heartbeat
        # lapsed keeps a score above 0 until its leases are all back (see lua/common.lua).
        workers = crawl_prefix(self.crawl_id) + "workers"
        for _ in range(50):
            await self.status()
            seconds, micros = await self._client.time()
            if not await self._client.zcount(workers, 1, seconds * 1000 + micros // 1000):
                break
        outputs = crawl_prefix(self.crawl_id) + "outputs"
        known = await self._client.hgetall(outputs)
        prefix = f"{self._host}:"
        for output, record in known.items():
            owner, _, position = record.partition("\t")
            if not output.startswith(prefix) or owner == self.worker:
                continue
            path = Path(output[len(prefix) :])
            if not path.exists() or (fcntl is None and await self._alive(owner)):
                continue
            locked = _lock(path)
            if locked is None and fcntl is not None and (
                await self._alive(owner) or await self._client.hget(outputs, output) != record
            ):
                continue  # its writer runs (or a worker took the file over: it cut it back itself)
            # Else its owner is gone (the kernel dropped its lock: even before its heartbeat
            # expires, as when max_items ends the crawl first), or only stalled (its lock held,
            # its heartbeat expired): then its chains are being redone, and if it comes back it
            # cuts the file to this size too.
            try:
                size = path.stat().st_size
                array = path.suffix == ".json"  # a JSON array's position is before its "\n]"
                if size > int(position) + (2 if array else 0):
                    with open(path, "r+b") as file:
                        file.truncate(int(position))
                        if array:
                            file.seek(0, 2)
                            file.write(b"\n]")
                    dropped = size - int(position) - (2 if array else 0)
                    self._log.warning("output_repaired", output=str(path), worker=owner, dropped_bytes=dropped)
            except OSError:
                continue
            finally:
                if locked is not None:
                    os.close(locked)

    def robots(self) -> SharedRobots:
        """The middleware that fetches each origin's robots.txt once for the whole crawl."""
        return SharedRobots(self._client, crawl_prefix(self.crawl_id), self.worker)

    async def status(self) -> dict[str, Any]:
        return await crawl_status(self._scripts, self._client, self.crawl_id)


async def crawl_status(scripts: dict[str, Any], client: Any, crawl_id: str) -> dict[str, Any]:
    """A crawl's state in the frontier: queued, leased, live workers, totals, pauses."""
    reply = await scripts["status"](args=[crawl_prefix(crawl_id), ""], client=client)
    fresh, cont, leased, start, budget, live, totals, seen, spider, paused = reply

    def text(value: Any) -> str:
        return str(value)

    return {
        "crawl_id": crawl_id,
        "spider": text(spider) or None,
        "queued": fresh + cont,
        "leased": leased,
        "seen": seen,
        "start": text(start) or None,
        "pages_left": int(budget) if budget != "" else None,
        "workers": [text(w) for w in live],
        "totals": {text(totals[i]): int(totals[i + 1]) for i in range(0, len(totals), 2)},
        "paused": {text(paused[i]): int(paused[i + 1]) for i in range(0, len(paused), 2)},
    }


def _lock(path: Path) -> int | None:
    """A descriptor of ``path`` (created if missing) holding its exclusive lock, or None
    when another process holds it (or, without ``fcntl``, always None)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor
