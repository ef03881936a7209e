"""``python -m crawler``: a thin shell around :class:`Crawler` for a terminal user.

Only here do we touch process-wide things: logging output, the SIGINT handler, exit codes.
Ctrl-C once stops scheduling and lets requests in flight finish (every item is flushed, the
summary printed, exit 130); twice cancels at once, still with every written item whole.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import inspect
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._crawler import Crawler
from ._exceptions import CrawlerError, SettingsError, SpiderLoadError
from ._log import STDLIB_LOGGER, log_formatter
from ._settings import Settings
from ._spider import Spider
from ._stats import CrawlStats
from ._version import __version__

if TYPE_CHECKING:
    from ._report import Timeline

__all__ = ["load_spider_class", "main"]

EXIT_FAILED = 1  # the crawl raised, or ended without a single page handed to a callback
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crawler", description="Run crawler spiders.")
    parser.add_argument("--version", action="version", version=f"crawler {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the spider in a Python file")
    run.add_argument("spider_file", help="a .py file defining a Spider subclass")
    out = run.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE", action="append",
                     help="append items to FILE (.jsonl, .json or .csv); - for JSON Lines on standard output; "
                          "repeat it for several outputs")
    out.add_argument("-O", "--overwrite-output", metavar="FILE", action="append",
                     help="write items to FILE, replacing it (repeatable)")
    run.add_argument("-a", dest="spider_args", action="append", default=[], metavar="NAME=VALUE",
                     help="spider argument, set as an attribute of the spider")
    run.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                     help="setting override; the value is JSON if it parses, else a string")
    run.add_argument("--spider", metavar="NAME", help="which spider, when the file defines several")
    run.add_argument("--log-level", default="INFO", type=str.upper,
                     choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    run.add_argument("--log-format", choices=["console", "json"], default=None,
                     help="default: console on a terminal, json otherwise")
    run.add_argument("--stats", metavar="FILE", help="write the final stats as JSON to FILE")
    run.add_argument("--state", metavar="FILE",
                     help="keep the crawl's state in FILE (SQLite): run the same command again to resume it")
    run.add_argument("--frontier", metavar="URL",
                     help="a shared frontier (redis://host:6379/0): every worker started with it is one crawl")
    run.add_argument("--crawl-id", metavar="NAME",
                     help="the shared crawl's name in the frontier (default: the spider's)")
    run.add_argument("--cache", nargs="?", const=".crawler-cache", metavar="DIR",
                     help="a development HTTP cache in DIR (.crawler-cache): a re-run asks the site nothing")
    run.add_argument("--report", metavar="FILE",
                     help="write a report (one self-contained HTML file, with charts) when the crawl ends")
    run.add_argument("--metrics-port", metavar="PORT", type=int,
                     help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (pip install 'crawler[metrics]')")
    run.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no live progress view (on by default when stderr is a terminal)")
    run.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                     help="the event loop: uvloop (pip install 'crawler[uvloop]') costs less CPU per request")
    fetch = commands.add_parser(
        "fetch", help="fetch one URL politely and print its body", description="fetch one URL and print its body"
    )
    fetch.add_argument("url")
    fetch.add_argument("--headers", action="store_true", help="print the status line and headers instead of the body")
    fetch.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                       help="override a setting (user_agent, obey_robots, timeout ...)")
    fetch.add_argument("--spider", dest="spider_file", metavar="FILE",
                       help="use the settings of the spider in FILE (its user_agent, limits ...)")
    parse = commands.add_parser(
        "parse", help="run one callback of a spider on one page and print what it yields",
        description="fetch URL with the spider's settings, run its callback, print the items and requests",
    )
    parse.add_argument("url")
    parse.add_argument("--spider", dest="spider_file", metavar="FILE", required=True, help="the spider's file")
    parse.add_argument("--spider-name", dest="spider", metavar="NAME", help="which spider, when the file has several")
    parse.add_argument("--callback", "-c", default="parse", help="the callback's name (parse)")
    parse.add_argument("-a", dest="spider_args", action="append", default=[], metavar="NAME=VALUE",
                       help="set a spider attribute")
    parse.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                       help="override a setting")
    shell = commands.add_parser(
        "shell", help="a prompt with a fetched page, to try selectors on", description="fetch URL and open a prompt"
    )
    shell.add_argument("url", nargs="?")
    shell.add_argument("--spider", dest="spider_file", metavar="FILE", help="use that spider's settings")
    shell.add_argument("-s", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                       help="override a setting")
    new = commands.add_parser(
        "new", help="write a spider skeleton and a unit test of it", description="write NAME.py and test_NAME.py"
    )
    new.add_argument("name", help="the spider's name (and its module's)")
    new.add_argument("url", help="where it starts")
    new.add_argument("--dir", default=".", help="where to write the files (.)")
    for name, text in (("status", "print a shared crawl's state"), ("clear", "delete a shared crawl")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--frontier", metavar="URL", required=True, help="the frontier (redis://host:6379/0)")
        command.add_argument("--crawl-id", metavar="NAME", required=name == "clear",
                             help="the crawl (status without it lists the crawls in the frontier)")
        if name == "clear":
            command.add_argument("--force", action="store_true", help="clear it even while workers are running")
        else:
            command.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--loop`` names (None: asyncio's own)."""
    if name != "uvloop":
        return None
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ValueError("--loop uvloop needs uvloop: pip install 'crawler[uvloop]'") from None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


#: The cyclic collector's first threshold for a crawl run from the command line (Python's is 700).
GC_YOUNG_THRESHOLD = 5000


def tune_garbage_collector() -> None:
    """Tune Python's cyclic garbage collector for a crawl; only the command line does this,
    as it owns its process (an embedded Crawler leaves the host program's collector alone).

    A crawl allocates container objects by the million (requests, selectors, headers,
    items) and keeps few of them: with the default thresholds the young generation is
    collected every 700 net allocations and the oldest every few seconds, rescanning every
    object the imports made. Measured on the 20,000-page bench crawl: about 1,800
    collections costing 0.5 s, 4-5% of the crawl's CPU. Frozen start-up objects (never
    scanned again) and a young threshold of 5,000 bring that to about 100 collections and
    0.03 s, with the same peak RSS: short-lived objects are freed by reference counting
    long before a collection, which only cycles need.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 a crawl that handed at least one page to a callback; 1 the crawl failed
    or crawled no page (one line says why); 2 a usage error, found before the crawl starts;
    130 interrupted (Ctrl-C)."""
    args = _parser().parse_args(argv)
    if args.command in ("status", "clear"):
        from ._frontier_cli import frontier_command

        return frontier_command(args)
    if args.command in ("fetch", "parse", "shell"):
        from ._dev_commands import fetch_command, parse_command, shell_command

        commands = {"fetch": fetch_command, "parse": parse_command, "shell": shell_command}
        return commands[args.command](args)
    if args.command == "new":
        from ._new import new_spider

        try:
            spider_file, test_file = new_spider(args.name, args.url, Path(args.dir))
        except (ValueError, OSError) as exc:
            print(f"crawler: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"wrote {spider_file} and {test_file}\n"
              f"  run it:  python -m crawler run {spider_file} -o items.jsonl\n"
              f"  test it: python -m pytest {test_file}")
        return 0
    try:
        outputs = args.output or args.overwrite_output or []
        if len({str(Path(path).resolve()) if path != "-" else path for path in outputs}) < len(outputs):
            raise ValueError(f"the same output is named twice: {' '.join(outputs)}")
        for output in outputs:
            if output != "-":
                check_writable(output, "output file")
        if args.stats:
            check_writable(args.stats, "--stats file")
        if args.report:
            check_writable(args.report, "--report file")
        if args.state:
            check_writable(args.state, "--state file")
        spider_cls = load_spider_class(args.spider_file, args.spider)
        spider = spider_cls(**dict(_spider_argument(a) for a in args.spider_args))
        overrides = dict(Settings.parse_assignment(s) for s in args.settings)
        layered = _project_and_environment()
        for name in ("state", "frontier", "crawl_id"):  # the flags that are settings
            if getattr(args, name):
                overrides[name] = getattr(args, name)
        if args.cache:
            overrides.setdefault("http_cache", args.cache)
        effective = {**layered, **dict(spider.settings), **overrides}
        if effective.get("state") and effective.get("frontier"):
            raise ValueError("--state and --frontier cannot be combined: a shared frontier keeps the crawl's state")
        exporters = _exporters(args)
        live = args.progress and sys.stderr.isatty()
        if live and "progress_interval" not in overrides:
            effective["progress_interval"] = 0  # the live view shows it; no progress events between log lines
        if "-" in outputs and (effective.get("state") or effective.get("frontier")):
            raise ValueError("-o - (standard output) cannot be resumed: use a file with --state or --frontier")
        # defaults < crawler.toml < CRAWLER_* < the spider's settings < -s (see _settings_sources)
        crawler = Crawler(spider, effective, exporters=exporters)
        if "-" in outputs:
            from crawler_plugins.exporters import StdoutExporter

            for exporter in exporters:
                if isinstance(exporter, StdoutExporter):  # the reader went away (| head): stop the crawl
                    exporter.on_closed = crawler.stop
        loop_factory = _loop_factory(args.loop)
    except (SpiderLoadError, SettingsError, ValueError, TypeError) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _configure_logging(args.log_level, args.log_format)
    timeline = _timeline(crawler) if args.report else None
    tune_garbage_collector()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            interrupted = runner.run(_run(crawler, live=live, timeline=timeline, metrics_port=args.metrics_port))
    except Exception as exc:  # e.g. the spider's opened() raised: say so in one line, keep the stats
        error = _first_leaf(exc)
        if isinstance(error, SpiderLoadError | _UsageError):  # e.g. a state file of another spider
            print(f"crawler: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        # Our own errors say what happened in words; anything else by its type too.
        print(f"crawler: error: crawl failed: {error if isinstance(error, CrawlerError) else repr(error)}",
              file=sys.stderr)
        print(summary(crawler.statistics()), file=sys.stderr)
        _write_report(args.report, crawler, timeline)
        return EXIT_FAILED
    stats = crawler.statistics()
    _write_report(args.report, crawler, timeline)
    # A worker of a shared crawl that finished is a success even if others fetched every page.
    shared_done = crawler.settings.frontier is not None and stats.close_reason in ("finished", "max_pages", "max_items")
    no_pages = stats.pages == 0 and not crawler.already_finished and not shared_done
    code = EXIT_INTERRUPTED if interrupted else EXIT_FAILED if no_pages else 0
    if args.stats:
        try:
            path = Path(args.stats)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(stats.as_dict(), indent=2) + "\n")
        except OSError as exc:
            print(f"crawler: error: cannot write --stats file {args.stats}: {exc.strerror or exc}", file=sys.stderr)
            code = code or EXIT_FAILED
    if crawler.already_finished:
        print(f"crawl already finished ({args.state}): nothing to fetch; delete it to start over", file=sys.stderr)
    print(summary(stats), file=sys.stderr)
    if crawler.crawl_totals is not None:
        totals = crawler.crawl_totals
        print(
            f"whole crawl (all workers): {totals.get('pages', 0)} pages, {totals.get('items', 0)} items, "
            f"{totals.get('queued', 0)} queued, {totals.get('leased', 0)} leased",
            file=sys.stderr,
        )
    if code == EXIT_FAILED and no_pages:
        print(f"crawler: error: no pages crawled: {stats.no_pages_reason()}", file=sys.stderr)
    return code


def reader_gone() -> None:
    """stdout's reader closed it (``| head``): it has what it wanted. stdout goes to
    /dev/null, so that the interpreter's last flush reports no broken pipe either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def check_writable(path: str, what: str) -> None:
    """Raise ValueError, naming ``path`` and the reason, if a file cannot be written there.

    Checked before the crawl starts, so a typo costs a usage error, not a crawl: the file
    must not be a directory, and its nearest existing parent must be a writable directory
    (missing directories are created, as for ``-o``).
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot write {what} {path}: it is a directory")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise ValueError(f"cannot write {what} {path}: permission denied")
        return
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {what} {path}: {parent} is not writable")


def _spider_argument(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"-a expects NAME=VALUE, got {text!r}")
    return name.strip(), value


def _exporters(args: argparse.Namespace) -> list[Any]:
    paths = args.output or args.overwrite_output
    if not paths:
        return []
    from crawler_plugins.exporters import exporter_for

    return [exporter_for(path, overwrite=bool(args.overwrite_output)) for path in paths]


def load_spider_class(path: str, name: str | None = None) -> type[Spider]:
    """The Spider subclass defined in the file at ``path`` (chosen by ``name`` if several)."""
    file = Path(path)
    if not file.is_file():
        raise SpiderLoadError(f"spider file not found: {path}")
    module_name = f"_crawler_spider_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise SpiderLoadError(f"cannot load {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(file.resolve().parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SpiderLoadError(f"cannot load {path}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    spiders = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Spider) and obj is not Spider and obj.__module__ == module_name
    ]
    if not spiders:
        raise SpiderLoadError(f"no Spider subclass in {path}")
    if name is not None:
        chosen = [s for s in spiders if name in (s.name, s.__name__)]
        if not chosen:
            names = ", ".join(s.name or s.__name__ for s in spiders)
            raise SpiderLoadError(f"no spider named {name!r} in {path} (found: {names})")
        return chosen[0]
    if len(spiders) > 1:
        names = ", ".join(s.name or s.__name__ for s in spiders)
        raise SpiderLoadError(f"{path} defines several spiders ({names}): choose one with --spider NAME")
    return spiders[0]


#: Settings of a whole crawl, which the one-page tools (fetch, parse, shell) take from no file
#: or variable: a CRAWLER_STATE meant for `run` must not be marked finished by a `fetch`.
_CRAWL_ONLY = frozenset({"state", "frontier", "crawl_id", "max_pages", "max_items", "max_depth", "http_cache"})


def _project_and_environment(*, one_page: bool = False) -> dict[str, Any]:
    """The settings of the project file and of CRAWLER_* variables, the environment's on top
    (``one_page``: without the settings of a whole crawl)."""
    from ._settings_sources import environment_settings, project_settings

    project, _ = project_settings()
    layered = {**project, **environment_settings()}
    return {k: v for k, v in layered.items() if k not in _CRAWL_ONLY} if one_page else layered


def _write_report(path: str | None, crawler: Crawler, timeline: Timeline | None) -> None:
    """Write the ``--report`` file, however the crawl ended; a failure to write is said."""
    if path is None or timeline is None:
        return
    from ._report import write_report

    try:
        write_report(path, crawler.statistics(), timeline, title=crawler.spider.name)
    except OSError as exc:
        print(f"crawler: error: cannot write --report file {path}: {exc.strerror or exc}", file=sys.stderr)


def _timeline(crawler: Crawler) -> Timeline:
    from ._report import Timeline

    return Timeline(crawler.progress, crawler.busiest_domains)


async def _run(
    crawler: Crawler, *, live: bool = False, timeline: Timeline | None = None, metrics_port: int | None = None
) -> bool:
    """Run the crawl with Ctrl-C handling (the live view, the report's samples, the metrics
    endpoint); True if it was interrupted."""
    metrics = None
    if metrics_port is not None:
        from ._metrics import MetricsServer

        try:
            metrics = MetricsServer(crawler.progress, crawler.statistics, crawler.busiest_domains, port=metrics_port)
        except (OSError, RuntimeError) as exc:  # the port is taken, or prometheus-client missing
            raise _UsageError(f"--metrics-port {metrics_port}: {exc}") from None
        print(f"metrics: http://127.0.0.1:{metrics.port}/metrics", file=sys.stderr)
    try:
        return await _crawl(crawler, live=live, timeline=timeline)
    finally:
        if metrics is not None:
            await metrics.aclose()


async def _crawl(crawler: Crawler, *, live: bool, timeline: Timeline | None) -> bool:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    interrupts = 0
    async with asyncio.TaskGroup() as tasks:
        crawl = tasks.create_task(crawler.run())
        handler = next((h for h in STDLIB_LOGGER.handlers if isinstance(h, _StderrHandler)), None)
        if live:
            from ._progress import LiveProgress

            live_view = LiveProgress(crawler.progress, crawler.busiest_domains)
            if handler is not None:
                handler.sink = live_view.write  # log lines go above the view, a frame's worth at once
            view = tasks.create_task(live_view.run())

            def view_done(_: object) -> None:
                if handler is not None:
                    handler.sink = None

            view.add_done_callback(view_done)
            crawl.add_done_callback(lambda _: view.cancel())
        if timeline is not None:
            sampler = tasks.create_task(timeline.run())
            crawl.add_done_callback(lambda _: sampler.cancel())

        async def stop_when_asked() -> None:
            await stop_requested.wait()
            await crawler.stop()

        watcher = tasks.create_task(stop_when_asked())
        crawl.add_done_callback(lambda _: watcher.cancel())

        def on_sigint() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                print("\nstopping: finishing requests in flight (Ctrl-C again to stop now)", file=sys.stderr)
                stop_requested.set()
            else:
                crawl.cancel()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            await asyncio.wait([crawl])
        finally:
            loop.remove_signal_handler(signal.SIGINT)
    return interrupts > 0


def _configure_logging(level: str, fmt: str | None) -> None:
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    handler = _StderrHandler()
    handler.setFormatter(log_formatter("json" if fmt == "json" else "console", colors=sys.stderr.isatty()))
    STDLIB_LOGGER.handlers[:] = [handler]
    STDLIB_LOGGER.setLevel(level)
    STDLIB_LOGGER.propagate = False


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged, or, while the live view
    is up, hands the line to it (``sink``) to be printed above it with the next frame."""

    sink: Callable[[str], None] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        sink = self.sink
        if sink is None:
            self.stream = sys.stderr
            super().emit(record)
            return
        try:
            sink(self.format(record) + self.terminator)
        except Exception:
            self.handleError(record)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first error inside (nested) exception groups: task groups wrap what failed."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _UsageError(Exception):
    """A command-line choice found unusable once the loop runs (exit code 2)."""


def summary(stats: CrawlStats) -> str:
    """A short human summary of a finished crawl."""
    lines = [
        f"crawl {stats.close_reason or 'failed'}: {stats.pages} pages, {stats.items} items in {stats.elapsed_s:.1f}s "
        f"({stats.pages_per_second:.1f} pages/s), {stats.requests} requests, {stats.retries} retries"
    ]
    if stats.failures:
        lines.append("failures: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.failures.items())))
    if stats.filtered:
        lines.append("filtered: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.filtered.items())))
    if stats.items_dropped:
        lines.append("items dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.items_dropped.items())))
    if stats.callback_errors:
        lines.append(f"callback errors: {stats.callback_errors}")
    return "\n".join(lines)
