import pytest

from crawler import Request, Response


def make(body: bytes, content_type: str | None = "text/html", url: str = "http://example.com/dir/page") -> Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return Response(url, 200, headers, body, Request(url))


def test_text_uses_header_charset():
    assert make("café".encode("latin-1"), "text/html; charset=iso-8859-1").text == "café"


def test_bom_wins_over_header():
    body = b"\xff\xfe" + "café".encode("utf-16-le")
    assert "café" in make(body, "text/html; charset=iso-8859-1").text


def test_meta_charset_when_header_has_none():
    body = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'.encode("cp1251")
    assert "Привет" in make(body, "text/html").text


def test_detection_without_any_declaration():
    assert "naïve" in make("<p>naïve</p>".encode(), "text/html").text
    assert "naïve" in make("<p>naïve</p>".encode("cp1252"), "text/html").text


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"\xff\xfe\xfa invalid \xc3\x28", "text/html; charset=utf-8"),
        (b"<meta charset='no-such-charset'>abc", "text/html"),
        (b"abc", "text/html; charset=bogus"),
        (b"\x00\x01\x02", None),
    ],
)
def test_text_never_raises_on_bad_bytes(body, ctype):
    assert isinstance(make(body, ctype).text, str)


def test_css_xpath_json_and_non_markup():
    r = make(b"<html><body><h1 class='t'>Hi</h1><a href='x'>1</a></body></html>")
    assert r.css("h1.t::text").get() == "Hi"
    assert r.xpath("//a/@href").get() == "x"
    pdf = make(b"%PDF-1.4 <a href='x'>", "application/pdf")
    assert pdf.css("a").getall() == [] and pdf.xpath("//a").getall() == []
    assert make(b'{"a": [1, 2]}', "application/json").json() == {"a": [1, 2]}


def test_urljoin_and_follow_respect_base_href():
    r = make(b"<html><head><base href='http://cdn.example.com/root/'></head><a href='p'>x</a></html>")
    assert r.urljoin("p") == "http://cdn.example.com/root/p"
    assert r.follow(r.css("a")[0]).url == "http://cdn.example.com/root/p"


def test_follow_builds_requests_with_callback_and_kwargs():
    r = make(b"<a href='../other?x=1'>x</a>")

    def cb(response):
        return None

    req = r.follow("../other?x=1", callback=cb, meta={"k": 1}, priority=5)
    assert req.url == "http://example.com/other?x=1"
    assert req.callback is cb and req.meta == {"k": 1} and req.priority == 5


def test_follow_all_resolves_and_dedupes_in_one_batch():
    body = b"""<html><body>
      <a href="/a">1</a><a href="/a#reviews">2</a><a href="http://example.com/a">3</a>
      <a href="b">4</a><a href="/a?x=1">5</a><a>no href</a><img src="/img.png">
    </body></html>"""
    r = make(body)
    urls = [req.url for req in r.follow_all(css="a")]
    assert urls == ["http://example.com/a", "http://example.com/dir/b", "http://example.com/a?x=1"]
    assert [req.url for req in r.follow_all(xpath="//img")] == ["http://example.com/img.png"]
    assert [req.url for req in r.follow_all(["/z", "/z#top"])] == ["http://example.com/z"]
    with pytest.raises(ValueError):
        r.follow_all(css="a", xpath="//a")


def test_from_html_for_unit_testing_callbacks():
    r = Response.from_html("http://shop.example/p/1", "<h1>Ünïcode</h1>", meta={"cat": "books"})
    assert r.status == 200 and r.css("h1::text").get() == "Ünïcode"
    assert r.meta == {"cat": "books"} and r.depth == 0
