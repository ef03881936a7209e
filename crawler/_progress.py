"""A crawl's progress while it runs: the numbers, a periodic log event, a live terminal view.

:class:`ProgressMeter` turns the crawl's counters into a :class:`CrawlProgress` (pages,
items, failures, queued, in flight, rates now and on average, an ETA when ``max_pages`` or
``max_items`` bounds the crawl). It reads counters only, never the per-domain state, so it
is cheap enough to ask four times a second in a crawl of a million domains.

Two ways to show it:

- :func:`log_progress`: a ``progress`` INFO event every ``progress_interval`` seconds with
  those numbers as fields (as Scrapy's LogStats does), for a log pipeline to see a crawl
  advance. A Crawler runs it itself when the setting is above 0.
- :class:`LiveProgress`: the command line's view on a terminal (rich): a status line, a bar
  with an ETA when the crawl is bounded, and the busiest domains (rate now and configured,
  pause left, 429/503s, in flight, queued), redrawn at most 4 times a second with the log
  lines printed above it. The per-domain table, which costs a pass over every domain, is
  refreshed once a second (every 5 s past 5,000 domains).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._log import get_logger

if TYPE_CHECKING:
    from ._settings import Settings
    from ._stats import DomainStats, StatsCollector

__all__ = ["CrawlProgress", "LiveProgress", "ProgressMeter", "log_progress"]

_WINDOW = 10.0  # seconds over which the rate "now" is measured


@dataclasses.dataclass(frozen=True, slots=True)
class CrawlProgress:
    """Where a crawl stands, cheaply (``Crawler.progress()``)."""

    pages: int
    items: int
    failures: int  #: requests that ended failed, all reasons
    filtered: int  #: requests and links filtered, all reasons
    queued: int
    in_flight: int  #: requests handed out whose processing has not ended
    elapsed_s: float
    pages_per_s: float  #: on average since the start
    pages_per_s_now: float  #: over the last 10 seconds or so (since the sample before them)
    items_per_s: float
    #: With ``max_pages`` or ``max_items``: the share done (0..1) and seconds left at the
    #: current rate; None for an unbounded crawl (its end cannot be known).
    done: float | None
    eta_s: float | None
    #: In a shared crawl (a Redis frontier): the whole crawl's ``pages``, ``items``,
    #: ``queued`` and ``leased`` as of this worker's last sync; the fields above are this
    #: worker's share. None for a crawl of one process.
    whole_crawl: dict[str, int] | None = None

    def as_fields(self) -> dict[str, Any]:
        """The numbers as log fields (rounded; bounds only when known)."""
        fields = dataclasses.asdict(self)
        for name in ("elapsed_s", "pages_per_s", "pages_per_s_now", "items_per_s"):
            fields[name] = round(fields[name], 1)
        for name in ("done", "eta_s"):
            if fields[name] is None:
                del fields[name]
            else:
                fields[name] = round(fields[name], 3 if name == "done" else 1)
        whole = fields.pop("whole_crawl")
        if whole is not None:
            fields.update({f"crawl_{name}": value for name, value in whole.items()})
        return fields


class ProgressMeter:
    """Computes :class:`CrawlProgress` from the counters, keeping a short history of the
    page count for the rate "now"."""

    def __init__(
        self,
        stats: StatsCollector,
        in_flight: Callable[[], int],
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stats = stats
        self._in_flight = in_flight
        self._max_pages = settings.max_pages
        self._max_items = settings.max_items
        self._clock = clock
        #: (time, this process's pages, the bounded pages and items): for the rates "now".
        self._history: collections.deque[tuple[float, int, int, int]] = collections.deque()
        #: Set for a shared crawl: the whole crawl's totals (see CrawlProgress.whole_crawl).
        self.whole_crawl: Callable[[], dict[str, int]] | None = None

    def progress(self) -> CrawlProgress:
        stats = self._stats
        now = self._clock()
        elapsed = stats.elapsed()
        pages, items = stats.pages, stats.items
        whole = self.whole_crawl() if self.whole_crawl is not None else None
        # The bounds (max_pages, max_items) are the whole crawl's: in a shared crawl the
        # share done and the ETA go by its totals and their rate.
        bound_pages, bound_items = (whole["pages"], whole["items"]) if whole is not None else (pages, items)
        history = self._history
        if whole is not None and history and history[0][2] == 0 and bound_pages:
            history.clear()  # samples from before the first sync: the whole crawl's totals were not known
        history.append((now, pages, bound_pages, bound_items))
        while len(history) > 2 and now - history[1][0] >= _WINDOW:
            history.popleft()
        then, pages_then, bound_pages_then, bound_items_then = history[0]
        span = now - then
        rate_now = (pages - pages_then) / span if span >= 0.5 else 0.0
        rate = pages / elapsed if elapsed > 0 else 0.0
        item_rate = items / elapsed if elapsed > 0 else 0.0
        if whole is None:
            done, eta = self._bound(bound_pages, bound_items, rate_now or rate, item_rate)
        else:
            page_rate = (bound_pages - bound_pages_then) / span if span >= 0.5 else 0.0
            whole_item_rate = (bound_items - bound_items_then) / span if span >= 0.5 else 0.0
            done, eta = self._bound(bound_pages, bound_items, page_rate, whole_item_rate)
        return CrawlProgress(
            pages=pages,
            items=items,
            failures=sum(stats.failures.values()),
            filtered=sum(stats.filtered_by.values()),
            queued=stats.queued,
            in_flight=self._in_flight(),
            elapsed_s=elapsed,
            pages_per_s=rate,
            pages_per_s_now=rate_now,
            items_per_s=item_rate,
            done=done,
            eta_s=eta,
            whole_crawl=whole,
        )

    def _bound(self, pages: int, items: int, page_rate: float, item_rate: float) -> tuple[float | None, float | None]:
        """The share done and the seconds left, by whichever bound is nearer its end."""
        shares: list[tuple[float, float | None]] = []
        if self._max_pages:
            left = max(self._max_pages - pages, 0)
            shares.append((min(pages / self._max_pages, 1.0), left / page_rate if page_rate > 0 else None))
        if self._max_items:
            left = max(self._max_items - items, 0)
            shares.append((min(items / self._max_items, 1.0), left / item_rate if item_rate > 0 else None))
        if not shares:
            return None, None
        return max(shares, key=lambda share: share[0])


async def log_progress(progress: Callable[[], CrawlProgress], interval: float) -> None:
    """A ``progress`` INFO event every ``interval`` seconds, until cancelled."""
    log = get_logger()
    while True:
        await asyncio.sleep(interval)
        log.info("progress", **progress().as_fields())


class LiveProgress:
    """The crawl's live view on a terminal, drawn with rich until the crawl ends."""

    def __init__(
        self,
        progress: Callable[[], CrawlProgress],
        busiest: Callable[[int], tuple[int, dict[str, DomainStats]]],
        *,
        console: Any = None,
        domains: int = 8,
    ) -> None:
        from rich.console import Console

        self._progress = progress
        self._busiest = busiest
        self.console = console if console is not None else Console(stderr=True)
        self._rows = domains
        self._table: list[tuple[str, DomainStats]] = []
        self._domain_count = 0
        self._table_at = -1e9
        #: Log lines waiting for the next frame (see write()).
        self._pending: list[str] = []

    def write(self, text: str) -> None:
        """Print ``text`` (whole lines) above the view, with the next frame: every line
        printed on its own would redraw the whole view (about 5 ms each), and a crawl logging
        a hundred failures a second would spend its time redrawing."""
        self._pending.append(text)

    async def run(self) -> None:
        """Redraw 4 times a second until cancelled; the last frame stays on screen. An error
        in the view ends the view (logged), never the crawl."""
        from rich.live import Live

        # redirect_stderr: anything else written to sys.stderr goes above the view, never
        # through it; stdout is left alone (it may be a file). No refresh thread of rich's
        # own: frames are drawn from here, in the loop, so no second thread contends for the
        # interpreter while the crawl runs.
        live = Live(
            self.render(), console=self.console, auto_refresh=False, redirect_stderr=True, redirect_stdout=False
        )
        with live:
            try:
                while True:
                    await asyncio.sleep(0.25)
                    self._frame(live)
            except Exception as exc:  # a bug of the view's: the crawl goes on without it
                get_logger().error("progress_view_failed", error=repr(exc), exc_info=exc)
            finally:
                self._table_at = -1e9  # the last frame shows the domains as they ended
                with contextlib.suppress(Exception):
                    self._frame(live)

    def _frame(self, live: Any) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            sys.stderr.write(text)  # rich's proxy while the view is up: printed above it, in one redraw
        live.update(self.render(), refresh=True)

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        p = self._progress()
        line = Text.assemble(
            ("pages ", "dim"), (f"{p.pages:,}", "bold"),
            ("  items ", "dim"), (f"{p.items:,}", "bold"),
            ("  failed ", "dim"), (f"{p.failures:,}", "bold red" if p.failures else "bold"),
            ("  queued ", "dim"), f"{p.queued:,}",
            ("  in flight ", "dim"), f"{p.in_flight:,}",
            ("  ", ""), (f"{p.pages_per_s_now:,.1f}", "bold"), (" pages/s now", "dim"),
            (f" ({p.pages_per_s:,.1f} avg)", "dim"),
            ("  elapsed ", "dim"), _duration(p.elapsed_s),
        )
        parts: list[Any] = [line]
        whole = p.whole_crawl
        if whole is not None:  # this worker's numbers above, the whole crawl's here
            parts.append(
                Text.assemble(
                    ("whole crawl: pages ", "dim"), (f"{whole['pages']:,}", "bold"),
                    ("  items ", "dim"), (f"{whole['items']:,}", "bold"),
                    ("  queued ", "dim"), f"{whole['queued']:,}",
                    ("  leased ", "dim"), f"{whole['leased']:,}",
                )
            )
        if p.done is not None:
            bar = Table.grid(padding=(0, 1))
            bar.add_row(
                ProgressBar(total=1.0, completed=p.done, width=40),
                Text(f"{p.done:.0%}"),
                Text("ETA " + (_duration(p.eta_s) if p.eta_s is not None else "?"), style="dim"),
            )
            parts.append(bar)
        table = self._domains()
        if table is not None:
            parts.append(table)
        return Group(*parts)

    def _domains(self) -> Any:
        from rich.table import Table

        now = time.monotonic()
        if now - self._table_at >= (5.0 if self._domain_count > 5000 else 1.0):
            self._table_at = now
            self._domain_count, busiest = self._busiest(self._rows)
            self._table = [(name, d) for name, d in busiest.items() if d.in_flight or d.queued or d.paused_for_s]
        if not self._table:
            return None
        table = Table(box=None, padding=(0, 1), header_style="dim")
        for column in ("domain", "rate now/set", "paused", "429/503", "in flight", "queued"):
            table.add_column(column, justify="left" if column == "domain" else "right")
        for name, d in self._table:
            paused = f"{d.paused_for_s:.0f}s" if d.paused_for_s else ""
            table.add_row(
                name, f"{_rate(d.rate)}/{_rate(d.configured_rate)}", paused, str(d.throttled or ""),
                str(d.in_flight), f"{d.queued:,}",
            )
        if self._domain_count > len(self._table):
            table.caption = f"busiest {len(self._table)} of {self._domain_count:,} domains"
        return table


def _rate(rate: float | None) -> str:
    return "∞" if rate is None else f"{rate:g}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
