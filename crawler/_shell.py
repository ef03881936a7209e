"""``python -m crawler shell URL``: a prompt with a fetched page, to try selectors on.

The page is fetched as a crawl would fetch it (robots.txt, the User-Agent, the settings'
layers, those of ``--spider FILE`` too). The prompt is IPython's when it is installed, else
the standard library's; in it: ``response``, ``request``, ``fetch(url_or_request)`` (fetches
another page and makes it ``response``), ``view(response)`` (writes the body to a temporary
file and prints its path), and ``spider`` with ``--spider``.
"""

from __future__ import annotations

import code
import tempfile
from typing import Any

from ._exceptions import RequestFailed
from ._oneliner import fetch as fetch_page
from ._request import Request
from ._response import Response
from ._settings import Settings

__all__ = ["shell"]

BANNER = """crawler shell: {status} {url}
  response, request      the page fetched, and its request
  fetch(url_or_request)  fetch another page (it becomes response)
  view(response)         write the body to a file and print its path
  response.css("title::text").get(), response.xpath("//a/@href").getall() ..."""


def shell(url: str | None, settings: Settings, spider: Any = None) -> None:
    """Open the prompt (fetching ``url`` first, if given); returns when the user leaves it."""
    namespace: dict[str, Any] = {"spider": spider, "Request": Request, "settings": settings}

    def fetch(target: str | Request) -> Response | None:
        page_url = target.url if isinstance(target, Request) else target
        try:
            response = fetch_page(page_url, settings)
        except RequestFailed as exc:
            print(f"no response: {exc}")
            return None
        namespace["response"], namespace["request"] = response, response.request
        print(f"{response.status} {response.url} ({len(response.body):,} bytes)")
        return response

    def view(response: Response | None = None) -> str:
        response = response or namespace.get("response")
        if response is None:
            raise ValueError("no response to view: fetch(url) first")
        suffix = ".html" if "html" in response.headers.get("Content-Type", "html") else ".bin"
        with tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False, prefix="crawler-view-") as file:
            file.write(response.body)
        print(file.name)
        return file.name

    namespace.update(fetch=fetch, view=view, response=None, request=None)
    if url:
        fetch(url)
    response = namespace["response"]
    banner = BANNER.format(
        status=response.status if response is not None else "-", url=response.url if response is not None else url
    )
    try:
        from IPython import start_ipython  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        code.interact(banner=banner, local=namespace, exitmsg="")
        return
    print(banner)
    start_ipython(argv=["--no-banner"], user_ns=namespace)
