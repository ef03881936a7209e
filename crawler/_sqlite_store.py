"""The crash-safe local store: a crawl's queue, seen-set and progress in one SQLite file.

``--state crawl.db``: the same command run again resumes the crawl, after Ctrl-C or after
``kill -9``. Scheduling stays in memory (the :class:`MemoryStore` this extends); SQLite is
the durable record, written behind it in batched transactions:

* ``queue``: every accepted request whose chain has not ended (a request, its retries and
  redirect hops are one chain), as JSON (``_codec``). A row is deleted when its chain ends
  (a page whose callback finished, filtered, failed). Requests in flight at a crash are
  still there, so a resumed crawl fetches them again; nothing queued is lost.
* ``seen``: the 64-bit fingerprint of every accepted request, so a resumed crawl dedupes
  against everything it ever queued.
* ``meta``: the spider's name, whether the crawl finished, the stats so far and the
  exporters' committed file positions.

All writes go through one connection in program order, so every commit is a consistent
prefix of what happened. The engine exports a page's items when its chain ends, then
finishes the chain here, and a checkpoint records the exporters' positions with the rows in
one transaction: after a crash the output files are cut back to the last checkpoint and the
pages after it are fetched again, so each item is written exactly once.

Durability: WAL journal, ``synchronous=NORMAL``: a commit survives the process being killed
at any moment; a power loss may undo the last commits (never corrupt the file), and output
files are flushed, not fsynced, so it may also lose the last items written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._codec import RequestCodec
from ._exceptions import SpiderLoadError
from ._pacer import Pacer
from ._request import Request
from ._store import MemoryStore

__all__ = ["SqliteStore", "StateFileError", "StoredCrawl"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (fp INTEGER PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (id INTEGER PRIMARY KEY, request TEXT NOT NULL);
"""
_SIGN = 1 << 63  # fingerprints are unsigned 64-bit; SQLite integers are signed


class StateFileError(SpiderLoadError):
    """The state file is not a crawl's state (another database, a corrupt file)."""


class StoredCrawl:
    """What a state file holds when a crawl opens it."""

    def __init__(self, meta: dict[str, Any], requests: list[Request]) -> None:
        self.meta = meta
        #: Requests to queue again: those whose chain had not ended.
        self.requests = requests

    @property
    def new(self) -> bool:
        return "spider" not in self.meta

    @property
    def finished(self) -> bool:
        return bool(self.meta.get("finished"))


class SqliteStore(MemoryStore):
    """A :class:`MemoryStore` whose queue, seen-set and checkpoints are kept in SQLite."""

    def __init__(
        self,
        path: str | Path,
        pacer: Pacer,
        codec: RequestCodec,
        *,
        batch: int = 1,
        checkpoint_every: float = 0.1,
    ) -> None:
        super().__init__(pacer)
        self.path = Path(path)
        self._codec = codec
        self._batch = batch
        self._checkpoint_every = checkpoint_every
        self._last_checkpoint = time.monotonic()
        self._db: sqlite3.Connection | None = None
        self._next_chain = 1
        self._new_seen: list[int] = []
        self._new_rows: list[tuple[int, str]] = []
        self._ended: list[int] = []
        #: Called at each checkpoint for what must be saved beside the rows (stats, positions).
        self.progress: Callable[[], dict[str, Any]] = dict

    def open(self) -> StoredCrawl:
        """Open (or create) the file and read its progress record; ``load()`` reads the rest.

        Raises ``StateFileError`` for a file that is not a crawl's state (another SQLite
        database, a corrupt file): it is never taken over.
        """
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"meta", "seen", "queue"} <= tables:
                raise StateFileError(f"{self.path} is an SQLite database, but not a crawl's state file")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key = 'progress'").fetchone()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise StateFileError(f"{self.path} cannot be read as a crawl's state file: {exc}") from None
        except StateFileError:
            self._close_quietly()
            raise
        meta: dict[str, Any] = json.loads(row[0]) if row else {}
        self._next_chain = int(meta.get("next_chain", 1))
        return StoredCrawl(meta, [])

    def load(self) -> list[Request]:
        """The seen fingerprints into memory, and the requests whose chain had not ended."""
        db = self._db
        assert db is not None, "open() first"
        for (fp,) in db.execute("SELECT fp FROM seen"):
            self.seen.add(fp + _SIGN)
        requests = []
        for chain, text in db.execute("SELECT id, request FROM queue ORDER BY id"):
            request = self._codec.decode(text)
            request.chain = chain
            requests.append(request)
            self._next_chain = max(self._next_chain, chain + 1)
        return requests

    def _close_quietly(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    # -- the durable record, written behind the memory store -------------------------------

    def see(self, fingerprint: int) -> bool:
        if not self.seen.add(fingerprint):
            return False
        self._new_seen.append(fingerprint - _SIGN)
        return True

    def accept(self, request: Request) -> None:
        if request.chain == 0:  # a new chain: stored before it is queued, or not accepted at all
            text = self._codec.encode(request)
            request.chain = self._next_chain
            self._next_chain += 1
            self._new_rows.append((request.chain, text))

    def advance(self, request: Request) -> None:
        if request.chain:  # the chain goes on as this request (a redirect hop): resume from it
            self._new_rows.append((request.chain, self._codec.encode(request)))

    def finish(self, request: Request, *, page: bool = False, items: int = 0) -> None:
        if request.chain:
            self._ended.append(request.chain)
            # A checkpoint every ``batch`` ended chains, or sooner if the last one is old: a
            # kill costs at most the chains in flight plus ``batch`` to fetch again.
            if len(self._ended) >= self._batch or time.monotonic() - self._last_checkpoint >= self._checkpoint_every:
                self.checkpoint()

    def checkpoint(self, **meta: Any) -> None:
        """Commit everything so far, with ``progress()`` and ``meta`` saved beside it."""
        db = self._db
        if db is None:
            return
        values = {**self.progress(), **meta, "next_chain": self._next_chain}
        db.execute("BEGIN")
        try:
            if self._new_seen:
                db.executemany("INSERT OR IGNORE INTO seen (fp) VALUES (?)", ((fp,) for fp in self._new_seen))
            if self._new_rows:
                db.executemany("INSERT OR REPLACE INTO queue (id, request) VALUES (?, ?)", self._new_rows)
            if self._ended:
                db.executemany("DELETE FROM queue WHERE id = ?", ((chain,) for chain in self._ended))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('progress', ?)", (json.dumps(values),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._new_seen.clear()
        self._new_rows.clear()
        self._ended.clear()
        self._last_checkpoint = time.monotonic()

    def aclose_sync(self, *, save: bool = True, **meta: Any) -> None:
        """A last checkpoint (unless not ``save``), then close the file; safe twice."""
        if self._db is None:
            return
        try:
            if save:
                self.checkpoint(**meta)
        finally:
            db, self._db = self._db, None
            db.close()
