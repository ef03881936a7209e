"""HTTP/2 and TLS, against a real nginx serving HTTPS with HTTP/2 on 127.0.0.1.

nginx logs each request's protocol (``$server_protocol``) and connection number
(``$connection``), so the tests read what went over the wire from the server's side: the
httpx downloader speaks HTTP/2 with the requests multiplexed on one connection; aiohttp
speaks HTTP/1.1. TLS verification is on by default (a self-signed certificate fails with
``tls_error``, not retried); ``tls_ca_file`` trusts a bundle; ``tls_verify=false`` trusts all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import DOWNLOADERS, FAST, RecordingSpider, free_port, links, wait_for_port

from crawler import Crawler, Response

PAGES = [f"/p{i}.html" for i in range(30)]


class TlsNginx:
    """nginx on 127.0.0.1 and a free port: HTTPS (a self-signed certificate for 127.0.0.1
    and localhost) with HTTP/2 offered by ALPN; the access log is ``proto connection path``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = 0
        self.cert = str(work / "cert.pem")
        self.log = work / "access.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(exe):
            raise RuntimeError("nginx is not installed (Debian package nginx-light; .ci/run installs it)")
        work = self.work
        key = str(work / "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", self.cert,
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             # a leaf, not a CA: rustls (pyreqwest) refuses a CA certificate as a server's
             "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=serverAuth"],
            check=True, capture_output=True,
        )
        site = work / "site"
        site.mkdir()
        (site / "index.html").write_text(links(*PAGES))
        for path in PAGES:
            (site / path.lstrip("/")).write_text(f"<html><title>{path}</title></html>")
        self.port = free_port()
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = "".join(f"  {kind}_temp_path {work}/{kind};\n" for kind in kinds)
        (work / "nginx.conf").write_text(f"""\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
{temp}  types {{ text/html html; }}
  log_format wire '$server_protocol $connection $request_uri';
  server {{
    listen 127.0.0.1:{self.port} ssl http2;
    ssl_certificate {self.cert};
    ssl_certificate_key {key};
    access_log {self.log} wire;
    root {site};
    index index.html;
    location / {{ try_files $uri $uri/ =404; }}
  }}
}}
""")
        self._proc = subprocess.Popen(
            [exe, "-c", str(work / "nginx.conf"), "-p", str(work), "-e", str(work / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self._proc, "nginx", self.stop)

    def requests(self) -> list[tuple[str, str, str]]:
        """(protocol, connection, path) of each request, once nginx has written its log."""
        if not self.log.exists():
            return []
        return [tuple(line.split(" ", 2)) for line in self.log.read_text().splitlines()]  # type: ignore[misc]

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def nginx_tls():
    # Not pytest's tmp_path: it is 0700, and nginx's worker (nobody) must read the site.
    work = Path(tempfile.mkdtemp(prefix="crawler-h2-"))
    os.chmod(work, 0o755)
    server = TlsNginx(work)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


class Site(RecordingSpider):
    async def parse(self, response: Response):
        async for out in super().parse(response):
            yield out
        for request in response.follow_all(css="a"):
            yield request


def settings(nginx: TlsNginx, **more) -> dict:
    return {**FAST, "concurrency": 16, "domain_concurrency": 16, "tls_ca_file": nginx.cert, **more}


@pytest.mark.parametrize("downloader", ["httpx", "pyreqwest"])
async def test_http2_downloaders_multiplex_the_crawl_on_one_connection(nginx_tls, downloader):
    spider = Site([nginx_tls.url("/")])

    stats = await Crawler(spider, settings(nginx_tls, downloader=downloader)).run()

    assert stats.pages == 1 + len(PAGES)
    assert stats.failures == {}
    seen = nginx_tls.requests()
    assert sorted(path for _, _, path in seen) == sorted(["/", *PAGES])
    assert {protocol for protocol, _, _ in seen} == {"HTTP/2.0"}
    assert len({connection for _, connection, _ in seen}) == 1  # streams on one connection


async def test_aiohttp_crawls_the_same_server_over_http1(nginx_tls):
    spider = Site([nginx_tls.url("/")])

    stats = await Crawler(spider, settings(nginx_tls)).run()

    assert stats.pages == 1 + len(PAGES)
    assert {protocol for protocol, _, _ in nginx_tls.requests()} == {"HTTP/1.1"}


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_an_untrusted_certificate_fails_as_tls_error_without_retries(nginx_tls, downloader):
    spider = RecordingSpider([nginx_tls.url("/")])

    stats = await Crawler(spider, {**FAST, "retries": 3, "downloader": downloader}).run()

    assert stats.pages == 0
    assert stats.failures == {"tls_error": 1}
    assert stats.retries == 0
    assert "certificate" in str(spider.failures[0].exception).lower()
    assert nginx_tls.requests() == []


@pytest.mark.parametrize("downloader", DOWNLOADERS)
async def test_tls_verify_false_accepts_any_certificate(nginx_tls, downloader):
    spider = RecordingSpider([nginx_tls.url("/")])

    stats = await Crawler(spider, {**FAST, "tls_verify": False, "downloader": downloader}).run()

    assert stats.pages == 1


@pytest.mark.parametrize("downloader", ["httpx", "pyreqwest"])
async def test_bodies_stopped_at_the_cap_do_not_stall_the_http2_connection(nginx_tls, downloader):
    # Over HTTP/2 the pages share one connection and its flow-control window (16 MiB here):
    # the rest of a body left unread at the cap must not keep using up that window, nor the
    # DATA already received and queued for the stream when it is stopped (megabytes with a
    # fast server). Either would shrink the window a little more with each such body until
    # every later stream on the connection stalls: 32 bodies make sure it would run out.
    site = nginx_tls.work / "site"
    (site / "big0.html").write_bytes(b"x" * (24 * 1024 * 1024))
    for k in range(1, 32):
        os.link(site / "big0.html", site / f"big{k}.html")
    spider = Site([nginx_tls.url(f"/big{k}.html") for k in range(32)] + [nginx_tls.url("/")])

    stats = await Crawler(
        spider, settings(nginx_tls, downloader=downloader, max_response_bytes=1024 * 1024, read_timeout=5, retries=1)
    ).run()

    assert stats.failures == {"too_large": 32}
    assert stats.pages == 1 + len(PAGES)
