"""Item exporters: JSON Lines and CSV, each item written whole as it comes.

An exporter is an item pipeline that runs last. Each item is serialised first and written
with a single ``write`` call to the file itself (no buffer in this process), so a crash or a
second Ctrl-C can cut the crawl between items but never leaves half a line, and nothing
already exported is lost. A shared crawl, which commits the outputs' sizes itself and redoes
what a crash loses after the last commit, defers the writes instead (``defer_writes``): the
items wait in memory and go in one write just before each commit (``flush``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from crawler import Pipeline, ResumableExporter, Spider, item_to_dict

__all__ = ["CsvExporter", "JsonArrayExporter", "JsonLinesExporter", "StdoutExporter", "exporter_for"]


class _FileExporter(ResumableExporter):
    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self._file: IO[bytes] | None = None
        self._resume_at: int | None = None
        # Where the output ends (before open: where it resumes). Counted as items are written:
        # a shared crawl asks for it at every page's end, and tell() on a file costs more.
        self._position = 0
        self._deferred = False
        self._waiting: list[bytes] = []  # deferred: what the next flush() writes, at _written
        self._written = 0  # where the file ends (deferred: before what waits)

    @property
    def key(self) -> str:
        return str(self.path.resolve())

    def position(self) -> int:
        return self._position

    def resume_at(self, position: int) -> None:
        self._resume_at = self._position = position

    def _cut_back(self) -> None:
        """A resumed crawl: drop what was written after its checkpoint (a torn last line included)."""
        if self._resume_at is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as existing:
            existing.truncate(min(self._resume_at, existing.seek(0, os.SEEK_END)))
        self._resume_at = None
        self.overwrite = False  # -O replaces the file when a crawl starts, never when it resumes

    async def open(self, spider: Spider) -> None:
        self._cut_back()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Held open for the whole crawl and closed in close(), which the crawler always calls.
        # Unbuffered bytes: an item is one write() to the file, with nothing left to flush.
        self._file = open(self.path, "wb" if self.overwrite else "ab", buffering=0)  # noqa: SIM115
        self._position = self._written = self._file.seek(0, os.SEEK_END)

    async def close(self, spider: Spider) -> None:
        if self._file is not None:
            try:
                self.flush()
            finally:
                file, self._file = self._file, None
                file.close()

    def defer_writes(self) -> None:
        self._deferred = True

    def flush(self) -> None:
        if self._waiting:
            data = b"".join(self._waiting)
            self._waiting = []
            self._write_now(data)

    def _put(self, data: bytes) -> None:
        """``data`` (an item) written now, or with the next flush() when deferred."""
        if self._deferred:
            self._waiting.append(data)
        else:
            self._write_now(data)

    def _write_now(self, data: bytes) -> None:
        try:
            self._write_waiting(data)
        except BaseException:
            self._unwritten()  # (the file is as it was: see _write_bytes)
            raise

    def _write_waiting(self, data: bytes) -> None:
        self._write_bytes(data, self._written)
        self._written += len(data)

    def _unwritten(self) -> None:
        """What waited could not be written: count the output as the file holds it."""
        self._position = self._written

    def _write(self, text: str) -> None:
        data = text.encode("utf-8")
        self._put(data)
        self._position += len(data)

    def _write_bytes(self, data: bytes, start: int, restore: bytes = b"") -> None:
        """``data`` written whole where the file ends at ``start``. A write that fails part
        way (a full disk) is undone: the file is cut back to ``start`` (and ``restore``
        written there again), so what the exporter counts stays what the file holds, and a
        later cut back to a committed position never tears an item."""
        assert self._file is not None, "exporter used before open()"
        written = 0
        try:
            while written < len(data):  # a short write (a regular file: a disk nearly full)
                written += self._file.write(memoryview(data)[written:]) or 0
        except BaseException:
            with contextlib.suppress(OSError):
                self._file.truncate(start)
                if restore:
                    self._file.seek(start)
                    self._file.write(restore)
            raise


class JsonLinesExporter(_FileExporter):
    """One JSON object per line (UTF-8, non-ASCII kept as is)."""

    async def process_item(self, item: Any, spider: Spider) -> Any:
        self._write(json.dumps(item_to_dict(item), ensure_ascii=False, default=str) + "\n")
        return item


class JsonArrayExporter(_FileExporter):
    """A JSON array, ``[`` then one item per line, kept valid after every item: each item is
    written with the closing ``]`` after it, over the previous one's, in one write. A crawl
    cut by Ctrl-C, a crash or kill -9 leaves a file ``json.load`` reads; appending (``-o``)
    goes on inside the existing array. A file torn by a crash in the middle of a write is
    repaired when it is next opened: items up to the last whole one are kept."""

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        super().__init__(path, overwrite=overwrite)
        self._end = 0  # where the closing "\n]" starts (deferred: once what waits is written)
        self._empty = True
        self._written_empty = True  # (deferred) whether the file itself holds no item yet

    def _cut_back(self) -> None:
        """As for any file, then the array closed again in place (``\n]`` after the last item
        kept): no rewrite, so the file stays the same file (a shared crawl holds a lock on it)."""
        resume_at = self._resume_at
        super()._cut_back()
        if resume_at and self.path.exists():
            with open(self.path, "r+b") as file:
                if file.seek(0, os.SEEK_END) == resume_at:
                    file.write(b"\n]")

    async def open(self, spider: Spider) -> None:
        self._cut_back()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.overwrite or not self.path.exists() or not self.path.stat().st_size
        if not fresh:
            self._repair()
        # Held open for the whole crawl and closed in close(), which the crawler always calls.
        self._file = open(self.path, "w+b" if fresh else "r+b", buffering=0)  # noqa: SIM115
        if fresh:
            self._write_bytes(b"[\n]", 0)
            self._end, self._empty = 1, True
        else:
            size = self._file.seek(0, os.SEEK_END)
            self._end = size - 2  # the file ends with "\n]" (repaired if not)
            self._file.seek(0)
            head = self._file.read(4096) if size <= 4096 else b""
            self._empty = head.decode("utf-8").strip() in ("[]", "[\n]")
        self._written, self._written_empty = self._end, self._empty

    def _repair(self) -> None:
        """Make the file an array ending with ``\n]``: as written here, or torn by a crash
        (items up to the last whole one kept). Rewritten through a temporary file, so a crash
        during the repair loses nothing."""
        text = self.path.read_text(encoding="utf-8")
        if text.endswith("\n]") or text == "[\n]":
            return  # as written here (the common case: no rewrite of a big file)
        try:
            items = json.loads(text)
        except ValueError:
            items = []
            for line in text.split("\n")[1:]:  # "[" first, then an item a line (\n only: see json.dumps)
                try:
                    items.append(json.loads(line.rstrip().rstrip(",").rstrip("]").rstrip()))
                except ValueError:
                    break  # the torn one: what follows it is lost with it
            if not items and text.strip() not in ("", "["):
                raise ValueError(
                    f"{self.path} is not a JSON array this exporter can append to: not touching it"
                ) from None
        if not isinstance(items, list):
            raise ValueError(f"{self.path} holds JSON that is not an array: not appending to it")
        body = ",\n".join(json.dumps(item, ensure_ascii=False, default=str) for item in items)
        repaired = self.path.with_name(self.path.name + ".repair")
        repaired.write_text("[\n" + body + "\n]" if items else "[\n]", encoding="utf-8")
        os.replace(repaired, self.path)

    def position(self) -> int:
        """Where the last whole item ends (its closing ``\n]`` comes after): a file cut here
        and closed again with ``\n]`` holds every item up to this one."""
        return self._end if self._file is not None else self._position

    async def close(self, spider: Spider) -> None:
        try:
            await super().close(spider)
        finally:
            self._position = self._end

    def _unwritten(self) -> None:
        self._end, self._empty = self._written, self._written_empty

    def _write_waiting(self, data: bytes) -> None:
        """Items written over the array's end, with it after them, in one write (the end put
        back if the write fails part way)."""
        assert self._file is not None, "exporter used before open()"
        self._file.seek(self._written)
        self._write_bytes(data + b"\n]", self._written, restore=b"\n]")
        self._written += len(data)
        self._written_empty = False

    async def process_item(self, item: Any, spider: Spider) -> Any:
        assert self._file is not None, "exporter used before open()"
        chunk = ("" if self._empty else ",") + "\n" + json.dumps(item_to_dict(item), ensure_ascii=False, default=str)
        data = chunk.encode("utf-8")
        self._put(data)
        self._end += len(data)
        self._empty = False
        return item


class CsvExporter(_FileExporter):
    """CSV with a header row; columns are the first item's fields (later new fields are dropped).

    When appending to a file that already has a header, its columns are reused.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        super().__init__(path, overwrite=overwrite)
        self._fields: list[str] | None = None

    async def open(self, spider: Spider) -> None:
        self._cut_back()
        self._fields = None  # (re)opened, perhaps cut back: the header is what the file has
        if not self.overwrite and self.path.exists() and self.path.stat().st_size:
            with open(self.path, encoding="utf-8", newline="") as existing:
                self._fields = next(csv.reader(existing), None)
        await super().open(spider)

    async def process_item(self, item: Any, spider: Spider) -> Any:
        row = item_to_dict(item)
        buffer = io.StringIO()
        header = self._fields is None
        fields = self._fields = list(row) if self._fields is None else self._fields
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
        if header:
            writer.writeheader()
        writer.writerow({k: _cell(v) for k, v in row.items()})
        self._write(buffer.getvalue())
        return item

    def _unwritten(self) -> None:
        super()._unwritten()
        if not self._written:
            self._fields = None  # the header went with what could not be written: the next row writes it


def _cell(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


class StdoutExporter(Pipeline):
    """``-o -``: JSON Lines on standard output, a line written and flushed per item (the logs
    stay on stderr), for ``| jq`` and the like. Not resumable: a pipe has no position."""

    def __init__(self) -> None:
        self.closed = False  # the reader went away (``| head``): later items are not written
        #: Called once when the reader went away: the command line stops the crawl then.
        self.on_closed: Callable[[], Awaitable[None]] | None = None

    async def process_item(self, item: Any, spider: Spider) -> Any:
        if self.closed:
            return item
        try:
            sys.stdout.write(json.dumps(item_to_dict(item), ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.closed = True
            # Whatever is still buffered goes nowhere, instead of failing again at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            if self.on_closed is not None:
                await self.on_closed()
        return item


def exporter_for(path: str, *, overwrite: bool = False) -> Pipeline:
    """The exporter for a file name's extension, found in the ``crawler.plugins`` entry
    points; ``-`` is JSON Lines on standard output."""
    from importlib.metadata import entry_points

    if path == "-":
        return StdoutExporter()
    suffix = Path(path).suffix.lower().lstrip(".")
    aliases = {"jl": "jsonl", "ndjson": "jsonl"}
    name = aliases.get(suffix, suffix)
    for ep in entry_points(group="crawler.plugins"):
        if ep.name == name:
            exporter: Pipeline = ep.load()(path, overwrite=overwrite)
            return exporter
    known = sorted({ep.name for ep in entry_points(group="crawler.plugins")} | set(aliases))
    raise ValueError(f"no exporter for {path!r}: use one of the extensions {', '.join(known)}")
