import subprocess
import sys

import pytest

from crawler import canonicalize, fingerprint
from crawler._url import BadURL, allowed_hosts


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("HTTP://Example.COM/a", "http://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com", "http://example.com/"),
        ("http://example.com/a#frag", "http://example.com/a"),
        ("http://example.com/a?b=2&a=1", "http://example.com/a?b=2&a=1"),  # query order kept
        ("http://example.com/a b", "http://example.com/a%20b"),
        ("http://example.com/caf\u00e9", "http://example.com/caf%C3%A9"),
        ("http://b\u00fccher.de/", "http://xn--bcher-kva.de/"),
        ("  http://example.com/a  ", "http://example.com/a"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        # As a browser reads them (the URL Standard), so the host checked is the host fetched:
        ("http://evil.example\\@127.0.0.2/", "http://evil.example/@127.0.0.2/"),
        ("http://0x7f.1/", "http://127.0.0.1/"),
        ("http://192.168.257/", "http://192.168.1.1/"),
        ("http://example.com/a/./b/../c", "http://example.com/a/c"),
        ("http://example.com/a/%2e%2E/c", "http://example.com/c"),
        ("http://example.com:/a", "http://example.com/a"),
        ("http://example.com:0080/a", "http://example.com/a"),
        ("http://example.com/?", "http://example.com/?"),
        ("http://example.com/a\x01b", "http://example.com/a%01b"),
    ],
)
def test_canonical_forms(raw, canonical):
    assert canonicalize(raw)[0] == canonical


def test_the_host_is_the_one_a_browser_would_connect_to():
    assert canonicalize("http://evil.example\\@127.0.0.2/")[1] == "evil.example"
    assert canonicalize("http://0x7f.1/")[1] == "127.0.0.1"
    assert canonicalize("http://[::1]:8080/")[1] == "::1"
    assert canonicalize("http://user:pw@Example.com:81/")[1] == "example.com"


@pytest.mark.parametrize(
    "raw",
    [
        "mailto:a@example.com",
        "javascript:void(0)",
        "data:text/plain,hi",
        "ftp://example.com/",
        "http://[::1",
        "http://exa\x00mple.com/",
        "http://example.com:99999/",
        "/relative/only",
        "http://",
        "http://example.com/" + "a" * 10_000,
    ],
)
def test_bad_urls_raise_bad_url(raw):
    with pytest.raises(BadURL):
        canonicalize(raw)


def test_canonicalisation_is_idempotent():
    for raw in ["HTTP://A.com:80/x y?q=1#f", "https://b\u00fccher.de/%7Euser", "http://a.com/%zz"]:
        once = canonicalize(raw)[0]
        assert canonicalize(once)[0] == once


def test_equivalent_urls_share_a_fingerprint_and_others_do_not():
    a = fingerprint(canonicalize("HTTP://Example.com:80/p#x")[0])
    b = fingerprint(canonicalize("http://example.com/p")[0])
    c = fingerprint(canonicalize("http://example.com/p?x=1")[0])
    assert a == b != c
    assert 0 <= a < 2**64
    post = fingerprint("http://example.com/p", "POST", b"q=1")
    assert post != a and post != fingerprint("http://example.com/p", "POST", b"q=2")


def test_fingerprint_is_stable_across_processes():
    code = "from crawler import fingerprint; print(fingerprint('http://example.com/p'))"
    outputs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert outputs == {str(fingerprint("http://example.com/p"))}


@pytest.mark.parametrize(
    ("entry", "host", "note"),
    [
        ("example.com", "example.com", None),
        ("Example.COM", "example.com", None),
        (".example.com", "example.com", None),
        ("*.example.com", "example.com", None),
        ("example.com.", "example.com", None),  # the same DNS name
        ("bücher.de", "xn--bcher-kva.de", None),
        ("::1", "::1", None),
        ("127.0.0.1:8899", "127.0.0.1", "has a port"),
        ("[::1]:8080", "::1", "has a port"),
        ("https://example.com/shop/", "example.com", "is a URL"),
        ("ftp://files.example.com", "files.example.com", "is a URL"),
        ("example.com:99999", None, "names no host"),
        ("", None, "names no host"),
        ("a b", None, "names no host"),
    ],
)
def test_allowed_domains_entries_become_hosts(entry, host, note):
    hosts, notes = allowed_hosts([entry])
    assert hosts == ((host,) if host else ())
    if note is None:
        assert notes == []
    else:
        assert len(notes) == 1 and note in notes[0] and repr(entry) in notes[0]


def test_allowed_domains_as_one_string_is_one_entry():
    assert allowed_hosts("example.com") == (("example.com",), [])
