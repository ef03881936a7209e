"""The development commands ``python -m crawler fetch`` and ``parse``: one page, fetched as a
crawl would fetch it (robots.txt, User-Agent, the settings' layers), shown as it is or as a
spider's callback sees it."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any

from ._cli import EXIT_FAILED, EXIT_USAGE, _project_and_environment, _spider_argument, load_spider_class, reader_gone
from ._exceptions import RequestFailed, SettingsError, SpiderLoadError
from ._pipeline import item_to_dict
from ._request import Request
from ._settings import Settings

__all__ = ["fetch_command", "parse_command", "shell_command"]


def _one_page_settings(args: argparse.Namespace, spider_settings: Any = None) -> Settings:
    """The layers for a one-page tool: the project file and CRAWLER_* (no crawl-wide setting),
    the spider's settings, then ``-s``."""
    settings = Settings().merge(_project_and_environment(one_page=True)).merge(spider_settings)
    return settings.merge(dict(Settings.parse_assignment(s) for s in args.settings))


def _fetched(url: str, settings: Settings) -> Any:
    """The page, or None with the reason said on stderr."""
    from ._oneliner import fetch

    try:
        return fetch(url, settings)
    except RequestFailed as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return None


def shell_command(args: argparse.Namespace) -> int:
    """``python -m crawler shell [URL] [--spider FILE]``."""
    from ._shell import shell

    try:
        spider = load_spider_class(args.spider_file)() if args.spider_file else None
        settings = _one_page_settings(args, spider.settings if spider is not None else None)
    except (SpiderLoadError, SettingsError, ValueError, TypeError) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    shell(args.url, settings, spider)
    return 0


def fetch_command(args: argparse.Namespace) -> int:
    """``python -m crawler fetch URL``: the body on stdout (or the headers), errors on stderr;
    exit 0 with a response of any status, 1 without one, 2 for a usage error."""
    try:
        settings = _one_page_settings(args, load_spider_class(args.spider_file).settings if args.spider_file else None)
    except (SpiderLoadError, SettingsError, ValueError) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    response = _fetched(args.url, settings)
    if response is None:
        return EXIT_FAILED
    try:
        if args.headers:
            lines = [f"HTTP {response.status} {response.url}", *(f"{k}: {v}" for k, v in response.headers.items())]
            sys.stdout.write("\n".join(lines) + "\n")
        else:
            sys.stdout.buffer.write(response.body)
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
    return 0


def parse_command(args: argparse.Namespace) -> int:
    """``python -m crawler parse URL --spider FILE [-c CALLBACK]``: like ``scrapy parse``, the
    items (JSON, a line each) and the requests (method, URL, callback) the callback yields."""
    from ._oneliner import _blocking

    try:
        spider_cls = load_spider_class(args.spider_file, args.spider)
        spider = spider_cls(**dict(_spider_argument(a) for a in args.spider_args))
        callback = getattr(spider, args.callback, None)
        if not callable(callback):
            raise ValueError(f"{spider_cls.__name__} has no callback {args.callback!r}")
        settings = _one_page_settings(args, spider.settings)
    except (SpiderLoadError, SettingsError, ValueError, TypeError) as exc:
        print(f"crawler: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    response = _fetched(args.url, settings)
    if response is None:
        return EXIT_FAILED
    try:
        outputs = _blocking(_collect(callback(response)))
    except Exception as exc:
        print(f"crawler: error: {args.callback} raised {exc!r}", file=sys.stderr)
        return EXIT_FAILED
    requests = [output for output in outputs if isinstance(output, Request)]
    items = [output for output in outputs if not isinstance(output, Request)]
    print(f"# {len(items)} item(s) from {args.callback}({response.status} {response.url})")
    for item in items:
        print(json.dumps(item_to_dict(item), ensure_ascii=False, default=str))
    print(f"# {len(requests)} request(s)")
    for request in requests:
        name = getattr(request.callback, "__name__", None) or "parse"
        print(f"{request.method} {request.url}  (callback={name})")
    return 0


async def _collect(result: Any) -> list[Any]:
    """What a callback gives: an async generator, a coroutine (of an iterable or None), an iterable."""
    if inspect.isawaitable(result):
        result = await result
    if result is None:
        return []
    if hasattr(result, "__aiter__"):
        return [output async for output in result]
    return list(result)
