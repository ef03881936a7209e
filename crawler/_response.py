"""The Response a spider callback receives, with lazy text decoding and selectors."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

import ada_url
from lxml import etree  # type: ignore[import-untyped]  # no stubs shipped
from multidict import CIMultiDict, CIMultiDictProxy
from parsel import Selector, SelectorList
from parsel.csstranslator import css2xpath
from w3lib.encoding import html_to_unicode

from ._links import PageLinks
from ._request import Request
from ._selector import PageSelector
from ._url import _MAX_URL_LENGTH, join

__all__ = ["Headers", "Response"]

#: ``Response.headers``, whichever downloader fetched it: multidict's ``CIMultiDictProxy``
#: (aiohttp's own type), read-only, case-insensitive (``headers["content-type"]``), every
#: value of a repeated header kept (``headers.getall("Set-Cookie")``).
Headers: TypeAlias = CIMultiDictProxy[str]

_MARKUP_TYPES = ("text/html", "application/xhtml", "text/xml", "application/xml", "+xml")


# A fragment the URL Standard keeps as it is written (its fragment percent-encode set and
# the tabs and newlines it removes are not in it).
_PLAIN_FRAGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/?#-]*")


def _encodable(text: str) -> bool:
    """No lone surrogate in ``text`` (the URL parser refuses one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Response:
    """An HTTP response handed to a spider callback.

    ``text`` decodes ``body`` on first use: a BOM first, then the Content-Type charset, then a
    ``<meta>`` charset, then detection; it never raises on bad bytes (they become U+FFFD).
    ``css()`` / ``xpath()`` build a parsel selector on first use; on non-markup content
    (images, PDF, JSON) they return an empty list instead of failing.
    """

    __slots__ = (
        "_base",
        "_content_type",
        "_encoding",
        "_joined",
        "_resolver",
        "_screen",
        "_selector",
        "_text",
        "body",
        "headers",
        "request",
        "status",
        "url",
    )

    def __init__(
        self,
        url: str,
        status: int,
        headers: Mapping[str, str] | CIMultiDictProxy[str] | None,
        body: bytes,
        request: Request,
    ) -> None:
        self.url = url
        self.status = status
        self.headers: Headers = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers or {}))
        )
        self.body = body
        self.request = request
        self._text: str | None = None
        self._content_type: str | None = None
        self._encoding: str | None = None
        self._selector: Selector | None = None
        self._base: str | None = None  # base_url, found once
        self._resolver: PageLinks | None = None  # follow()'s resolver for this page, made once
        #: urljoin()'s last result when it is a crawlable URL: (that string, (the canonical
        #: URL, its host)), for the Request made from it (see CallbackRunner).
        self._joined: tuple[str, tuple[str, str]] | None = None
        #: Set by the crawl (the frontier's LinkScreen): a page's hrefs -> canonical URLs worth a Request.
        self._screen: Callable[[str, Iterable[str]], list[str]] | None = None

    @classmethod
    def from_html(
        cls,
        url: str,
        html: str | bytes,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        request: Request | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Response:
        """Build a response without a network, e.g. to unit-test a spider callback."""
        if headers is None:
            headers = {"Content-Type": "text/html; charset=utf-8"}
        body = html.encode("utf-8") if isinstance(html, str) else html
        return cls(url, status, headers, body, request or Request(url, meta=meta))

    # -- request-derived -------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, Any]:
        return self.request.meta

    @property
    def depth(self) -> int:
        return self.request.depth

    # -- body ------------------------------------------------------------------------------

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters ("text/html"); "" when none is given."""
        if self._content_type is None:  # asked several times a page: the headers never change
            self._content_type = _media_type(self.headers.get("Content-Type", ""))
        return self._content_type

    @property
    def is_markup(self) -> bool:
        """True for HTML/XML (or an unlabelled body), the content that selectors and links apply to."""
        return _is_markup(self.content_type)

    @property
    def encoding(self) -> str:
        if self._encoding is None:
            self._decode()
        return self._encoding  # type: ignore[return-value]

    @property
    def text(self) -> str:
        if self._text is None:
            self._decode()
        return self._text  # type: ignore[return-value]

    def _decode(self) -> None:
        content_type = self.headers.get("Content-Type")
        if _says_utf8_or_nothing(content_type, self.body):
            try:  # the common case, without w3lib's full sniffing: same result, a few us less
                self._encoding, self._text = "utf-8", self.body.decode("utf-8")
                return
            except UnicodeDecodeError:
                pass
        try:
            encoding, text = html_to_unicode(content_type, self.body, auto_detect_fun=_detect)
            if _is_wide(encoding) and not self.body.startswith(_WIDE_BOMS) and not _is_wide(content_type or ""):
                # Only a <meta> can have said UTF-16/32, and a page whose <meta> could be read
                # as ASCII is not UTF-16: HTML's prescan turns that declaration into UTF-8.
                encoding, text = "utf-8", self.body.decode("utf-8", "replace")
        except Exception:  # a lying or unknown charset must not cost the page
            encoding, text = "utf-8", self.body.decode("utf-8", "replace")
        self._encoding, self._text = encoding, text

    def json(self) -> Any:
        return json.loads(self.text)

    # -- selectors -------------------------------------------------------------------------

    @property
    def selector(self) -> Selector:
        if self._selector is None:
            ctype = self.content_type
            if _is_markup(ctype):
                if "xml" in ctype and "html" not in ctype:
                    self._selector = PageSelector(text=self.text, type="xml", base_url=self.url)
                else:
                    self._selector = self._html_selector()
            else:
                self._selector = PageSelector(text="<html></html>", type="html")
        return self._selector

    def _html_selector(self) -> Selector:
        text = self.text
        if self._encoding in _LXML_SAFE_ENCODINGS and "\ufffd" not in text and b"\x00" not in self.body:
            # The bytes decode cleanly: let lxml parse them directly, skipping parsel's
            # strip/re-encode of the text (about a fifth of the parse).
            root = etree.fromstring(self.body, parser=_html_parser(self._encoding), base_url=self.url)
            if root is not None:
                return PageSelector(root=root, type="html", base_url=self.url)
        return PageSelector(text=text, type="html", base_url=self.url)

    def css(self, query: str) -> SelectorList[Selector]:
        if not self.is_markup:
            return SelectorList()
        return self.selector.css(query)

    def xpath(self, query: str, **kwargs: Any) -> SelectorList[Selector]:
        if not self.is_markup:
            return SelectorList()
        return self.selector.xpath(query, **kwargs)

    # -- following links -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL links on this page are relative to: its first ``<base href>``, else its own.

        Found once per response: a spider that calls ``follow()`` per link asks for it per link.
        """
        base = self._base
        if base is None:
            base = self._base = self._find_base()
        return base

    def _find_base(self) -> str:
        if not self.is_markup:
            return self.url
        root = self.selector.root  # built already when links came from css()/xpath()
        base = None
        if isinstance(root, etree._Element):
            for element in root.iter("base"):  # the first with an href counts, even an empty one
                base = element.get("href")
                if base is not None:
                    break
        return join(self.url, base) if base else self.url

    @property
    def _page_links(self) -> PageLinks:
        """Resolves links against this page's base URL (made once: ``follow()``, ``urljoin()``
        and link rules ask per link)."""
        resolver = self._resolver
        if resolver is None:
            resolver = self._resolver = PageLinks(self.base_url)
        return resolver

    def urljoin(self, url: str) -> str:
        """``url`` resolved against this page (its ``<base href>`` if any) as a browser
        resolves it (the URL Standard), fragment kept; never raises: a link that does not
        resolve comes back as it is (the frontier records it as bad_url).

        A link is resolved as ``follow()`` resolves it (a plain path with string work): the
        canonical URL the crawl will fetch, plus the link's fragment. The response remembers
        that string, so a Request made from it at once (``Request(response.urljoin(href))``,
        the form of Scrapy spiders written before ``follow()``) is not canonicalised again.
        """
        head, mark, fragment = url.partition("#")
        links = self._page_links
        if (
            links.origin  # a canonical base (one ada may refuse, or a surrogate in it, goes to ada)
            and (not head or head[-1] > " ")
            and (not mark or _PLAIN_FRAGMENT.fullmatch(fragment))
            and (url.isascii() or _encodable(url))  # ada refuses a lone surrogate: url comes back
        ):
            canonical = links.resolve_canonical(head)
            if canonical[1]:  # a crawlable URL: the standard's serialisation, as ada would give it
                joined = canonical[0] + mark + fragment if mark else canonical[0]
                if len(joined) <= _MAX_URL_LENGTH:  # (longer: bad_url, when the frontier sees it)
                    self._joined = (joined, canonical)
                return joined
        try:
            resolved: str = ada_url.join_url(self.base_url, url)
        except ValueError:  # e.g. an unclosed IPv6 bracket, or a lone surrogate
            return url
        return resolved

    def follow(self, href: str | Selector, callback: Callable[..., Any] | None = None, **kwargs: Any) -> Request:
        """A Request for ``href`` (a string, or an ``<a>``/``<link>`` selector) resolved against this page.

        Its URL is already the canonical one the crawl will fetch (or, for a malformed link,
        the resolved text, which the crawl records as ``bad_url``). A spider that yields
        ``follow()`` per link is on the same fast path as ``follow_all``: the page's base is
        found once, plain relative links are resolved with string work, and the frontier
        does not canonicalise the URL again.
        """
        link = href if type(href) is str else _href_of(href)
        url, host = self._page_links.resolve_canonical(link)
        request = Request._link(url, callback, 0, "") if not kwargs else Request(url, callback=callback, **kwargs)
        request._canonical = (url, host)
        return request

    def follow_all(
        self,
        urls: Iterable[str | Selector] | None = None,
        callback: Callable[..., Any] | None = None,
        *,
        css: str | None = None,
        xpath: str | None = None,
        **kwargs: Any,
    ) -> list[Request]:
        """Requests for many links at once: from ``urls``, or the ``href``/``src`` of ``css``/``xpath`` matches.

        Links are resolved and deduplicated (ignoring ``#fragments``) as one batch before any
        Request is built; a page lists the same product many times and each copy would
        otherwise cost an object and a trip through the frontier.
        """
        if sum(x is not None for x in (urls, css, xpath)) != 1:
            raise ValueError("follow_all needs exactly one of urls, css or xpath")
        hrefs = self._hrefs(css, xpath) if urls is None else [_href_of(u) for u in urls]
        base = self.base_url
        # In a crawl, links the frontier would drop anyway (already seen, offsite, malformed)
        # are counted there and get no Request object at all: most links on a page are such.
        plain_get = kwargs.get("method", "GET").upper() == "GET" and not kwargs.get("body")
        if self._screen is not None and plain_get and not kwargs.get("dont_filter"):
            return [Request(url, callback, **kwargs) for url in self._screen(base, hrefs)]
        seen: set[str] = set()
        requests = []
        for raw in hrefs:
            if not raw:
                continue
            url = join(base, raw)
            if url not in seen:
                seen.add(url)
                requests.append(Request(url, callback, **kwargs))
        return requests

    def _hrefs(self, css: str | None, xpath: str | None) -> list[str]:
        """The href (else src) of matched elements, or the strings an ``::attr()``/``text()``
        query selects, read from lxml directly (no Selector object per link)."""
        if not self.is_markup:
            return []
        selector = self.selector
        if css is not None and selector.type == "html" and _TAG_NAME.fullmatch(css):
            # css="a": walking the elements of that tag is about twice as fast as the
            # equivalent XPath union below, and gives the same strings in the same order.
            hrefs = []
            for element in selector.root.iter(css.lower()):
                href = element.get("href")
                if href is None:
                    href = element.get("src")
                if href is not None:
                    hrefs.append(href)
            return hrefs
        found = _link_xpath(css, xpath)(selector.root)
        return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"


_LXML_SAFE_ENCODINGS = frozenset({"utf-8", "ascii", "us-ascii"})


@functools.lru_cache(maxsize=8)
def _html_parser(encoding: str) -> etree.HTMLParser:
    return etree.HTMLParser(recover=True, encoding=encoding, huge_tree=True)


@functools.lru_cache(maxsize=64)
def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=64)
def _is_markup(media_type: str) -> bool:
    return not media_type or any(marker in media_type for marker in _MARKUP_TYPES)


@functools.lru_cache(maxsize=256)
def _link_xpath(css: str | None, xpath: str | None) -> etree.XPath:
    """A compiled XPath giving the link strings of a follow_all query, in document order."""
    query = css2xpath(css) if css is not None else xpath
    assert query is not None
    if not _SELECTS_STRINGS.search(query):  # elements: take their href, else their src
        query = f"({query})/@href | ({query})[not(@href)]/@src"
    return etree.XPath(query, smart_strings=False)


_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SELECTS_STRINGS = re.compile(r"(/@[\w:.*-]+|text\(\)|string\([^)]*\))\s*$")


def _href_of(link: str | Selector) -> str:
    """The link a string or selector stands for: the string, the selected text/attribute, or
    the element's href (else src)."""
    if isinstance(link, str):
        return link
    root = link.root
    if isinstance(root, str):
        return root
    # root.get, not sel.attrib: attrib builds a dict of every attribute, and lxml raises on
    # one with a control character, which would cost the page all its links.
    return root.get("href") or root.get("src") or ""


_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([^\s;\"']*)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"[Cc][Hh][Aa][Rr][Ss][Ee][Tt]\s*=\s*[\"']?\s*([^\s;\"'/>]*)")
_UTF8_LABELS = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8"})


def _says_utf8_or_nothing(content_type: str | None, body: bytes) -> bool:
    """True when no BOM, header or <meta> (first 4 KiB) names a charset other than UTF-8.

    Then a body that decodes as strict UTF-8 decodes exactly as the BOM > header > <meta>
    > detection order would have it; anything else takes the full path.
    """
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or body[:3] == b"\xef\xbb\xbf":
        return False
    if content_type and "charset" in content_type.lower():
        found = _HEADER_CHARSET.search(content_type)
        return found is not None and found[1].lower() in _UTF8_LABELS
    if body.find(b"harset", 0, 4096) < 0 and body.find(b"HARSET", 0, 4096) < 0:
        return True  # no declaration (odd spellings like "chARSET" are not looked for)
    declared = _META_CHARSET.search(body, 0, 4096)
    return declared is None or declared[1].decode("ascii", "replace").lower() in _UTF8_LABELS


_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16 BOMs (UTF-32 LE starts with the first)


def _is_wide(label: str) -> bool:
    label = label.lower().replace("-", "").replace("_", "")
    return "utf16" in label or "utf32" in label


def _detect(body: bytes) -> str:
    """Last resort when neither BOM, header nor <meta> names a charset."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"
