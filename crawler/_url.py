"""URL canonicalisation and stable fingerprints, the heart of dedupe.

Canonical form: scheme and host lowercased, default port dropped, empty path made ``/``,
fragment dropped, query kept exactly (its order can matter to a server), unsafe characters
percent-encoded. Fingerprints are 64-bit xxh64 digests of the canonical URL (plus method
and body for non-GET requests), the same in every process and after a restart, unlike the
per-process ``hash()``, so a frontier store or a shared Redis can use them.

A 64-bit fingerprint has a birthday collision probability of about n²/2⁶⁵: ~3·10⁻⁸ for a
million URLs, ~3·10⁻⁶ for ten million. A collision makes the crawler skip one URL as a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import xxhash

__all__ = ["BadURL", "allowed_hosts", "canonicalize", "fingerprint", "join"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when a URL needs percent-encoding: the RFC 3986 reserved and
# unreserved sets, plus "%" so existing escapes are not encoded twice.
_SAFE = "/?#[]@!$&'()*+,;=:-._~%"
_MAX_URL_LENGTH = 8192
# What a host may hold once decoded: RFC 3986 reg-name characters (unreserved and sub-delims)
# plus ":" for IPv6. Anything else ("/", "@", "%", spaces ...) would let a URL name one host
# to the offsite check and another to the network.
_HOST = re.compile(r"[A-Za-z0-9.\-_~!$&'()*+,;=:]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# An already canonical netloc: lowercase host, no userinfo, a port without leading zeros.
_PORT_SUFFIX = re.compile(r":[0-9]*$")
_CLEAN_NETLOC = re.compile(r"([a-z0-9.\-]+)(?::([1-9][0-9]{0,4}))?")


class BadURL(ValueError):
    """The text is not a crawlable http(s) URL; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {url[:200]!r}")
        self.url = url
        self.reason = reason


def canonicalize(url: str) -> tuple[str, str]:
    """Return ``(canonical_url, host)`` for an absolute http(s) URL, or raise :class:`BadURL`."""
    # Fast path: most URLs on the hot path are already canonical (links resolved against a
    # canonical page URL): lowercase http(s) scheme and host, no port, no fragment, plain
    # printable ASCII. Those are returned as they are, exactly as the full path below would.
    start = 7 if url.startswith("http://") else 8 if url.startswith("https://") else 0
    if start:
        end = url.find("/", start)
        if (
            end > start
            and len(url) <= _MAX_URL_LENGTH
            and url.isascii()
            and url.isprintable()
            and " " not in url
            and "#" not in url
            and url[-1] != "?"
        ):
            clean = _CLEAN_NETLOC.fullmatch(url, start, end)
            if clean is not None:
                port = clean[2]
                if port is None:
                    return url, clean[1]
                if int(port) <= 65535 and int(port) != (80 if start == 7 else 443):
                    return url, clean[1]
    return _canonicalize(url)


def _canonicalize(url: str) -> tuple[str, str]:
    if len(url) > _MAX_URL_LENGTH:
        raise BadURL(url, "url too long")
    url = url.strip()
    if not url.isascii() or " " in url:
        try:
            # surrogateescape: header bytes that were not UTF-8 (aiohttp decodes them so)
            # become their own %XX escapes instead of an encoding error.
            url = quote(url.encode("utf-8", "surrogateescape"), safe=_SAFE)
        except UnicodeEncodeError:
            raise BadURL(url, "unencodable characters in url") from None
    if not url.isprintable():
        raise BadURL(url, "control character in url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadURL(url, str(exc)) from None
    if "\\" in parts.netloc:  # a browser reads a backslash here as "/": another host than the one checked
        raise BadURL(url, "backslash in the host part")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BadURL(url, f"unsupported scheme {scheme or '(none)'!r}")
    host = parts.hostname
    if not host:
        raise BadURL(url, "no host")
    if "%" in host:  # a non-ASCII host was percent-encoded above: turn it into IDNA instead
        host = _idna(url, parts.netloc)
    if not _HOST.fullmatch(host):
        raise BadURL(url, f"invalid host {host[:100]!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    if "@" in parts.netloc:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")), host


def join(base: str, href: str) -> str:
    """``urljoin(base, href)`` without the fragment, for a ``base`` that is an absolute URL.

    Links in pages are mostly site-absolute (``/p/1.html``), relative (``1.html``,
    ``../p/1.html``) or absolute http(s) URLs; those are resolved here with plain string work
    (RFC 3986 merge and dot-segment removal). Anything else (``//host``, other schemes,
    backslashes, odd bases) goes to ``urllib.parse.urljoin``. A malformed href is returned as
    it is, for the frontier to record as ``bad_url``.
    """
    href = href.strip()
    hash_at = href.find("#")
    if hash_at >= 0:
        href = href[:hash_at]
    if not href:
        return base.partition("#")[0]
    if "\\" in href or not href.isprintable():
        return _slow_join(base, href)
    first = href[0]
    if first == "/":
        if href.startswith("//"):
            return _slow_join(base, href)
        root = _path_start(base)
        if root < 0:
            return _slow_join(base, href)
        path, sep, query = href.partition("?")
        return base[:root] + _remove_dots(path) + sep + query
    if first == "?":
        return base.partition("#")[0].partition("?")[0] + href
    if href.startswith(("http://", "https://")):  # absolute: the base does not matter
        return href if "/." not in href else _slow_join(base, href)
    colon = href.find(":")
    if colon >= 0:
        scheme_end = min((i for i in (href.find("/"), href.find("?")) if i >= 0), default=len(href))
        if colon < scheme_end and _SCHEME.fullmatch(href, 0, colon):  # has a scheme of its own
            scheme = href[:colon].lower()
            if scheme not in ("http", "https"):
                return href  # mailto:, javascript:, data: ... stay as they are (urljoin agrees)
            return _slow_join(base, href)  # "HTTP://...", "http:x": the general resolver
    root = _path_start(base)
    if root < 0:
        return _slow_join(base, href)
    base_path = base[root:].partition("?")[0].partition("#")[0]
    path, sep, query = href.partition("?")
    merged = base_path[: base_path.rfind("/") + 1] + path
    return base[:root] + _remove_dots(merged) + sep + query


def _path_start(base: str) -> int:
    """Index of the "/" that starts the base's path, or -1 when the authority is followed by
    "?", "#" or nothing (then the general resolver handles it)."""
    start = base.find("//") + 2
    end = len(base)
    for mark in "/?#":
        at = base.find(mark, start)
        if 0 <= at < end:
            end = at
    return end if end < len(base) and base[end] == "/" else -1


def _remove_dots(path: str) -> str:
    """RFC 3986 5.2.4 for an absolute path; returns ``path`` itself when it has no dot segment."""
    if "/." not in path:
        return path
    out: list[str] = []
    segments = path.split("/")
    for segment in segments[1:]:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _slow_join(base: str, href: str) -> str:
    try:
        return urljoin(base, href).partition("#")[0]
    except ValueError:
        return href


def _idna(url: str, netloc: str) -> str:
    raw = unquote(netloc.rpartition("@")[2]).rsplit(":", 1)[0] if "]" not in netloc else ""
    try:
        return raw.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BadURL(url, "invalid international host name") from None


def fingerprint(canonical_url: str, method: str = "GET", body: bytes | None = None) -> int:
    """A stable 64-bit fingerprint of a request (canonical URL, plus method and body if not GET)."""
    if method == "GET" and not body:
        return xxhash.xxh64_intdigest(canonical_url.encode())
    h = xxhash.xxh64(method.encode())
    h.update(b" ")
    h.update(canonical_url.encode())
    if body:
        h.update(b"\n")
        h.update(body)
    return h.intdigest()


def allowed_hosts(entries: str | Iterable[object]) -> tuple[tuple[str, ...], list[str]]:
    """The hosts that ``allowed_domains`` entries name, and a note for each entry not a bare host.

    Scrapy users write ``"127.0.0.1:8899"`` or ``"https://example.com/"``; compared as they
    are, no host would ever match and the crawl would filter everything as offsite. Such an
    entry is used as its host (ports and schemes are not compared), with a note saying so.
    A string on its own is one entry, not a sequence of one-letter hosts. Hosts are in the
    canonical form the offsite check compares against (lowercase, IDNA for non-ASCII).
    """
    if isinstance(entries, str):
        entries = (entries,)
    hosts: list[str] = []
    notes: list[str] = []
    for entry in entries:
        text = entry.strip() if isinstance(entry, str) else ""
        bare = text.lstrip("*").lstrip(".")
        if "://" in bare:  # a URL of any scheme: its host is what counts
            bare = bare.partition("://")[2]
        bare = bare.partition("/")[0].rstrip(".")  # "example.com." is the same DNS name
        if bare.count(":") > 1 and "[" not in bare:
            bare = f"[{bare}]"  # an IPv6 address written without brackets
        why = "empty"
        try:
            host = canonicalize(f"http://{bare}/")[1] if bare else ""
        except BadURL as exc:
            host, why = "", exc.reason
        if not host:
            notes.append(f"allowed_domains entry {entry!r} names no host ({why}): ignored")
            continue
        hosts.append(host)
        if "://" in text or "/" in text:
            notes.append(f"allowed_domains entry {entry!r} is a URL: using its host {host!r} (any scheme or port)")
        elif _PORT_SUFFIX.search(bare):
            notes.append(f"allowed_domains entry {entry!r} has a port: using its host {host!r} (any port)")
    return tuple(dict.fromkeys(hosts)), notes
