"""What a Scrapy user writes, and what it is called here.

Someone coming from Scrapy types ``CONCURRENT_REQUESTS`` or fills ``custom_settings`` out of
habit. Neither would do anything here, and a setting that silently does nothing is the worst
kind of error, so both are refused with a message that names our equivalent. This table is
the one place that knows the correspondence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["scrapy_hint", "translate_scrapy_settings"]


def _same(value: Any) -> Any:
    return value


def _delay_to_rate(delay: Any) -> Any:
    """``DOWNLOAD_DELAY`` is seconds between requests; ``rate_limit`` is requests per second."""
    if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0:
        return round(1 / delay, 6)
    return 0  # no delay: no limit


def _zero_is_off(value: Any) -> Any:
    """Scrapy's 0 for "no limit / not used", which here is simply leaving the setting out."""
    return None if value == 0 else value


def _enabled_to_retries(enabled: Any) -> Any:
    return 0 if enabled is False else None  # RETRY_ENABLED=True is the default: nothing to say


#: Scrapy setting -> (our setting, how the value converts, a note for the message).
_SETTINGS: dict[str, tuple[str, Callable[[Any], Any], str]] = {
    "CONCURRENT_REQUESTS": ("concurrency", _same, ""),
    "CONCURRENT_REQUESTS_PER_DOMAIN": ("domain_concurrency", _same, ""),
    "CONCURRENT_REQUESTS_PER_IP": ("domain_concurrency", _zero_is_off, ""),
    "DOWNLOAD_DELAY": ("rate_limit", _delay_to_rate, "requests per second: 1 / DOWNLOAD_DELAY"),
    "ROBOTSTXT_OBEY": ("obey_robots", _same, ""),
    "DEPTH_LIMIT": ("max_depth", _same, ""),
    "CLOSESPIDER_PAGECOUNT": ("max_pages", _same, ""),
    "CLOSESPIDER_ITEMCOUNT": ("max_items", _same, ""),
    "USER_AGENT": ("user_agent", _same, ""),
    "RETRY_TIMES": ("retries", _same, ""),
    "RETRY_ENABLED": ("retries", _enabled_to_retries, "retries=0 turns retries off"),
    "DOWNLOAD_TIMEOUT": ("timeout", _same, ""),
    "DOWNLOAD_MAXSIZE": ("max_response_bytes", _zero_is_off, "bytes; Scrapy's 0, no cap, has no equivalent"),
    "REDIRECT_MAX_TIMES": ("max_redirects", _same, ""),
    "HTTPERROR_ALLOWED_CODES": ("handle_statuses", _same, ""),
    "AUTOTHROTTLE_ENABLED": ("autothrottle", _same, ""),
    "COOKIES_ENABLED": ("cookies", _same, ""),
}

#: Scrapy settings whose job is done by something other than a setting here.
_ELSEWHERE = {
    "ITEM_PIPELINES": "the spider's `pipelines` list (classes or objects, run in list order)",
    "DOWNLOADER_MIDDLEWARES": "the spider's `middlewares` list (classes or objects, run in list order)",
    "SPIDER_MIDDLEWARES": "the spider's `middlewares` list (classes or objects, run in list order)",
    "FEEDS": "the command line's -o FILE / -O FILE",
    "FEED_URI": "the command line's -o FILE / -O FILE",
    "FEED_FORMAT": "the file extension given to -o/-O (.jsonl or .csv)",
    "LOG_LEVEL": "the command line's --log-level",
}


def scrapy_hint(name: str) -> str | None:
    """What to use instead of the Scrapy setting ``name``, or None if it is not one we know."""
    known = _SETTINGS.get(name)
    if known is not None:
        ours, _, note = known
        return f"that is Scrapy's name, use {ours!r} here" + (f" ({note})" if note else "")
    elsewhere = _ELSEWHERE.get(name)
    if elsewhere is not None:
        return f"that is Scrapy's name, use {elsewhere} here"
    return None


def translate_scrapy_settings(scrapy: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Our settings for a Scrapy ``custom_settings`` dict, and the lines explaining the rest.

    Returns ``(settings, notes)``: ``settings`` holds what converts directly; ``notes`` says,
    one line per name, how each converted or where it went.
    """
    ours: dict[str, Any] = {}
    notes: list[str] = []
    for name, value in scrapy.items():
        known = _SETTINGS.get(name) if isinstance(name, str) else None
        if known is not None:
            target, convert, note = known
            converted = convert(value)
            if converted is not None:
                ours[target] = converted
            notes.append(f"{name} -> {target}" + (f" ({note})" if note else ""))
        elif isinstance(name, str) and name in _ELSEWHERE:
            notes.append(f"{name} -> {_ELSEWHERE[name]}")
        else:
            notes.append(f"{name}: no equivalent here")
    return ours, notes
