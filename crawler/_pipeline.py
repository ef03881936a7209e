"""Item pipelines: plain objects run in list order on every item."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._spider import Spider

__all__ = ["ItemPipeline", "Pipeline", "ResumableExporter", "is_item", "item_to_dict"]


@runtime_checkable
class ItemPipeline(Protocol):
    """Transforms or drops items. Return the (possibly changed) item, or raise ``DropItem``.

    ``open``/``close`` bracket the crawl (open files, flush buffers); ``close`` is called
    even when the crawl is cancelled, so what was processed is kept.
    """

    async def open(self, spider: Spider) -> None: ...

    async def process_item(self, item: Any, spider: Spider) -> Any: ...

    async def close(self, spider: Spider) -> None: ...


def item_to_dict(item: Any) -> dict[str, Any]:
    """A plain dict for an item (a dict, a dataclass instance, or a mapping-like object)."""
    if isinstance(item, dict):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    return dict(item)


def is_item(obj: Any) -> bool:
    return isinstance(obj, dict) or (dataclasses.is_dataclass(obj) and not isinstance(obj, type))


class Pipeline:
    """A convenient base: no-op ``open``/``close``, identity ``process_item``. Override what you need."""

    async def open(self, spider: Spider) -> None:
        return None

    async def process_item(self, item: Any, spider: Spider) -> Any:
        return item

    async def close(self, spider: Spider) -> None:
        return None


class ResumableExporter(Pipeline):
    """An exporter whose output a resumed crawl can cut back to its last checkpoint.

    With a state file (``--state``), the crawl records ``position()`` with every checkpoint;
    when it resumes it calls ``resume_at(position)`` before ``open``, and the exporter drops
    whatever it wrote after that position (items of pages that will be fetched again), so
    every item is in the output exactly once. ``key`` names the output in the state file.
    """

    @property
    def key(self) -> str:
        raise NotImplementedError

    def position(self) -> int:
        """How far the output is written, everything before it flushed (with deferred
        writes: what waits in memory counted, written by the next ``flush()``)."""
        raise NotImplementedError

    def resume_at(self, position: int) -> None:
        """Before ``open``: keep the output up to ``position`` and append after it."""
        raise NotImplementedError

    def defer_writes(self) -> None:
        """After ``open``, from a crawl that commits ``position()`` itself and calls
        ``flush()`` before each commit (a shared crawl): items may wait in memory until the
        next ``flush()``, one write for many. What a crash loses that way was not committed,
        and is redone. By default, items are written as they come."""

    def flush(self) -> None:
        """Write what waits in memory (see ``defer_writes``); raise ``OSError`` if it cannot
        be written, with the output as it was before (``position()`` too)."""
