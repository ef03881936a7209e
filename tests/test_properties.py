"""Property tests: URL canonicalisation and Response decoding/selectors hold up on any input."""

from __future__ import annotations

import contextlib
import datetime
import string

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crawler import Request, Response, Spider, canonicalize, fingerprint
from crawler._codec import RequestCodec, UnstorableRequest
from crawler._url import BadURL, join

PROPS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAGE = "http://example.com/dir/page"

# -- strategies -------------------------------------------------------------------------------

# Characters that make URLs interesting: reserved and unsafe ASCII, escapes, controls, non-ASCII.
URL_CHARS = st.one_of(
    st.sampled_from(list(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/?#[]% \t\\\"<>^`{|}")),
    # "\udce9" is how aiohttp hands over a non-UTF-8 header byte (surrogateescape), e.g. in a Location.
    st.sampled_from(["%20", "%zz", "%", "%2F", "%C3%A9", "\x00", "\x01", "\x7f", "é", "\u200b", "\ufffd", "😀"]),
    st.just("\udce9"),
    st.characters(),
)
SEGMENT = st.lists(URL_CHARS, max_size=8).map("".join)
SCHEMES = st.sampled_from(["http", "https", "HTTP", "hTTps", "ftp", "javascript", "mailto", "data", "file", ""])
LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?", fullmatch=True)
HOSTS = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.sampled_from(
        ["127.0.0.1", "[::1]", "[2001:db8::1]", "[::1", "::1]", "bücher.de", "xn--bcher-kva.de", "EXAMPLE.COM", ""]
    ),
    SEGMENT,
)
PORTS = st.one_of(
    st.just(""),
    st.integers(min_value=0, max_value=70_000).map(lambda p: f":{p}"),
    st.sampled_from([":", ":80", ":443", ":8080", ":abc", ":-1", ":+80", ": 80"]),
)
USERINFO = st.sampled_from(["", "", "", "user@", "user:pw@", "@", "a@b@"])
PATHS = st.lists(SEGMENT, max_size=4).map(lambda segments: "/" + "/".join(segments) if segments else "")
QUERIES = st.one_of(st.just(""), SEGMENT.map(lambda q: "?" + q))
FRAGMENTS = st.one_of(st.just(""), SEGMENT.map(lambda f: "#" + f))
SEPARATORS = st.sampled_from(["://", "://", "://", ":", ":/", ":///", "//"])

URLISH = st.builds(
    lambda scheme, sep, user, host, port, path, query, frag: f"{scheme}{sep}{user}{host}{port}{path}{query}{frag}",
    SCHEMES,
    SEPARATORS,
    USERINFO,
    HOSTS,
    PORTS,
    PATHS,
    QUERIES,
    FRAGMENTS,
)

# Well-formed http(s) URLs, for properties about equivalent spellings.
SAFE_CHARS = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
SAFE_SEGMENT = st.text(alphabet=SAFE_CHARS, max_size=8)
VALID = st.fixed_dictionaries(
    {
        "scheme": st.sampled_from(["http", "https"]),
        # (a last label starting with a digit would make it an IPv4 number, to the URL Standard)
        "host": st.lists(LABEL, min_size=1, max_size=3)
        .map(lambda labels: ".".join(labels).lower())
        .filter(lambda host: not host.rpartition(".")[2][0].isdigit()),
        "port": st.one_of(st.none(), st.integers(min_value=1, max_value=65_535)),
        "path": st.lists(SAFE_SEGMENT, max_size=4).map(lambda s: "/" + "/".join(s)),
        "query": st.one_of(st.just(""), st.text(alphabet=SAFE_CHARS + "/?", max_size=12).map(lambda q: "?" + q)),
    }
)


def _url(parts: dict, *, scheme: str | None = None, host: str | None = None, port: str | None = None) -> str:
    if port is None:
        port = "" if parts["port"] is None else f":{parts['port']}"
    return f"{scheme or parts['scheme']}://{host or parts['host']}{port}{parts['path']}{parts['query']}"


# -- canonicalize -----------------------------------------------------------------------------


def _check_canonicalize(url: str) -> None:
    try:
        canonical, host = canonicalize(url)
    except BadURL as exc:
        assert exc.reason
        return
    assert canonical.startswith(("http://", "https://"))
    assert host
    # Idempotent: the canonical form is its own canonical form, with the same host.
    assert canonicalize(canonical) == (canonical, host)
    # The canonical form is what goes on the wire: ASCII, printable, no spaces.
    assert canonical.isascii() and canonical.isprintable() and " " not in canonical, canonical


@PROPS
@given(st.text(st.characters(exclude_categories=())))  # lone surrogates included
@example("http://example.com/%zz")
@example("http://example.com/caf\udce9")
@example("HTTP://Example.COM:80/a b?q=1#frag")
def test_canonicalize_on_any_text_is_idempotent_or_bad_url(url):
    _check_canonicalize(url)


@PROPS
@given(URLISH)
@example("http://exa mple.com/")
@example("http://other.example%2F.allowed.example/")  # host must not decode into "other.example/.allowed.example"
@example("http://b\u00fccher.de/caf\u00e9")
@example("http://[::1]:8080/x")
def test_canonicalize_on_url_like_strings_is_idempotent_or_bad_url(url):
    _check_canonicalize(url)


@PROPS
@given(VALID, st.data())
def test_equivalent_spellings_share_a_fingerprint(parts, data):
    base = _url(parts)
    canonical = canonicalize(base)[0]
    default_port = {"http": 80, "https": 443}[parts["scheme"]]
    scheme = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in parts["scheme"])
    host = "".join(data.draw(st.sampled_from([c.lower(), c.upper()])) for c in parts["host"])
    # Any printable fragment (a control character anywhere makes the whole URL bad_url, by design).
    printable = st.characters(blacklist_categories=["Cc", "Cs"])
    fragment = data.draw(st.one_of(st.just(""), st.text(printable, max_size=10).map(lambda f: "#" + f)))
    spellings = [
        _url(parts, scheme=scheme),
        _url(parts, host=host),
        _url(parts, port=f":{default_port}") if parts["port"] in (None, default_port) else base,
        base + fragment,
        _url(parts, scheme=scheme, host=host) + fragment,
    ]
    for spelling in spellings:
        assert canonicalize(spelling)[0] == canonical, spelling
        assert fingerprint(canonicalize(spelling)[0]) == fingerprint(canonical), spelling
    assert 0 <= fingerprint(canonical) < 2**64


# -- Response ---------------------------------------------------------------------------------

CHARSETS = st.one_of(
    st.sampled_from(
        ["utf-8", "UTF-8", "utf8", "latin-1", "iso-8859-1", "cp1252", "windows-1251", "shift_jis", "euc-jp", "gb2312",
         "big5", "koi8-r", "utf-16", "utf-16le", "utf-16be", "utf-32", "utf-7", "ascii", "x-user-defined", "bogus",
         "", "\"utf-8\"", "'latin1'", "utf-8; foo=bar", "idna", "rot13", "hex", "base64", "zlib", "punycode"]
    ),
    st.text(max_size=12),
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.builds(lambda t, cs: f"{t}; charset={cs}", st.sampled_from(["text/html", "application/xhtml+xml", "text/xml"]),
              CHARSETS),
    st.sampled_from(["text/html", "application/pdf", "image/png", "application/json", "text/plain", "", ";", "html"]),
    st.text(max_size=30),
)
BOMS = st.sampled_from([b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"])
META = st.one_of(st.just(b""), CHARSETS.map(lambda cs: f"<meta charset='{cs}'>".encode("utf-8", "replace")))
BODIES = st.builds(lambda bom, meta, rest: bom + meta + rest, BOMS, META, st.binary(max_size=300))


def _response(body: bytes, content_type: str | None, url: str = PAGE) -> Response:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return Response(url, 200, headers, body, Request(url))


@PROPS
@given(BODIES, CONTENT_TYPES)
@example(b"<meta charset='utf-16'><title>x</title>", "text/html")
@example(b"\xff\xfe\x00", "text/html; charset=utf-8")
def test_text_never_raises(body, content_type):
    response = _response(body, content_type)
    assert isinstance(response.text, str)
    assert isinstance(response.encoding, str)


@PROPS
@given(BODIES)
def test_css_never_raises_on_any_bytes(body):
    hrefs = _response(body, "text/html").css("a::attr(href)").getall()
    assert all(isinstance(href, str) for href in hrefs)


# HTML-ish bytes: tags and attributes with hostile hrefs, broken markup, raw bytes, mixed together.
HREFS = st.one_of(URLISH, SEGMENT, st.sampled_from(["", "#", "?", "//", "///x", "http://[::1", "javascript:x", "%zz"]))
HTML_PARTS = st.one_of(
    HREFS.map(lambda h: f'<a href="{h}">x</a>'),
    HREFS.map(lambda h: f"<a href='{h}'>"),
    HREFS.map(lambda h: f"<a href={h}>"),
    HREFS.map(lambda h: f'<base href="{h}">'),
    HREFS.map(lambda h: f'<img src="{h}">'),
    st.sampled_from(["<a>", "</a>", "<a href>", "<a href=''>", "<a HREF=\"/ok\">", "<!--", "-->", "<![CDATA[", "<", ">",
                     "<html>", "<head>", "<body>", "<script>", "</script>", "&amp;", "&#0;", "&#x110000;", "\x00"]),
    st.text(max_size=20),
)
HTMLISH = st.builds(
    lambda parts, raw, encoding: "".join(parts).encode(encoding, "surrogatepass" if encoding == "utf-8" else "replace")
    + raw,
    st.lists(HTML_PARTS, max_size=12),
    st.binary(max_size=40),
    st.sampled_from(["utf-8", "utf-16", "latin-1"]),
)


@PROPS
@example(b'<a href="/ok" \x01>x</a><a href="/next">y</a>', PAGE)
@given(HTMLISH, st.sampled_from([PAGE, "http://[::1]:8080/", "https://bücher.de/a/b?q=1"]))
def test_follow_all_never_raises_on_html_ish_bytes(body, url):
    response = _response(body, "text/html", url=url)
    requests = response.follow_all(css="a")
    assert all(isinstance(r, Request) and isinstance(r.url, str) for r in requests)
    assert len({r.url for r in requests}) == len(requests)  # deduplicated
    for r in requests:  # each link is either crawlable or a clean BadURL, never a crash
        with contextlib.suppress(BadURL):
            canonicalize(r.url)


# -- the hot path's fast paths agree with the general ones -------------------------------------


@PROPS
@example(b"<A HREF='/x'>1</A><a href=''>2</a><a src='/s'>3</a><a href='/h' src='/s'>4</a>")
@given(HTMLISH)
def test_tag_walk_for_links_agrees_with_the_xpath(body):
    from crawler._response import _link_xpath

    response = _response(body, "text/html")
    found = _link_xpath("a", None)(response.selector.root)
    assert response._hrefs("a", None) == [item for item in found if isinstance(item, str)]
    assert response._hrefs("A", None) == response._hrefs("a", None)


@PROPS
@example(b"<html><head><BASE HREF='http://cdn.example.com/r/'></head></html>")
@example(b"<base target=_top><base href=''><base href='http://other.example.com/'>")
@example(b"<body><p>x</p><base href='/in/body/'></body>")
@given(HTMLISH)
def test_base_url_from_the_tree_agrees_with_a_base_href_query(body):
    from crawler._url import join

    parsed_first = _response(body, "text/html")
    parsed_first.selector  # noqa: B018 - the tree exists before base_url is asked
    base = parsed_first.css("base::attr(href)").get()
    expected = join(PAGE, base) if base else PAGE
    assert parsed_first.base_url == expected
    assert _response(body, "text/html").base_url == expected  # asked before any parse

HREF_PARTS = st.sampled_from(["a", "p", "1.html", ".", "..", "", "x-y_z~", "%41", "q=1", ":", ";v"])
HREFS = st.builds(
    lambda lead, segs, query, frag: lead + "/".join(segs) + query + frag,
    st.sampled_from(["", "/", "./", "../", "http://example.com/", "https://other.org:8443/", "//cdn.example/"]),
    st.lists(HREF_PARTS, max_size=6),
    st.sampled_from(["", "?x=1", "?a=b&c=d", "?u=../x"]),
    st.sampled_from(["", "#f", "#"]),
)
BASES = st.sampled_from(
    ["http://example.com/dir/page", "http://example.com/", "https://example.com:8443/a/b/c?q=1", "http://h/a/"]
)


@PROPS
@given(BASES, st.one_of(HREFS, SEGMENT, URLISH))
@example("http://example.com/dir/page", "a//b")
@example("http://example.com/dir/page", "?")
@example("http://example.com/dir/page", " /x ")
@example("http://example.com/dir/page", "\\x")
@example("http://example.com/dir/page", "/a/%2e%2e/b")
@example("http://example.com/dir/page", "http:x")
@example("http://example.com/dir/page", "b.html #top")  # a space before "#" is kept (%20)
@example("http://example.com/dir/page", "?q #x")
@example("https://example.com:8443/a/b/c?q=1", "%2e%2e/../x")  # escaped and plain dot segments, in order
@example("http://example.com/", "/a/%2E%2e/../b")
@example("http://h/a/", "../%2e/x")
def test_fast_join_resolves_as_the_url_standard(base, href):
    import ada_url

    from crawler._url import _encodable, join

    try:  # (a byte aiohttp could not decode, a surrogate escape, stands for its %XX escape)
        expected = _canonical_or_bad(ada_url.join_url(_encodable(base), _encodable(href)).partition("#")[0])
    except (ValueError, BadURL):
        expected = "BAD"
    assert _canonical_or_bad(join(base, href)) == expected


def _canonical_or_bad(url: str) -> str:
    try:
        return canonicalize(url)[0]
    except BadURL:
        return "BAD"


@PROPS
@given(URLISH)
@example("http://a.com:80/x")
@example("http://a.com:080/x")
@example("https://a.com:443/")
@example("http://a.com:65536/x")
@example("http://a.com/x?")
def test_canonicalize_fast_path_agrees_with_the_full_one(url):
    import ada_url

    from crawler._url import _canonicalize

    with contextlib.suppress(ValueError):  # the full path is the standard's serialisation
        href = ada_url.normalize_url(url).partition("#")[0]
        if href.startswith(("http://", "https://")):
            with contextlib.suppress(BadURL):
                assert _canonicalize(url)[0] == href

    try:
        expected = _canonicalize(url)
    except BadURL:
        assert _canonical_or_bad(url) == "BAD", f"fast path accepted {url!r}, the full one rejects it"
        return
    assert canonicalize(url) == expected


@PROPS
@given(BASES, st.one_of(HREFS, st.text(max_size=20)))
@example("http://example.com/dir/page", "a:b/c")
@example("http://example.com/dir/page", "p/1.html#x")
@example("https://example.com:8443/a/b/c?q=1", "../../x.html")
@example("http://example.com/dir/page", "../../../x")
@example("http://example.com/", "..//a")
@example("http://example.com/dir/page", "../a:b")
def test_clean_link_shortcut_agrees_with_join_and_canonicalize(base, href):
    from crawler._links import PageLinks
    from crawler._url import join

    fast = PageLinks(base).resolve(href)
    if fast:  # "" means no shortcut: the general path decides
        assert fast == _canonical_or_bad(join(base, href))


@PROPS
@given(BASES, st.one_of(HREFS, st.text(max_size=20), st.builds("{}:{}".format, SCHEMES, st.text(max_size=8))))
@example("http://example.com/dir/page", "javascript:void(0)")
@example("http://example.com/dir/page", "mailto:x@y#z")
@example("http://example.com/dir/page", " mailto:x")
@example("http://example.com/dir/page", "HTTP:x")
@example("http://example.com/dir/page", "tel:+1 555 ")
@example("http://example.com/dir/page", "javascript:a\\b")
def test_follow_resolves_every_href_as_join_and_canonicalize_do(base, href):
    # What Response.follow() puts in a Request: the canonical URL and host, or for a link
    # that is no crawlable URL the resolved text and no host (the frontier's bad_url).
    from crawler._links import PageLinks
    from crawler._url import join

    joined = join(base, href)
    try:
        expected = canonicalize(joined)
    except BadURL:
        expected = (joined, "")
    assert PageLinks(base).resolve_canonical(href) == expected


@PROPS
@given(BASES, st.one_of(HREFS, st.text(max_size=20), st.builds("{}#{}".format, HREFS, st.text(max_size=8))))
@example("http://example.com/dir/page", "p/1.html#top")
@example("http://example.com/dir/page", "#")
@example("http://example.com/dir/page", "p/1.html #x")
@example("http://example.com/dir/page", "p/1.html#a b")
@example("http://example.com/dir/page", "p/1.html#\t")
@example("https://example.com:8443/a/b/c?q=1", "#x")
@example("http://example.com/dir/page", "http://[::1")
@example("http://example.com/dir/page", "a\udc80")
@example("http://example.com/dir/page", "a\udc80#x")
def test_urljoin_resolves_every_href_as_the_url_standard_does(base, href):
    # Response.urljoin's own resolution of plain links (the canonical URL plus the fragment)
    # gives exactly what the standard's parser gives.
    import ada_url

    try:
        expected = ada_url.join_url(base, href)
    except ValueError:
        expected = href
    page = Response.from_html(base, b"<p>")
    assert page.urljoin(href) == expected
    joined = page._joined
    if joined is not None and joined[0] == expected:  # what a Request made from it will fetch
        assert joined[1] == canonicalize(expected)


@pytest.mark.parametrize(
    ("page", "base", "href"),
    [
        ("http://h/p", "http://h:99999/", "HTTP://Example.com/A"),  # a <base href> the parser refuses
        ("http://h/p", "http://h:99999/", "http:x"),
        ("http://h/p/", "/b/", "c.html#d"),
    ],
)
def test_urljoin_on_odd_bases_gives_what_the_url_standard_gives(page, base, href):
    import ada_url

    body = f'<base href="{base}"><p>' if base else "<p>"
    response = Response.from_html(page, body.encode("utf-8", "surrogatepass"))
    try:
        expected = ada_url.join_url(response.base_url, href)
    except ValueError:
        expected = href
    assert response.urljoin(href) == expected


@PROPS
@given(BODIES, CONTENT_TYPES)
@example(b"<meta charset='latin-1'>caf\xc3\xa9", "text/html")
@example(b"<meta http-equiv='Content-Type' content='text/html; charset=utf-8'>\xc3\xa9", "text/html")
@example("\u00e9".encode(), "text/html; charset=iso-8859-1")
def test_utf8_shortcut_decodes_as_the_full_sniffing_does(body, content_type):
    from w3lib.encoding import html_to_unicode

    from crawler._response import _detect, _says_utf8_or_nothing

    if not _says_utf8_or_nothing(content_type, body):
        return
    try:
        fast = body.decode("utf-8")
    except UnicodeDecodeError:
        return  # the shortcut falls back to the full path
    assert html_to_unicode(content_type, body, auto_detect_fun=_detect)[1] == fast


SCREEN_BASES = st.sampled_from(
    [
        "http://example.com/dir/page",
        "http://example.com/dir/other?x=1",
        "http://example.com/dir/",
        "http://example.com/",
        "http://Example.com:80/dir/page",
        "http://example.com",
        "https://example.com:8443/a/b/c?q=1",
        "http://h/a/",
    ]
)


# Few hrefs, so that pages share them: relative ones resolve differently per directory, "?"
# and "#" ones per page, and "http://example.com/a" the same everywhere.
SCREEN_HREFS = st.one_of(
    st.sampled_from(["a", "../a", "/a", "?q", "?r", "#f", "", " a", "./", "http://example.com/a", "http://other.org/"]),
    st.sampled_from(["http://[::1", "mailto:x", "b/c", "/b?x", "//?q", "http:?q", "HTTP:a", "\x01?q", "../a", "/\t/a"]),
    HREFS,
)


@PROPS
@given(st.lists(st.tuples(SCREEN_BASES, st.lists(SCREEN_HREFS, max_size=8)), max_size=20), st.integers(0, 3))
# "?q" is dead on the second page, alive on the third (another page of the same directory)
@example([("http://example.com/dir/page", ["?q"])] * 2 + [("http://example.com/dir/other?x=1", ["?q"])], 3)
# "//?q" resolves against the page itself (a network-path reference with a query)
@example([("http://example.com/dir/page", ["//?q"])] * 2 + [("http://example.com/dir/other?x=1", ["//?q"])], 3)
# "a" is dead on the second page, alive on the third (another directory of the same host)
@example([("http://example.com/dir/page", ["a"])] * 2 + [("http://example.com/", ["a"])], 3)
def test_link_screen_memory_changes_no_outcome(pages, capacity):
    """Remembering dead hrefs per directory gives the same links and the same counts as
    resolving every href every time, while the crawl follows some links between pages."""
    from crawler._links import LinkScreen
    from crawler._seen import FingerprintSet
    from crawler._stats import StatsCollector

    def offsite(host: str) -> bool:
        return host != "example.com" and not host.endswith(".example.com")

    remembering = LinkScreen(FingerprintSet(), offsite, StatsCollector(), max_bytes=capacity * 500)
    seen = FingerprintSet()
    reference_counts: dict[str, int] = {}
    for number, (base, hrefs) in enumerate(pages):
        got = remembering(base, hrefs)
        expected = _reference_screen(base, hrefs, seen, offsite, reference_counts)
        assert got == expected
        for url in got if number % 3 != 2 else ():  # the spider follows most pages' links: now seen
            remembering._seen.add(fingerprint(url))
            seen.add(fingerprint(url))
    assert dict(remembering._stats.filtered_by) == reference_counts


def _reference_screen(base, hrefs, seen, offsite, counts):
    """The screen's verdicts the plain way: every href resolved, no memory, no shortcuts."""
    page: dict[str, str | None] = {}
    out = []
    for raw in hrefs:
        if not raw:
            continue
        try:
            url, host = canonicalize(join(base, raw))
        except BadURL:
            why = "bad_url"
        else:
            if url in page:
                why = page[url] or "duplicate"
            elif offsite(host):
                why = page[url] = "offsite"
            elif fingerprint(url) in seen:
                why = page[url] = "duplicate"
            else:
                page[url] = None
                out.append(url)
                continue
        counts[why] = counts.get(why, 0) + 1
    return out


SELECTOR_QUERIES = st.sampled_from(
    [
        ("css", "a::attr(href)"),
        ("css", "a"),
        ("css", "a::text"),
        ("css", "*::text"),
        ("css", "p a, b"),
        ("css", "[href]::attr(src)"),
        ("xpath", "//a/@href"),
        ("xpath", "//a"),
        ("xpath", "count(//a)"),
        ("xpath", "boolean(//a)"),
        ("xpath", "string(//a)"),
        ("xpath", "//a/text()"),
        ("xpath", "//*[re:test(@href, '^/')]/@href"),
        ("xpath", "//a[@href=$h]/@href"),
        ("xpath", "//a[contains(@href,"),  # malformed
    ]
)


@PROPS
@example(b'<a href="/x">1</a><a href="">2</a><b>3</b>', ("css", "a::attr(href)"))
@given(HTMLISH, SELECTOR_QUERIES)
def test_page_selector_gives_what_parsel_gives(body, query):
    # Response's selectors build their results directly (crawler/_selector.py): every result
    # must be what parsel's own Selector gives, down to the type and the query it remembers.
    from parsel import Selector

    from crawler._selector import PageSelector

    kind, text = query
    kwargs = {"h": "/x"} if "$h" in text else {}
    html = body.decode("utf-8", "replace")
    ours, theirs = PageSelector(text=html, type="html"), Selector(text=html, type="html")
    results = []
    for selector in (ours, theirs):
        try:
            found = selector.css(text) if kind == "css" else selector.xpath(text, **kwargs)
        except ValueError as exc:
            results.append(("error", str(exc)))
            continue
        results.append(
            (
                type(found).__name__,
                found.getall(),
                found.get(),
                [(s.type, s._expr, s.namespaces, s._text, s._huge_tree, s.get(), s.getall()) for s in found],
                [s.css("::text").getall() if s.type != "text" and not isinstance(s.root, str) else None for s in found],
            )
        )
    assert results[0] == results[1]
    assert all(isinstance(s, Selector) for s in (ours.css(text) if kind == "css" and results[0][0] != "error" else []))


_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_keys = st.none() | st.booleans() | st.integers() | st.text() | st.tuples(st.integers(), st.text())
_data = st.recursive(
    _scalars | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(_keys, inner, max_size=4)
    | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


class _Owner(Spider):
    async def parse(self, response):
        return None


@settings(max_examples=300, deadline=None)
@given(meta=st.dictionaries(st.text(), _data, max_size=4), cb_kwargs=st.dictionaries(st.text(), _data, max_size=3))
def test_meta_and_cb_kwargs_come_back_from_a_store_as_they_were(meta, cb_kwargs):
    # A durable store (--state, a shared frontier) keeps requests as JSON; tuples, bytes and
    # dicts with keys other than strings are still what the callback gets back.
    codec = RequestCodec(_Owner())
    back = codec.decode(codec.encode(Request("http://h/p", meta=meta, cb_kwargs=cb_kwargs)))
    assert (back.meta, back.cb_kwargs) == (meta, cb_kwargs)
    assert repr(back.meta) == repr(meta) and repr(back.cb_kwargs) == repr(cb_kwargs), "same types"


def test_deep_meta_comes_back_and_a_refusal_names_the_spiders_key():
    codec = RequestCodec(_Owner())
    deep: object = "leaf"
    for _ in range(600):  # as deep as before tags (json's own limit is about 990)
        deep = [deep]
    tagged: object = "leaf"
    for _ in range(100):
        tagged = ({0: tagged},)
    back = codec.decode(codec.encode(Request("http://h/p", meta={"deep": deep, "tagged": tagged})))
    assert back.meta == {"deep": deep, "tagged": tagged}
    with pytest.raises(UnstorableRequest, match=r"meta\[0\] is not JSON data"):
        codec.encode(Request("http://h/p", meta={0: datetime.datetime(2026, 1, 1), "ok": (1,)}))
    too_deep: object = "leaf"
    for _ in range(5000):
        too_deep = [too_deep]
    with pytest.raises(UnstorableRequest, match=r"meta\['x'\] is nested too deeply"):
        codec.encode(Request("http://h/p", meta={"x": too_deep}))
    with pytest.raises(ValueError):  # a crafted entry: a bad entry, not a crash of the store
        codec.decode('{"url":"http://h/p","meta":{"x":' + "[" * 5000 + "]" * 5000 + "},\"method\":\"GET\"}")
