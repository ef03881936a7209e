"""A page's links screened in one pass: resolved, canonicalised, and dropped when dead.

``Response.follow_all`` hands the frontier's :class:`LinkScreen` the hrefs of a whole page.
A link that is malformed, offsite or already seen is counted as filtered (as a Request would
be in ``Frontier.add``) and gets no object at all; the rest come back as canonical URLs.

Most links on a site are dead by the time they are read again: the same menus, related
items and pagination appear on page after page. So the screen remembers, per base directory
("http://host/p/" for a page "http://host/p/9.html"), each href it found dead and why, and
the next page in that directory skips resolving, canonicalising and hashing it: one dict
lookup instead. That is sound because a dead link stays dead: the seen-set only grows, and
the offsite and malformed verdicts depend on the URL alone; and an href resolves the same
against every page of one directory, except one that starts with ``?`` or ``#`` (or blank),
which is never remembered. A link that passes is never remembered (the spider may still not
follow it). Memory is bounded: past ``capacity`` hrefs (about 15 MB) it starts again, empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from ._log import debug_enabled
from ._seen import FingerprintSet
from ._stats import StatsCollector
from ._url import BadURL, _path_start, canonicalize, fingerprint, join

__all__ = ["LinkScreen"]

#: Hrefs remembered as dead, over all directories, before the memory is cleared: about
#: 150 B of RSS each (the href string and its dict slot), so at most ~15 MB.
DEFAULT_CAPACITY = 100_000


class LinkScreen:
    def __init__(
        self,
        seen: FingerprintSet,
        offsite: Callable[[str], bool] | None,
        stats: StatsCollector,
        *,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._seen = seen
        self._offsite = offsite
        self._stats = stats
        self._capacity = capacity
        self._dead: dict[str, dict[str, str]] = {}  # base directory -> href -> why it is dead
        self._remembered = 0

    def __call__(self, base: str, hrefs: Iterable[str]) -> list[str]:
        """The canonical URLs worth a Request among ``hrefs`` resolved against ``base``, each once, in order."""
        if debug_enabled():  # every filtered link is logged with its URL: no shortcuts
            return self._screen_logged(base, hrefs)
        dead = self._directory(base)
        keep = dead is not None
        if dead is None:
            dead = {}  # nothing is kept for a base with no path
        clean = _CleanLinks(base)
        seen = self._seen
        offsite = self._offsite
        page: dict[str, str | None] = {}  # URL -> its verdict on this page (None: passed)
        out: list[str] = []
        duplicate = off = bad = 0
        added = 0
        for raw in hrefs:
            if not raw:
                continue
            why = dead.get(raw)
            if why is None:
                url = clean.resolve(raw)
                if url is not None:
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
                            duplicate += 1
                            continue
                    elif offsite is not None and offsite(host):
                        why = page[url] = "offsite"
                    elif fingerprint(url) in seen:
                        why = page[url] = "duplicate"
                    else:
                        page[url] = None
                        out.append(url)
                        continue
                first = raw[0]
                if first != "?" and first != "#" and not first.isspace():
                    dead[raw] = why
                    added += 1
            if why == "duplicate":
                duplicate += 1
            elif why == "offsite":
                off += 1
            else:
                bad += 1
        if keep:
            self._remembered += added
        stats = self._stats
        if duplicate:
            stats.filtered(base, "duplicate", count=duplicate)
        if off:
            stats.filtered(base, "offsite", count=off)
        if bad:
            stats.filtered(base, "bad_url", count=bad)
        return out

    def _directory(self, base: str) -> dict[str, str] | None:
        """The memory for ``base``'s directory, or None when ``base`` has no path."""
        root = _path_start(base)
        if root < 0:
            return None
        end = len(base)
        for mark in "?#":
            at = base.find(mark, root)
            if 0 <= at < end:
                end = at
        directory = base[: base.rfind("/", root, end) + 1]
        if self._remembered >= self._capacity:
            self._dead.clear()
            self._remembered = 0
        dead = self._dead.get(directory)
        if dead is None:
            dead = self._dead[directory] = {}
        return dead

    def _screen_logged(self, base: str, hrefs: Iterable[str]) -> list[str]:
        page: dict[str, str | None] = {}
        out: list[str] = []
        stats = self._stats
        for raw in hrefs:
            if not raw:
                continue
            url = join(base, raw)
            try:
                url, host = canonicalize(url)
            except BadURL as exc:
                stats.filtered(url, "bad_url", detail=exc.reason)
                continue
            if url in page:
                stats.filtered(url, page[url] or "duplicate")
                continue
            if self._offsite is not None and self._offsite(host):
                why = page[url] = "offsite"
            elif fingerprint(url) in self._seen:
                why = page[url] = "duplicate"
            else:
                page[url] = None
                out.append(url)
                continue
            stats.filtered(url, why)
        return out


_CLEAN_PATH = re.compile(r"[A-Za-z0-9_~!$&'()*+,;=@/-][A-Za-z0-9._~!$&'()*+,;=:@/-]*")


class _CleanLinks:
    """Resolves plain relative paths against one canonical page URL with string work only.

    ``resolve`` gives the canonical URL for an href made only of unreserved path characters
    (no dot segments, query, scheme, "//", escapes or spaces), else None for the general path.
    """

    __slots__ = ("directory", "host", "origin")

    def __init__(self, page: str) -> None:
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

    def resolve(self, href: str) -> str | None:
        if not self.origin:
            return None
        if "#" in href:
            href = href.partition("#")[0]
        directory = self.directory
        up = href.startswith("../")
        while href.startswith("../"):  # "../p/1.html": up one directory, never above the root
            href = href[3:]
            directory = directory[: directory.rfind("/", 0, len(directory) - 1) + 1] or "/"
        if not _CLEAN_PATH.fullmatch(href) or "/." in href or href.startswith(("//", ".")):
            return None
        if href[0] == "/":
            return None if up else self.origin + href  # "..//a" is left to the general path
        if ":" in href.partition("/")[0]:  # "a:b" would read as a scheme
            return None
        return self.origin + directory + href
