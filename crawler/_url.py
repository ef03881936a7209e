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
from urllib.parse import quote, urlsplit, urlunsplit

import xxhash

__all__ = ["BadURL", "canonicalize", "fingerprint"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when a URL needs percent-encoding: the RFC 3986 reserved and
# unreserved sets, plus "%" so existing escapes are not encoded twice.
_SAFE = "/?#[]@!$&'()*+,;=:-._~%"
_MAX_URL_LENGTH = 8192
# What a host may hold once decoded: RFC 3986 reg-name characters (unreserved and sub-delims)
# plus ":" for IPv6. Anything else ("/", "@", "%", spaces ...) would let a URL name one host
# to the offsite check and another to the network.
_HOST = re.compile(r"[A-Za-z0-9.\-_~!$&'()*+,;=:]+")


class BadURL(ValueError):
    """The text is not a crawlable http(s) URL; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {url[:200]!r}")
        self.url = url
        self.reason = reason


def canonicalize(url: str) -> tuple[str, str]:
    """Return ``(canonical_url, host)`` for an absolute http(s) URL, or raise :class:`BadURL`."""
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


def _idna(url: str, netloc: str) -> str:
    from urllib.parse import unquote

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
