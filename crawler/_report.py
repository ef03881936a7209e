"""The end-of-crawl report: one self-contained HTML file (``--report report.html``).

:class:`Timeline` samples the crawl while it runs (pages, items and failures each second;
each busy domain's rate every few seconds, since that costs a pass over every domain), and
:func:`write_report` renders the samples and the final stats: the summary, failures and
filtered requests by reason, the per-domain table, and charts of pages/s, items/s and the
busiest domains' rates over time. The charts are inline SVG drawn here, the styles inline:
the file needs no network and no script to be viewed, mailed or archived.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import html
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

from ._log import get_logger
from ._progress import CrawlProgress
from ._stats import CrawlStats, DomainStats

__all__ = ["Timeline", "render_report", "write_report"]

_MAX_POINTS = 600  # samples kept: past it, every other one is dropped and the step doubles
_DOMAINS = 6  # domains drawn in the rates chart
_KEPT = 12  # domains whose rate a sample keeps (the busiest at the time)
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")


@dataclasses.dataclass(slots=True)
class _Sample:
    elapsed_s: float
    pages: int
    items: int
    failures: int
    rates: dict[str, float]  # domain -> its rate (requests/s) at the time; sampled less often


class Timeline:
    """Samples of a running crawl, at most ``_MAX_POINTS`` of them however long it runs."""

    def __init__(
        self,
        progress: Callable[[], CrawlProgress],
        busiest: Callable[[int], tuple[int, dict[str, DomainStats]]],
    ) -> None:
        self._progress = progress
        self._busiest = busiest
        self.samples: list[_Sample] = []
        self.step = 1.0

    async def run(self) -> None:
        """Sample until cancelled (and once more then). An error in sampling ends the
        sampling (logged), never the crawl."""
        tick = 0
        try:
            while True:
                self.sample(with_domains=tick % 5 == 0)
                tick += 1
                await asyncio.sleep(self.step)
        except Exception as exc:
            get_logger().error("report_sampling_failed", error=repr(exc), exc_info=exc)
        finally:
            with contextlib.suppress(Exception):
                self.sample(with_domains=True, last=True)

    def sample(self, *, with_domains: bool, last: bool = False) -> None:
        p = self._progress()
        rates: dict[str, float] = {}
        if with_domains:
            # Only the busiest few, picked by the frontier: a sample is small and cheap
            # however broad the crawl.
            _, busy = self._busiest(_KEPT)
            rates = {name: d.rate for name, d in busy.items() if d.rate is not None}
        sample = _Sample(p.elapsed_s, p.pages, p.items, p.failures, rates)
        samples = self.samples
        if last and samples and sample.elapsed_s - samples[-1].elapsed_s < self.step / 2:
            samples[-1] = sample  # a moment after the previous one: as a point of its own its rate would spike
        else:
            samples.append(sample)
        if len(self.samples) > _MAX_POINTS:
            self.samples = self.samples[::2]
            self.step *= 2


def write_report(path: str | Path, stats: CrawlStats, timeline: Timeline, *, title: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(render_report(stats, timeline, title=title), encoding="utf-8")


def render_report(stats: CrawlStats, timeline: Timeline, *, title: str) -> str:
    samples = timeline.samples
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    failed = sum(stats.failures.values())
    filtered = sum(stats.filtered.values())
    summary = [
        ("finished", stats.close_reason or "running"),
        ("pages", f"{stats.pages:,}"),
        ("items", f"{stats.items:,}"),
        ("requests", f"{stats.requests:,} ({stats.retries:,} retries)"),
        ("failed", f"{failed:,}"),
        ("filtered", f"{filtered:,}"),
        ("elapsed", f"{stats.elapsed_s:,.1f} s"),
        ("pages/s", f"{stats.pages_per_second:,.1f}"),
        ("bytes", f"{stats.bytes / 1e6:,.1f} MB"),
        ("callback errors", f"{stats.callback_errors:,}"),
    ]
    times = [s.elapsed_s for s in samples]
    charts = [
        _chart("Pages per second", times, {"pages/s": _rates(samples, "pages")}),
        _chart("Items per second", times, {"items/s": _rates(samples, "items")}),
        _chart("Failures per second", times, {"failures/s": _rates(samples, "failures")}),
    ]
    domain_series = _domain_rates(samples)
    if domain_series:
        charts.append(_chart("Busiest domains' rate (requests/s allowed)", *domain_series))
    domains = sorted(
        stats.domains.items(), key=lambda kv: (kv[1].throttled, kv[1].queued, kv[1].in_flight), reverse=True
    )
    domain_rows = [
        (
            name,
            _num(d.rate),
            _num(d.configured_rate),
            f"{d.crawl_delay:g}" if d.crawl_delay else "",
            f"{d.paused_for_s:.0f}" if d.paused_for_s else "",
            str(d.throttled or ""),
            str(d.in_flight),
            f"{d.queued:,}",
        )
        for name, d in domains[:50]
    ]
    return _PAGE.format(
        title=html.escape(title),
        when=when,
        summary=_table(("", ""), summary, head=False),
        failures=_table(("reason", "requests"), _counts(stats.failures)) if stats.failures else "<p>None.</p>",
        filtered=_table(("reason", "requests"), _counts(stats.filtered)) if stats.filtered else "<p>None.</p>",
        statuses=_table(("status", "responses"), _counts({str(k): v for k, v in stats.responses.items()})),
        charts="\n".join(charts),
        domains=_table(
            ("domain", "rate now", "rate set", "crawl-delay s", "paused s", "429/503", "in flight", "queued"),
            domain_rows,
        )
        + (f"<p class=note>The first 50 of {len(domains):,} domains.</p>" if len(domains) > 50 else ""),
    )


def _rates(samples: Sequence[_Sample], field: str) -> list[float]:
    """Per-second rate of a counter between successive samples (0 for the first)."""
    out = [0.0]
    for a, b in itertools.pairwise(samples):
        span = b.elapsed_s - a.elapsed_s
        out.append((getattr(b, field) - getattr(a, field)) / span if span > 0 else 0.0)
    return out


def _domain_rates(samples: Sequence[_Sample]) -> tuple[list[float], dict[str, list[float]]] | None:
    sampled = [s for s in samples if s.rates]
    if not sampled:
        return None
    # The busiest: the domains whose rate was highest on average while sampled.
    totals: dict[str, float] = {}
    for s in sampled:
        for name, rate in s.rates.items():
            totals[name] = totals.get(name, 0.0) + rate
    top = sorted(totals, key=totals.__getitem__, reverse=True)[:_DOMAINS]
    times = [s.elapsed_s for s in sampled]
    return times, {name: [s.rates.get(name, 0.0) for s in sampled] for name in top}


def _chart(title: str, times: Sequence[float], series: dict[str, list[float]]) -> str:
    """A line chart as inline SVG: time on x, each series a line, its legend beside it."""
    width, height, left, bottom, top_pad = 720, 220, 56, 28, 12
    plot_w, plot_h = width - left - 12, height - bottom - top_pad
    t_max = max(times[-1] if times else 0.0, 1e-9)
    y_max = max((max(values) for values in series.values() if values), default=0.0) or 1.0
    y_max = _nice(y_max)
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img">']
    for k in range(5):  # horizontal grid and its labels
        y = top_pad + plot_h * k / 4
        value = y_max * (4 - k) / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 12}" y2="{y:.1f}" class=grid />')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(value)}</text>')
    for k in range(5):
        x = left + plot_w * k / 4
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle">{_short(t_max * k / 4)} s</text>')
    for values, color in zip(series.values(), itertools.cycle(_PALETTE), strict=False):
        if len(values) < 2:
            continue
        points = " ".join(
            f"{left + plot_w * t / t_max:.1f},{top_pad + plot_h * (1 - v / y_max):.1f}"
            for t, v in zip(times, values, strict=False)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6" />')
    parts.append("</svg>")
    legend = "".join(
        f'<span class=key><i style="background:{color}"></i>{html.escape(name)}</span>'
        for name, color in zip(series, itertools.cycle(_PALETTE), strict=False)
    )
    return f"<figure><figcaption>{html.escape(title)}</figcaption>{''.join(parts)}<div>{legend}</div></figure>"


def _nice(value: float) -> float:
    """The next round number at or above ``value`` (1, 2, 2.5, 5 times a power of ten)."""
    power = 10.0 ** len(str(int(value))) / 10 if value >= 1 else 1.0
    if value < 1:
        return 1.0
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return value


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def _num(rate: float | None) -> str:
    return "unlimited" if rate is None else f"{rate:g}"


def _counts(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(reason, f"{count:,}") for reason, count in sorted(counts.items(), key=lambda kv: -kv[1])]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, head: bool = True) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Crawl report: {title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #1f2937; }}
h1 {{ font-size: 1.5em; margin-bottom: 0; }} h2 {{ font-size: 1.15em; margin-top: 2em; }}
.when, .note {{ color: #6b7280; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
th, td {{ padding: .2em .8em; border-bottom: 1px solid #e5e7eb; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ color: #6b7280; font-weight: 600; }}
.cols {{ display: flex; gap: 3em; flex-wrap: wrap; }}
figure {{ margin: 1.5em 0; }} figcaption {{ font-weight: 600; margin-bottom: .3em; }}
svg text {{ font-size: 11px; fill: #6b7280; }} svg .grid {{ stroke: #e5e7eb; }}
.key {{ margin-right: 1.2em; font-size: 12px; }}
.key i {{ display: inline-block; width: 12px; height: 3px; margin-right: .4em; vertical-align: middle; }}
</style></head>
<body>
<h1>Crawl report: {title}</h1>
<p class=when>Written {when}.</p>
<h2>Summary</h2>
{summary}
<div class=cols>
<div><h2>Failed, by reason</h2>{failures}</div>
<div><h2>Filtered, by reason</h2>{filtered}</div>
<div><h2>Responses, by status</h2>{statuses}</div>
</div>
<h2>Over time</h2>
{charts}
<h2>Domains</h2>
{domains}
</body></html>
"""
