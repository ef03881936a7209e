"""Crawl settings: one typed, frozen value object with documented, polite defaults.

Layers, lowest first: the defaults below < a spider's ``settings`` dict < what the caller
passes (the CLI's ``-s name=value``, or ``Crawler(spider, settings=...)``). Unknown names
and bad values raise :class:`SettingsError` naming the setting, so a typo never silently
does nothing.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import json
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ._exceptions import SettingsError
from ._scrapy import scrapy_hint
from ._version import __version__

__all__ = ["DEFAULT_USER_AGENT", "Settings"]

DEFAULT_USER_AGENT = f"crawler/{__version__} (+https://pypi.org/project/crawler/; polite bot)"


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """How a crawl behaves. Defaults are polite to a real site; turn them up for your own.

    ``None`` or ``0`` for a limit (``rate_limit``, ``max_depth``, ``max_pages``, ``max_items``)
    means "no limit".
    """

    #: Requests in flight across all domains.
    concurrency: int = 16
    #: Requests in flight to one domain (host).
    domain_concurrency: int = 2
    #: Requests per second to one domain, evenly spaced (no burst at start). 0/None: unlimited.
    rate_limit: float | None = 2.0
    #: Retries after the first attempt for connection errors, timeouts, 5xx, 408 and 429.
    retries: int = 3
    #: First backoff delay in seconds; doubles each attempt, with jitter.
    backoff_base: float = 0.5
    #: Upper bound of one backoff delay, seconds.
    backoff_max: float = 30.0
    #: Longest Retry-After honoured, seconds; a longer one fails the request (the domain rests this long).
    retry_after_max: float = 120.0
    #: Whole-request timeout, seconds.
    timeout: float = 30.0
    #: Cap on a body after decompression, bytes; checked while streaming.
    max_response_bytes: int = 10 * 1024 * 1024
    #: Redirect hops followed for one request.
    max_redirects: int = 10
    #: Deepest link depth followed (start requests are depth 0). 0/None: unlimited.
    max_depth: int | None = None
    #: Stop after this many responses handed to callbacks. 0/None: unlimited.
    max_pages: int | None = None
    #: Stop after this many items. 0/None: unlimited.
    max_items: int | None = None
    #: User-Agent header sent with every request unless the request sets its own.
    user_agent: str = DEFAULT_USER_AGENT
    #: Non-2xx statuses that are handed to the callback instead of the errback.
    handle_statuses: tuple[int, ...] = ()
    #: Longest wait for the next byte of a response, seconds (a server trickling bytes); the
    #: first byte's wait counts from the start of the request, connecting included.
    read_timeout: float = 15.0
    #: Fetch each origin's robots.txt first and skip what it disallows (reason ``robots``).
    obey_robots: bool = True
    #: Adapt each domain's rate to the server: 429/503 halve it, successes raise it back (AIMD).
    autothrottle: bool = True
    #: The lowest rate autothrottle may cut a domain to, requests per second.
    min_rate: float = 0.05
    #: What shares one rate limit: ``host`` (www.example.com) or ``registrable_domain`` (example.com).
    rate_scope: str = "host"
    #: Per-domain overrides of ``rate_limit``/``domain_concurrency``; keys are host globs,
    #: e.g. ``{"*.api.example.com": {"rate_limit": 10}}``. The first matching glob wins.
    domain_settings: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    #: Keep the cookies servers set (one jar per crawl, scoped by domain and path as a
    #: browser does, IP-address hosts included) and send them back. False: no jar at all.
    cookies: bool = True
    #: A state file (SQLite) that makes the crawl resumable: the same command run again goes
    #: on where it stopped, even after kill -9. None: the crawl lives in memory only.
    state: str | None = None
    #: A shared frontier (``redis://host:6379/0``, ``rediss://`` for TLS, user and password in
    #: the URL): every worker started with it is one crawl. None: this process's own frontier.
    frontier: str | None = None
    #: The shared crawl's name in the frontier (several crawls can share one Redis); default:
    #: the spider's name.
    crawl_id: str | None = None
    #: Seconds a worker holds a claimed request without renewing it (it renews every third of
    #: this while alive): a killed worker's requests go back to the queue after this long.
    lease_timeout: float = 60.0
    #: The HTTP client: a downloader's name among the ``crawler.plugins`` entry points,
    #: ``aiohttp`` (HTTP/1.1, the default) or ``httpx`` (HTTP/2; ``pip install "crawler[http2]"``).
    downloader: str = "aiohttp"
    #: Verify servers' TLS certificates (against the system's trust store, or ``tls_ca_file``).
    tls_verify: bool = True
    #: A PEM bundle of certificate authorities to trust instead of the system's.
    tls_ca_file: str | None = None
    #: A proxy for every request (``http://user:pass@host:port``; ``https://`` and
    #: ``socks5://`` too where the downloader speaks them), or a list of proxies, one per
    #: domain in turn. A request's ``meta["proxy"]`` wins. The password is never logged.
    proxy: tuple[str, ...] = ()
    #: Honour ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (and ``.netrc``) from the environment.
    trust_env: bool = False
    #: Refuse to connect to private, loopback and link-local addresses, checked on the
    #: resolved address (reason ``blocked_address``): ``auto`` (on unless a start URL's host
    #: is itself such an address or ``localhost``), true, or false.
    block_private_addresses: str | bool = "auto"
    #: Seconds between ``progress`` INFO events (pages, items, failures, rates, queued ...);
    #: 0: none. The command line shows a live view instead when stderr is a terminal.
    progress_interval: float = 30.0
    #: A development HTTP cache in this directory: a later run gets every answer kept there
    #: without a request to the site (see ``_cache``). None: no cache.
    http_cache: str | None = None
    #: Seconds an answer stays in the cache; 0: for ever.
    http_cache_expiry: float = 0.0
    #: Keep 4xx/5xx answers in the cache too.
    http_cache_errors: bool = False

    def __repr__(self) -> str:
        """Only the settings that differ from the defaults, with passwords redacted (a
        Settings may end up in a traceback or a log line)."""
        shown = self.loggable()
        return "Settings(" + ", ".join(f"{name}={value!r}" for name, value in shown.items()) + ")"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            checked = _VALIDATORS[field.name](field.name, value)
            if checked is not value:
                object.__setattr__(self, field.name, checked)

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of every setting."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def merge(self, overrides: Mapping[str, Any] | Settings | None) -> Settings:
        """A copy with ``overrides`` applied; a ``Settings`` contributes its non-default values."""
        if overrides is None:
            return self
        if isinstance(overrides, Settings):
            overrides = overrides.explicit()
        for name in overrides:
            _check_known(name)
        return dataclasses.replace(self, **overrides)

    def explicit(self) -> dict[str, Any]:
        """The settings whose values differ from the defaults."""
        defaults = _defaults()
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }

    def loggable(self) -> dict[str, Any]:
        """:meth:`explicit`, as logged: a password in a frontier or proxy URL is never shown."""
        settings = self.explicit()
        if settings.get("frontier"):
            settings["frontier"] = _redact(settings["frontier"])
        if settings.get("proxy"):
            settings["proxy"] = tuple(_redact(url) for url in settings["proxy"])
        return settings

    def for_domain(self, domain: str) -> tuple[float | None, int]:
        """``(rate_limit, domain_concurrency)`` for a domain, after ``domain_settings``."""
        for pattern, overrides in self.domain_settings.items():
            if fnmatch.fnmatchcase(domain, pattern):
                return (
                    overrides.get("rate_limit", self.rate_limit),
                    overrides.get("domain_concurrency", self.domain_concurrency),
                )
        return self.rate_limit, self.domain_concurrency

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @staticmethod
    def parse_assignment(text: str) -> tuple[str, Any]:
        """Parse ``name=value`` from the command line; the value is JSON if it parses, else a string."""
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SettingsError(text, "expected name=value")
        _check_known(name)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        return name, value


def _check_known(name: str) -> None:
    if name in _VALIDATORS:
        return
    known = f"known: {', '.join(Settings.names())}"
    hint = scrapy_hint(name) if isinstance(name, str) else None
    if hint is None and isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), Settings.names(), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else None
    raise SettingsError(name, f"unknown setting: {hint} ({known})" if hint else f"unknown setting ({known})")


# -- validators: each returns the (possibly normalised) value or raises SettingsError ------


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(name, f"must be a whole number >= 1, got {value!r}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(name, f"must be a whole number >= 0, got {value!r}")
    return value


def _optional_limit(name: str, value: Any) -> int | None:
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(name, f"must be a whole number >= 0 (0 means no limit), got {value!r}")
    return value


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise SettingsError(name, f"must be a finite number > 0, got {value!r}")
    return value


def _non_negative_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise SettingsError(name, f"must be a finite number >= 0, got {value!r}")
    return value


def _rate(name: str, value: Any) -> float | None:
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise SettingsError(name, f"must be a finite number >= 0 (0 means no limit), got {value!r}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(name, f"must be a non-empty string, got {value!r}")
    return value


def _statuses(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, list | tuple | set | frozenset):
        raise SettingsError(name, f"must be a list of HTTP status codes, got {value!r}")
    for status in value:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise SettingsError(name, f"{status!r} is not an HTTP status code")
    return tuple(sorted(set(value)))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(name, f"must be true or false, got {value!r}")
    return value


def _optional_path(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(name, f"must be a file path, got {value!r}")
    return value


def _downloader_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(name, f"must be a downloader's name (aiohttp, httpx), got {value!r}")
    return value.strip().lower()


def _proxies(name: str, value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    urls = (value,) if isinstance(value, str) else value
    if not isinstance(urls, list | tuple) or not all(isinstance(url, str) for url in urls):
        raise SettingsError(name, f"must be a proxy URL or a list of them, got {_redact(value)!r}")
    for url in urls:
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises for a malformed authority
        except ValueError:
            raise SettingsError(name, f"{_redact(url)!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https", "socks5", "socks5h", "socks4") or not parts.hostname:
            raise SettingsError(name, f"{_redact(url)!r} must be an http://, https:// or socks5:// URL with a host")
    return tuple(urls)


def _guard_mode(name: str, value: Any) -> str | bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value is True or value is False or value == "auto":
        return value  # type: ignore[no-any-return]
    raise SettingsError(name, f"must be 'auto', true or false, got {value!r}")


def _rate_scope(name: str, value: Any) -> str:
    if value not in ("host", "registrable_domain"):
        raise SettingsError(name, f"must be 'host' or 'registrable_domain', got {value!r}")
    return str(value)


_DOMAIN_OVERRIDES = {"rate_limit": _rate, "domain_concurrency": _positive_int}


def _domain_settings(name: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise SettingsError(name, f"must map host globs to overrides, got {value!r}")
    checked: dict[str, dict[str, Any]] = {}
    for pattern, overrides in value.items():
        where = f"{name}[{pattern!r}]"
        if not isinstance(pattern, str) or not pattern:
            raise SettingsError(where, "a host glob must be a non-empty string")
        if not isinstance(overrides, Mapping):
            raise SettingsError(where, f"must be a mapping of overrides, got {overrides!r}")
        for key in overrides:
            if key not in _DOMAIN_OVERRIDES:
                raise SettingsError(f"{where}.{key}", f"cannot be set per domain (only {', '.join(_DOMAIN_OVERRIDES)})")
        checked[pattern.lower()] = {
            key: _DOMAIN_OVERRIDES[key](f"{where}.{key}", val) for key, val in overrides.items()
        }
    return checked


def _frontier_url(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"{name} must be a redis://, rediss:// or unix:// URL, got {_redact(value)!r}")
    try:
        urllib.parse.urlsplit(value).port  # noqa: B018 - raises for a malformed authority
    except ValueError:
        raise ValueError(
            f"{name} is not a valid URL: {_redact(value)!r} (in a user or password, write / ? # @ : as "
            "%2F %3F %23 %40 %3A)"
        ) from None
    return value


def _optional_name(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or any(c in value for c in "{}\t\n"):
        raise ValueError(f"{name} must be text without braces, tabs or newlines, got {value!r}")
    return value


def _redact(url: object) -> str:
    """A URL with any password in it replaced by ``***`` (for messages and logs): in the
    userinfo (the last ``@`` ends it, as a raw ``@`` may be in the password) and in a
    ``password=`` query parameter (redis-py reads one)."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    userinfo, at, rest = rest.rpartition("@")  # the last @: the password may hold / ? # @
    if at:
        user, colon, _password = userinfo.partition(":")
        userinfo = f"{user}{':***' if colon else ''}@"
    rest = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", rest)
    return f"{scheme}://{userinfo}{rest}"


@functools.cache
def _defaults() -> Settings:
    return Settings()


_VALIDATORS = {
    "concurrency": _positive_int,
    "domain_concurrency": _positive_int,
    "rate_limit": _rate,
    "retries": _non_negative_int,
    "backoff_base": _non_negative_float,
    "backoff_max": _non_negative_float,
    "retry_after_max": _non_negative_float,
    "timeout": _positive_float,
    "max_response_bytes": _positive_int,
    "max_redirects": _non_negative_int,
    "max_depth": _optional_limit,
    "max_pages": _optional_limit,
    "max_items": _optional_limit,
    "user_agent": _text,
    "handle_statuses": _statuses,
    "read_timeout": _positive_float,
    "obey_robots": _bool,
    "autothrottle": _bool,
    "min_rate": _positive_float,
    "rate_scope": _rate_scope,
    "domain_settings": _domain_settings,
    "cookies": _bool,
    "state": _optional_path,
    "frontier": _frontier_url,
    "crawl_id": _optional_name,
    "lease_timeout": _positive_float,
    "downloader": _downloader_name,
    "tls_verify": _bool,
    "tls_ca_file": _optional_path,
    "proxy": _proxies,
    "trust_env": _bool,
    "block_private_addresses": _guard_mode,
    "progress_interval": _non_negative_float,
    "http_cache": _optional_path,
    "http_cache_expiry": _non_negative_float,
    "http_cache_errors": _bool,
}
