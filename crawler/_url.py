"""URL canonicalisation and stable fingerprints, the heart of dedupe.

Links resolve, and URLs are normalised, as a browser does: by the WHATWG URL Standard, with
ada (``ada-url``, the parser Node.js uses; the standard's own test suite is in
``tests/data/wpt_url_http.json``). That is what a site's author tested, and it is what a
private-network guard must see (``http://0x7f.1/`` is 127.0.0.1). Canonical form: the
standard's serialisation (scheme and host lowercased, IDNA hosts, IPv4 in dotted decimal,
default port dropped, dot segments removed, unsafe characters percent- encoded, the query
kept as written otherwise) without the fragment. Hand-written fast paths take only URLs the
standard leaves as they are; property tests check them against the parser. Fingerprints are
64-bit xxh64 digests of the canonical URL (plus method and body for non-GET requests), the
same in every process and after a restart, unlike the per-process ``hash()``, so a frontier
store or a shared Redis can use them.

A 64-bit fingerprint has a birthday collision probability of about n²/2⁶⁵: ~3·10⁻⁸ for a
million URLs, ~3·10⁻⁶ for ten million. A collision makes the crawler skip one URL as a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ada_url
import xxhash

__all__ = ["BadURL", "allowed_hosts", "canonicalize", "fingerprint", "join"]

_MAX_URL_LENGTH = 8192
# What a host may hold: RFC 3986 reg-name characters (unreserved and sub-delims) plus ":" for
# IPv6. The standard allows a few more ("a{b"); no HTTP client sends those, so they are bad_url.
_HOST = re.compile(r"[A-Za-z0-9.\-_~!$&'()*+,;=:]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_PORT_SUFFIX = re.compile(r":[0-9]*$")
# A URL the standard serialises exactly as it is written: lowercase http(s) scheme and host
# name (its last label starts with a letter, so it is no IPv4 number) or a dotted-decimal
# IPv4 address, a port without leading zeros, a path and query of characters that are never
# percent-encoded (the path set excludes ?^`{}, the special-query set '), no userinfo, no
# fragment. Dot segments ("/." anywhere, "%2e") and IDNA labels ("xn--") are checked apart.
# A scheme other than http(s), as the parser would read it (after leading C0 controls and
# spaces; no tab or newline inside, which it would remove): refused without parsing.
_OTHER_SCHEME = re.compile(r"[\x00-\x20]*(?![Hh][Tt][Tt][Pp][Ss]?:)([A-Za-z][A-Za-z0-9+.\-]*):")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_AS_IS = re.compile(
    r"https?://"
    rf"((?:[a-z0-9-]+\.)*[a-z][a-z0-9-]*|{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET})"
    r"(?::([1-9][0-9]{0,4}))?"
    r"/[A-Za-z0-9!$%&'()*+,\-./:;=@\[\]_|~]*"
    r"(?:\?[A-Za-z0-9!$%&()*+,\-./:;=?@\[\\\]^_`{|}~]*)?"
)


class BadURL(ValueError):
    """The text is not a crawlable http(s) URL; ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {url[:200]!r}")
        self.url = url
        self.reason = reason


def canonicalize(url: str) -> tuple[str, str]:
    """Return ``(canonical_url, host)`` for an absolute http(s) URL, or raise :class:`BadURL`.

    ``host`` is the host name or address the request goes to (an IPv6 address without its
    brackets), for the offsite check and the per-domain politeness.
    """
    # Fast path: most URLs on the hot path are already canonical (links resolved against a
    # canonical page URL); they are returned as they are, exactly as the parser would.
    # (An escaped dot in a query only is rare: the parser takes that URL.)
    found = _AS_IS.fullmatch(url)
    if (
        found is not None
        and "/." not in url
        and "xn--" not in url
        and len(url) <= _MAX_URL_LENGTH
        and not _dot_escape(url)
    ):
        port = found[2]
        if port is None:
            return url, found[1]
        if int(port) <= 65535 and int(port) != (80 if url[4] == ":" else 443):
            return url, found[1]
    return _canonicalize(url)


def _dot_escape(text: str) -> bool:
    """An escaped dot ("%2e"), which the standard reads as a dot in a path's dot segments."""
    return "%2" in text and ("%2e" in text or "%2E" in text)


def _canonicalize(url: str) -> tuple[str, str]:
    if len(url) > _MAX_URL_LENGTH:
        raise BadURL(url, "url too long")
    other = _OTHER_SCHEME.match(url)
    if other is not None:  # mailto:, javascript:, tel: ... (two on every page of many sites)
        raise BadURL(url, f"unsupported scheme {other[1].lower()!r}")
    try:
        href: str = ada_url.normalize_url(_encodable(url))
    except ValueError:
        raise BadURL(url, _why_not_a_url(url)) from None
    scheme = href[: href.find(":")]
    if scheme not in ("http", "https"):
        raise BadURL(url, f"unsupported scheme {scheme!r}")
    href = href.partition("#")[0]
    host = _host_of(href, len(scheme) + 3)
    if not _HOST.fullmatch(host):
        raise BadURL(url, f"invalid host {host[:100]!r}")
    return href, host


def _encodable(text: str) -> str:
    """``text`` with each byte aiohttp could not decode (a surrogate escape, from a header
    that was not UTF-8) as its own %XX escape; BadURL for any other lone surrogate."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _ESCAPED_BYTE.sub(lambda found: f"%{ord(found[0]) - 0xDC00:02X}", text)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadURL(text, "unencodable characters in url") from None
    return text


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _host_of(href: str, start: int) -> str:
    """The host of a serialised http(s) URL whose authority starts at ``start``."""
    end = href.find("/", start)  # a special URL always has a path
    authority = href[start:end]
    at = authority.rfind("@")  # "@" inside userinfo is percent-encoded: the last one ends it
    if at >= 0:
        authority = authority[at + 1 :]
    if authority.startswith("["):
        return authority[1 : authority.find("]")]
    return authority.partition(":")[0]


def _why_not_a_url(url: str) -> str:
    """What is wrong with text the URL parser refused, in words."""
    text = url.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12\x13\x14"
                     "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    colon = text.find(":")
    if colon <= 0 or not _SCHEME.fullmatch(text, 0, colon):
        return "unsupported scheme '(none)'"
    scheme = text[:colon].lower()
    if scheme not in ("http", "https"):
        return f"unsupported scheme {scheme!r}"
    rest = text[colon + 1 :].lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    if not host_port:
        return "no host"
    if _PORT_SUFFIX.search(host_port) and not host_port.endswith("]"):
        port = host_port.rpartition(":")[2]
        if port and (not port.isdigit() or int(port) > 65535):
            return f"invalid port {port[:20]!r}"
    host = host_port
    if not host.startswith("[") and _PORT_SUFFIX.search(host):
        host = host.rpartition(":")[0]
    return f"invalid host {host[:100]!r}" if host else "no host"


def join(base: str, href: str) -> str:
    """``urljoin(base, href)`` without the fragment, for a ``base`` that is an absolute URL.

    Links in pages are mostly site-absolute (``/p/1.html``), relative (``1.html``,
    ``../p/1.html``) or absolute http(s) URLs; those are resolved here with plain string work
    (merge and dot-segment removal, as the URL Standard does for them; ``canonicalize`` then
    normalises what is left, escapes and ``%2e`` segments). Anything else (``//host``, other
    schemes, backslashes, blanks or controls at either end, odd bases) goes to the URL
    parser. A malformed href is returned as it is, for the frontier to record as ``bad_url``.
    """
    if href and (href[0] <= " " or href[-1] <= " "):
        return _slow_join(base, href)  # the standard strips C0 controls and spaces; str.strip() more
    written = href  # the parser gets the href as written (a control before "#" is not at its end)
    hash_at = href.find("#")
    if hash_at >= 0:
        href = href[:hash_at]
    if not href:
        return base.partition("#")[0]
    # The parser's cases: a backslash, a control, a space before "#" (kept, as %20: not at
    # the end of the href), and an escaped dot segment ("%2e"), which the standard removes
    # in order with "." and ".." (here they would be removed before it).
    if "\\" in href or not href.isprintable() or href[-1] == " " or _dot_escape(href) or _dot_escape(base):
        return _slow_join(base, written)
    first = href[0]
    if first == "/":
        if href.startswith("//"):
            return _slow_join(base, written)
        root = _path_start(base)
        if root < 0:
            return _slow_join(base, written)
        path, sep, query = href.partition("?")
        return base[:root] + _remove_dots(path) + sep + query
    if first == "?":
        return base.partition("#")[0].partition("?")[0] + href
    if href.startswith(("http://", "https://")):  # absolute: the base does not matter
        return href if "/." not in href else _slow_join(base, written)
    colon = href.find(":")
    # A scheme of its own (no "/" or "?" can come before its colon):
    if colon >= 0 and _SCHEME.fullmatch(href, 0, colon):
        scheme = href[:colon].lower()
        if scheme not in ("http", "https"):
            return href  # mailto:, javascript:, data: ... stay as they are (urljoin agrees)
        return _slow_join(base, written)  # "HTTP://...", "http:x": the general resolver
    root = _path_start(base)
    if root < 0:
        return _slow_join(base, written)
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
        joined: str = ada_url.join_url(_encodable(base), _encodable(href))
    except (ValueError, BadURL):
        return href
    return joined.partition("#")[0]


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
