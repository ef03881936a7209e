"""A page's links screened in one pass: resolved, canonicalised, and dropped when dead.

``Response.follow_all`` hands the frontier's :class:`LinkScreen` the hrefs of a whole page.
A link that is malformed, offsite or already seen is counted as filtered (as a Request would
be in ``Frontier.add``) and gets no object at all; the rest come back as canonical URLs.

Most links on a site are dead by the time they are read again: the same menus, related
items and pagination appear on page after page. So the screen remembers, per base directory
("http://host/p/" for a page "http://host/p/9.html"), each href it found dead and why, and
the next page in that directory skips resolving, canonicalising and hashing it: one dict
lookup instead. That is sound because a dead link stays dead (the seen-set only grows, and
the offsite and malformed verdicts depend on the URL alone), and because only hrefs that
resolve the same against every page of a directory are remembered: plain paths (relative,
``../`` or site-absolute ``/x``) for that directory; absolute ``http(s)://`` URLs and other
schemes (``mailto:``), which resolve alike on every page of every host, once for all pages
(a broad crawl's links across thousands of hosts would otherwise be remembered per host,
and rarely met again there). An href that may depend on the page itself (``?q``, ``#f``, ``//``, ``http:x``,
leading blanks or control characters) is resolved every time, and so is a link that passes
(the spider may still not follow it). Memory is bounded: past ``max_bytes`` (an estimate:
each href's length plus ~120 B for its string and dict slot) it starts again, empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ._seen import FingerprintSet
from ._stats import StatsCollector
from ._url import _MAX_URL_LENGTH, _OTHER_SCHEME, BadURL, _path_start, canonicalize, fingerprint, join

__all__ = ["LinkScreen", "PageLinks"]

#: What the memory of dead hrefs may hold, estimated, before it is cleared: 16 MiB is about
#: 110,000 hrefs of 30 characters (the bench site's crawl fills 13 MiB).
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
_ENTRY_BYTES = 120  # a str header plus a dict slot, besides the characters
_DIRECTORY_BYTES = 400  # a directory's own small dict and key
_MAX_HREF = 2048  # longer dead hrefs (data: URIs ...) are not worth their memory

# An href resolving the same against every page of a directory: no query or fragment alone,
# no network-path "//", no scheme-relative "http:x", no leading blank or control character.
# ... and on every page of every host: an absolute http(s) URL, or another scheme (mailto:).
_ANYWHERE_ALIKE = re.compile(r"https?://|(?![Hh][Tt][Tt][Pp][Ss]?:)[A-Za-z][A-Za-z0-9+.\-]*:")
_DIRECTORY_ALIKE = re.compile(r"https?://|/(?!/)|(?![Hh][Tt][Tt][Pp][Ss]?:)[A-Za-z][A-Za-z0-9+.\-]*:")


class LinkScreen:
    def __init__(
        self,
        seen: FingerprintSet,
        offsite: Callable[[str], bool] | None,
        stats: StatsCollector,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._seen = seen
        self._offsite = offsite
        self._stats = stats
        self._max_bytes = max_bytes
        self._dead: dict[str, dict[str, str]] = {}  # base directory -> href -> why it is dead
        # Absolute URLs and other schemes resolve alike on every page of every host: a broad
        # crawl's links across hosts are remembered once, not per directory.
        self._anywhere: dict[str, str] = {}  # href -> why it is dead
        self._bytes = 0  # estimated size of _dead and _anywhere

    def __call__(self, base: str, hrefs: Iterable[str], counts: dict[str, int] | None = None) -> list[str]:
        """The canonical URLs worth a Request among ``hrefs`` resolved against ``base``, each once, in order.

        The links filtered are counted in the stats by reason, and added to ``counts`` when
        given (the engine's per-page summary at DEBUG); none is logged on its own.
        """
        directory = _directory_of(base)
        if self._bytes >= self._max_bytes:
            self._dead.clear()
            self._anywhere.clear()
            self._bytes = 0
        dead = self._dead.get(directory, {}) if directory else {}
        anywhere = self._anywhere
        clean = PageLinks(base)
        seen = self._seen
        offsite = self._offsite
        page: dict[str, str | None] = {}  # URL -> its verdict on this page (None: passed)
        out: list[str] = []
        page_counts: dict[str, int] = {}  # reason -> links filtered for it on this page
        added = 0
        for raw in hrefs:
            if not raw:
                continue
            why = dead.get(raw) or anywhere.get(raw)
            if why is None:
                url = clean.resolve(raw)
                plain = bool(url)  # a plain path: resolves alike in the whole directory
                if plain:
                    host = clean.host
                else:
                    try:
                        url, host = canonicalize(join(base, raw))
                    except BadURL:
                        why = "bad_url"
                if why is None:
                    if url in page:  # another link to a URL already on this page: its verdict
                        why = page[url]
                        if why is None:  # passed the first time: a duplicate, not remembered
                            page_counts["duplicate"] = page_counts.get("duplicate", 0) + 1
                            continue
                    elif offsite is not None and offsite(host):
                        why = page[url] = "offsite"
                    elif fingerprint(url) in seen:
                        why = page[url] = "duplicate"
                    else:
                        page[url] = None
                        out.append(url)
                        continue
                if len(raw) <= _MAX_HREF:
                    if _ANYWHERE_ALIKE.match(raw):
                        anywhere[raw] = why
                        self._bytes += len(raw) + _ENTRY_BYTES
                    elif directory and (plain or _DIRECTORY_ALIKE.match(raw)):
                        dead[raw] = why
                        added += len(raw) + _ENTRY_BYTES
            page_counts[why] = page_counts.get(why, 0) + 1
        if added:
            if directory not in self._dead:
                self._dead[directory] = dead
                added += _DIRECTORY_BYTES + len(directory)
            self._bytes += added
        for why, count in page_counts.items():
            self._stats.count_filtered(why, count)
            if counts is not None:
                counts[why] = counts.get(why, 0) + count
        return out


def _directory_of(base: str) -> str:
    """``base`` up to the last "/" of its path ("" when it has no path: nothing is remembered)."""
    root = _path_start(base)
    if root < 0:
        return ""
    end = len(base)
    for mark in "?#":
        at = base.find(mark, root)
        if 0 <= at < end:
            end = at
    return base[: base.rfind("/", root, end) + 1]


_CLEAN_PATH = re.compile(r"[A-Za-z0-9_~!$&'()*+,;=@/-][A-Za-z0-9._~!$&'()*+,;=:@/-]*")


class PageLinks:
    """Resolves links against one page's base URL: plain relative paths with string work only.

    ``resolve`` gives the canonical URL for an href made only of unreserved path characters
    (no query, scheme, "//", escapes or spaces, and no dot segments but leading "../"), else
    "" for the general path; ``resolve_canonical`` takes any href.
    """

    __slots__ = ("base", "directory", "host", "origin")

    def __init__(self, page: str) -> None:
        self.base = page
        self.origin = self.directory = self.host = ""
        root = _path_start(page)
        if root < 0:  # "http://host?q" has no path (a canonical URL always has one): no shortcut
            return
        try:
            canonical, host = canonicalize(page)
        except BadURL:
            return
        if canonical != page:  # e.g. a <base href> that is not canonical: no shortcut
            return
        path = page[root:].partition("?")[0]
        self.origin = page[:root]
        self.directory = path[: path.rfind("/") + 1]
        self.host = host

    def resolve(self, href: str) -> str:
        if not self.origin or href.startswith(("http://", "https://")):
            return ""  # (an absolute URL: the general path, at once; most links of a broad crawl)
        if "#" in href:
            href = href.partition("#")[0]
        directory = self.directory
        up = href.startswith("../")
        while href.startswith("../"):  # "../p/1.html": up one directory, never above the root
            href = href[3:]
            directory = directory[: directory.rfind("/", 0, len(directory) - 1) + 1] or "/"
        if not _CLEAN_PATH.fullmatch(href) or "/." in href or href.startswith(("//", ".")):
            return ""
        if href[0] == "/":
            url = "" if up else self.origin + href  # "..//a" is left to the general path
        elif ":" in href.partition("/")[0]:  # "a:b" would read as a scheme
            return ""
        else:
            url = self.origin + directory + href
        return url if len(url) <= _MAX_URL_LENGTH else ""  # (too long: canonicalize says so)

    def resolve_canonical(self, href: str) -> tuple[str, str]:
        """``(canonical URL, host)`` for any href; ``(resolved text, "")`` when it is not a
        crawlable URL (the frontier records it as ``bad_url``)."""
        url = self.resolve(href)
        if url:
            return url, self.host
        joined = join(self.base, href)
        # mailto:, javascript: ... (two on every page of many sites) are what canonicalize
        # refuses first: refused here without raising and catching BadURL.
        if not joined.startswith(("http://", "https://")) and _OTHER_SCHEME.match(joined):
            return joined, ""
        try:
            return canonicalize(joined)
        except BadURL:
            return joined, ""
