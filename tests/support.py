"""Test helpers: a real aiohttp server on loopback and small HTML builders."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable

import pytest
from aiohttp import web
from yarl import URL

from crawler import Failure, Pipeline, Request, Response, Spider

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Hit:
    """One request as the server saw it (server-side clock: time.monotonic())."""

    at: float
    host: str
    path: str
    headers: dict[str, str]
    remote: str = ""  #: the client's address (a proxy's, for a proxied request)


class TestServer:
    """An aiohttp app on 127.0.0.1 (and 127.0.0.2, a second "domain") on one free port.

    ``routes`` maps a path to a handler; every request is recorded in ``hits`` before the
    handler runs, and ``max_in_flight[host]`` tracks peak concurrency per host.
    """

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.hits: list[Hit] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    def route(self, path: str, handler: Handler | str, *, status: int = 200, content_type: str = "text/html") -> None:
        """Add a route; a str handler is a fixed body."""
        if isinstance(handler, str):
            body = handler

            async def fixed(request: web.Request) -> web.Response:
                return web.Response(text=body, status=status, content_type=content_type)

            handler = fixed
        self.routes[path] = handler

    def route_pages(self, paths: Iterable[str]) -> None:
        """A plain HTML page (titled with its path) at each of ``paths``."""
        for path in paths:
            self.route(path, html(path))

    def hub(self, count: int) -> list[str]:
        """"/" linking to ``count`` plain pages "/p0", "/p1" ...; returns their paths."""
        pages = [f"/p{i}" for i in range(count)]
        self.route("/", links(*pages))
        self.route_pages(pages)
        return pages

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def hits_for(self, path: str | None = None, host: str | None = None) -> list[Hit]:
        return [h for h in self.hits if (path is None or h.path == path) and (host is None or h.host == host)]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0]
        self.hits.append(Hit(time.monotonic(), host, request.path_qs, dict(request.headers), request.remote or ""))
        handler = self.routes.get(request.path_qs) or self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="not found")
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self.in_flight[host])
        try:
            return await handler(request)
        finally:
            self.in_flight[host] -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        first = web.TCPSite(self._runner, "127.0.0.1", 0)
        await first.start()
        self.port = self._runner.addresses[0][1]
        await web.TCPSite(self._runner, "127.0.0.2", self.port).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def html(body: str, title: str = "page") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"


def links(*hrefs: str) -> str:
    return html("".join(f'<a href="{h}">{h}</a>' for h in hrefs))


# Fast, test-friendly settings: no rate limit, tiny backoffs, short timeouts. robots.txt is
# off so that tests can assert the exact requests a server sees; its own tests turn it on.
FAST = {
    "rate_limit": 0,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "timeout": 5,
    "domain_concurrency": 8,
    "obey_robots": False,
}


#: Every downloader the project ships: the misbehaving-server and timeout suites run over each.
DOWNLOADERS = ("aiohttp", "httpx", "pyreqwest")
#: Runs a test once per downloader (the ``downloader`` fixture sets it in ``FAST``).
over_downloaders = pytest.mark.parametrize("downloader", DOWNLOADERS, indirect=True)


class Collect(Pipeline):
    """An item pipeline that keeps every item reaching it and notes open/close."""

    def __init__(self) -> None:
        self.items: list = []
        self.opened = False
        self.closed = False

    async def open(self, spider: Spider) -> None:
        self.opened = True

    async def process_item(self, item, spider):
        self.items.append(item)
        return item

    async def close(self, spider: Spider) -> None:
        self.closed = True


class RecordingSpider(Spider):
    """Fetches ``urls``; records what reached ``parse`` and the errback; yields ``{"path": ...}`` per page."""

    def __init__(self, urls: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.urls = urls
        self.parsed: list[Response] = []
        self.failures: list[Failure] = []

    async def start(self):
        for url in self.urls:
            yield Request(url, errback=self.on_error, dont_filter=True)

    async def parse(self, response: Response):
        self.parsed.append(response)
        yield {"path": URL(response.url).path}

    async def on_error(self, failure: Failure):
        self.failures.append(failure)


class RedisServer:
    """A real ``redis-server`` (Debian's package) on 127.0.0.1 and a free port, persistence off.

    ``args`` are extra server options, e.g. ``["--requirepass", "pw"]``; ``tls`` (a PEM
    certificate and its key) serves TLS only, the certificate being its own CA.
    """

    def __init__(
        self, *args: str, password: str | None = None, username: str | None = None, tls: tuple[str, str] | None = None
    ) -> None:
        self.args = list(args)
        self.password = password
        self.username = username
        self.tls = tls
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"{self.username or ''}:{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls[0]}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # CRAWLER_TEST_REDIS_SERVER runs the suite on another server of the protocol (valkey-server, say).
        exe = os.environ.get("CRAWLER_TEST_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(exe):
            raise RuntimeError(f"{exe} is not installed (Debian package redis-server; .ci/run installs it)")
        self.port = free_port()
        listen = ["--port", str(self.port)]
        if self.tls:
            cert, key = self.tls
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key,
                      "--tls-ca-cert-file", cert, "--tls-auth-clients", "no"]
        self._proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", *listen, "--save", "", "--appendonly", "no", *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.command("PING")
                return
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()  # never leave a server behind
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def command(self, *args: str) -> object:
        import redis

        tls = {"ssl": True, "ssl_ca_certs": self.tls[0]} if self.tls else {}
        client = redis.Redis(
            host="127.0.0.1", port=self.port, username=self.username, password=self.password,
            decode_responses=True, **tls,
        )
        try:
            return client.execute_command(*args)
        except redis.ConnectionError as exc:
            raise OSError(str(exc)) from None
        finally:
            client.close()

    def flush(self) -> None:
        self.command("FLUSHALL")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


def free_port() -> int:
    """A port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, stop: Callable[[], None]) -> None:
    """Wait until ``proc`` accepts connections on ``port``; if it exits or takes over 10 s,
    ``stop`` it (never leave a server behind) and raise."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                stop()
                raise RuntimeError(f"{name} did not start on port {port}") from None
            time.sleep(0.05)


class TinyProxy:
    """A real HTTP proxy (Debian's ``tinyproxy``) on 127.0.0.1 and a free port.

    ``auth``: (user, password) it demands (Basic). Every request it forwards carries its
    ``Via`` header, so a test server tells proxied requests from direct ones.
    """

    def __init__(self, workdir: str, *, auth: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        self.auth = auth
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
        if not os.path.exists(exe):
            raise RuntimeError("tinyproxy is not installed (Debian package tinyproxy-bin; .ci/run installs it)")
        self.port = free_port()
        config = os.path.join(self.workdir, "tinyproxy.conf")
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Allow 127.0.0.1",
            "Timeout 30",
            "MaxClients 100",
            "LogLevel Info",
            f"LogFile \"{os.path.join(self.workdir, 'tinyproxy.log')}\"",
            "ViaProxyName \"tinyproxy\"",
        ]
        if self.auth:
            lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
        with open(config, "w") as file:
            file.write("\n".join(lines) + "\n")
        self._proc = subprocess.Popen([exe, "-d", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self._proc, "tinyproxy", self.stop)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None


class MicroSocks:
    """A real SOCKS5 proxy (Debian's ``microsocks``) on 127.0.0.1 and a free port.

    ``auth``: (user, password) it demands. Its outgoing connections leave from ``OUTGOING``
    (127.0.0.3), so a test server tells proxied requests by their client address.
    """

    OUTGOING = "127.0.0.3"


    def __init__(self, workdir: str, *, auth: tuple[str, str] | None = None) -> None:
        self.workdir = workdir
        self.auth = auth
        self.port = 0
        self._log = os.path.join(workdir, "microsocks.log")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"socks5://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = shutil.which("microsocks") or "/usr/bin/microsocks"
        if not os.path.exists(exe):
            raise RuntimeError("microsocks is not installed (Debian package microsocks; .ci/run installs it)")
        self.port = free_port()
        auth = ["-u", self.auth[0], "-P", self.auth[1]] if self.auth else []
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                [exe, "-i", "127.0.0.1", "-p", str(self.port), "-b", self.OUTGOING, *auth],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self._proc, "microsocks", self.stop)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
