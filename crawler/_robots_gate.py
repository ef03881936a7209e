"""The robots.txt gate: requests wait for their origin's rules, and the rules' own fetches.

The frontier hands every accepted request to :meth:`RobotsGate.check`. With the origin's
rules known, the request is queued or filtered (``robots``); with the origin unavailable it
fails (``robots_unavailable``); otherwise it is parked, holding no worker, and one robots.txt
request is queued for the origin. That request is the gate's own: the engine settles its
outcome through the frontier, which hands it back here (:meth:`loaded`, :meth:`failed`),
never to the spider, and it is no page: no ``max_pages``, no ``handle_statuses``, at most
``MAX_ROBOTS_REDIRECTS`` hops (set in its ``meta``, as any request may).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._failure import Failure
from ._request import Request
from ._response import Response
from ._robots import MAX_ROBOTS_BYTES, MAX_ROBOTS_REDIRECTS, RobotsCache, origin_of

if TYPE_CHECKING:
    from ._frontier import Frontier

__all__ = ["RobotsGate"]

_ROBOTS_PRIORITY = 1 << 30


class RobotsGate:
    """robots.txt for one crawl, on behalf of its :class:`Frontier`."""

    def __init__(self, frontier: Frontier, user_agent: str, clock: Callable[[], float]) -> None:
        self._frontier = frontier
        self._cache = RobotsCache(user_agent, clock)
        self._parked: dict[str, list[Request]] = {}  # origin -> requests waiting for its robots.txt

    def check(self, request: Request, *, by_caller: bool) -> str | None:
        """Queue, park or end ``request`` by its origin's robots.txt; the reason it ended, if it did.

        ``by_caller``: called from ``Frontier.add``, whose caller gets the reason back (and
        logs the page's summary, refunds a redirect hop); else a parked request is being
        released, and its outcome is wholly settled here.
        """
        frontier = self._frontier
        origin = origin_of(request.url)
        verdict = self._cache.verdict(origin, request.url)
        if verdict is True:
            frontier._push(request)
            return None
        if verdict is False:
            frontier._stats.filtered(request, "robots", by_caller=by_caller)
            if not by_caller:
                self._refund(request)
            frontier.finish(request)  # accepted (and stored) before this verdict: its chain ends
            return "robots"
        why = self._cache.unavailable(origin)
        if why is not None:
            if not by_caller:
                self._refund(request)
            frontier._on_failure(request, "robots_unavailable", why)
            return "robots_unavailable"
        self._park(request, origin)
        return None

    def _park(self, request: Request, origin: str) -> None:
        """``request`` waits (holding no worker) for its origin's rules, fetched once."""
        parked = self._parked.get(origin)
        if parked is None:
            parked = self._parked[origin] = []
            self._frontier._push(self._fetch(origin, request.domain))
        parked.append(request)
        self._frontier._stats.queued += 1

    def admit(self, request: Request) -> bool:
        """At hand-out, from a shared store (see ``Frontier``): True when ``request`` may go
        now; else it was parked (it goes back to the store once the rules are known) or it
        ended here (filtered ``robots``, or failed ``robots_unavailable``)."""
        origin = origin_of(request.url)
        verdict = self._cache.verdict(origin, request.url)
        if verdict is True:
            return True
        if verdict is None and self._cache.unavailable(origin) is None:
            self._park(request, origin)
            return False
        self.check(request, by_caller=False)  # filtered or failed (refunded), its outcome recorded
        return False

    def _fetch(self, origin: str, domain: str) -> Request:
        fetch = Request(
            origin + "/robots.txt",
            dont_filter=True,
            priority=_ROBOTS_PRIORITY,
            meta={
                "max_response_bytes": MAX_ROBOTS_BYTES,
                "truncate_body": True,
                "max_redirects": MAX_ROBOTS_REDIRECTS,
                "handle_statuses": [],  # a 404 here is an answer about rules, never the spider's
                "robots_origin": origin,
                "robots_domain": domain,
            },
        )
        fetch.internal = True
        fetch.domain = domain
        return fetch

    def _refund(self, request: Request) -> None:
        """A request released (or handed out) that ends here ends its chain without a page:
        a redirect hop always gets its page back; with a shared store, whose requests are
        checked once claimed (their page taken from max_pages), any request does. Before the
        chain's end is recorded: a shared store sends the refund with it."""
        if request.redirects or self._frontier._shared:
            self._frontier.refund_page(request)

    # -- the outcome of a robots.txt fetch --------------------------------------------------

    def loaded(self, response: Response) -> None:
        origin = response.request.meta["robots_origin"]
        rules = self._cache.loaded(origin, response.body)
        floor = rules.min_interval()
        if floor:
            self._frontier._pacer.set_floor(response.request.meta["robots_domain"], floor)
        self._release(origin)

    def failed(self, failure: Failure) -> None:
        origin = failure.request.meta["robots_origin"]
        status = failure.response.status if failure.response is not None else None
        client_error = status is not None and 400 <= status < 500 and status != 429
        if failure.reason in ("max_redirects", "bad_url", "blocked_address") or client_error:
            # RFC 9309 2.3.1.3: an "unavailable" robots.txt (4xx, more than 5 redirects, or a
            # redirect we cannot follow) means there are no rules. (An origin the private-
            # network guard refuses: its requests then fail as blocked_address themselves.)
            self._cache.allow_all(origin)
        else:
            # 5xx/429/unreachable after retries
            error = failure.exception.__cause__ or failure.exception if failure.exception is not None else None
            why = f"{origin}/robots.txt: {failure.reason}" + (f" ({error})" if error is not None else "")
            self._cache.mark_unavailable(origin, why)
        self._release(origin)

    def _release(self, origin: str) -> None:
        frontier = self._frontier
        for request in self._parked.pop(origin, ()):
            frontier._stats.queued -= 1
            if frontier.closed:
                frontier._stats.count_filtered(frontier.close_reason or "closed")
            else:
                self.check(request, by_caller=False)
        frontier._wakeup.set()

    # -- for the frontier ------------------------------------------------------------------

    def waiting(self) -> bool:
        """Requests are parked for a robots.txt."""
        return bool(self._parked)

    def drop(self) -> int:
        """The crawl closed: forget the parked requests (a durable store keeps them); how many."""
        dropped = sum(len(parked) for parked in self._parked.values())
        self._parked.clear()
        return dropped
