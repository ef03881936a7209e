"""Retries: tenacity decides, the frontier waits.

:class:`RetryPolicy` asks tenacity whether a failure retries (connection errors, timeouts,
truncated bodies, 5xx, 408, 429), whether attempts are used up (``retries``), and how long to
back off (exponential with jitter, ``backoff_base`` .. ``backoff_max``). It never sleeps: the
:class:`RetryMiddleware` returns a copy of the request with a ``not_before`` time, and the
frontier holds it, occupying no worker, until then.

A 429 or 503 with ``Retry-After`` (seconds or an HTTP-date) pauses the whole domain until
then. A ``Retry-After`` longer than ``retry_after_max`` fails the request with reason
``retry_after_too_long``; the domain still rests ``retry_after_max``. An unparsable or
negative ``Retry-After`` is ignored (plain backoff applies); one in the past means "now".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import tenacity

from ._exceptions import RequestFailed
from ._log import get_logger
from ._middleware import BaseMiddleware
from ._request import Request
from ._response import Response
from ._settings import Settings

__all__ = ["RetryMiddleware", "RetryPolicy", "parse_retry_after"]

RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
#: Failures worth another attempt (a proxy that failed may be resting by then: another one is tried).
RETRY_REASONS = frozenset({"timeout", "connection_error", "server_disconnected", "incomplete_body", "proxy_error"})
#: The server says it is overloaded: the domain pauses (Retry-After) and its rate halves.
PAUSE_STATUSES = frozenset({429, 503})


class _RetryableStatus(Exception):
    """Stands for a retryable HTTP status in tenacity's outcome (tenacity judges outcomes)."""


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, _RetryableStatus):
        return True
    return isinstance(exc, RequestFailed) and exc.reason in RETRY_REASONS


class RetryPolicy:
    def __init__(self, settings: Settings) -> None:
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.retries + 1),
            # base * 2**(attempt-1), capped at backoff_max, plus up to backoff_base of jitter
            wait=tenacity.wait_exponential(multiplier=settings.backoff_base, max=settings.backoff_max)
            + tenacity.wait_random(0, settings.backoff_base),
            retry=tenacity.retry_if_exception(_is_retryable),
        )

    def backoff(self, attempt: int, failure: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` when it must not retry."""
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = attempt
        outcome = tenacity.Future(attempt)
        outcome.set_exception(failure)
        state.outcome = outcome
        if not self._retrying.retry(state) or self._retrying.stop(state):
            return None
        return float(self._retrying.wait(state))

    def backoff_status(self, attempt: int, status: int) -> float | None:
        if status not in RETRY_STATUSES:
            return None
        return self.backoff(attempt, _RetryableStatus(status))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or ``None`` if absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone accepts superscripts and non-ASCII digits
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


class RetryMiddleware(BaseMiddleware):
    """Turns retryable failures into delayed retries and honours ``Retry-After``."""

    def __init__(
        self,
        settings: Settings,
        *,
        pause_domain: Callable[[Request, float], None],
        clock: Callable[[], float],
    ) -> None:
        self._policy = RetryPolicy(settings)
        self._retry_after_max = settings.retry_after_max
        self._pause = pause_domain
        self._clock = clock
        self._log = get_logger()

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        status = response.status
        if status not in RETRY_STATUSES:
            return response
        wait = self._policy.backoff_status(request.attempt, status)
        server_wait = (
            parse_retry_after(response.headers.get("Retry-After")) if status in PAUSE_STATUSES else None
        )
        if server_wait is not None:
            if server_wait > self._retry_after_max:
                self._pause(request, self._retry_after_max)
                raise RequestFailed(
                    "retry_after_too_long",
                    f"server asked to wait {server_wait:.0f}s, more than retry_after_max",
                    request=request,
                )
            self._pause(request, server_wait)
            self._log.info(
                "domain_paused", url=request.url, domain=request.domain, status=status, delay_s=server_wait
            )
            if wait is not None:
                wait = max(wait, server_wait)
        if wait is None:
            return response  # attempts used up: the engine records http_<status>
        return self._retry(request, wait, f"http_{status}")

    async def process_exception(self, request: Request, exc: Exception) -> Request | None:
        wait = self._policy.backoff(request.attempt, exc)
        if wait is None:
            return None
        return self._retry(request, wait, getattr(exc, "reason", type(exc).__name__))

    def _retry(self, request: Request, wait: float, reason: str) -> Request:
        self._log.debug(
            "retry",
            url=request.url,
            domain=request.domain,
            attempt=request.attempt,
            delay_s=round(wait, 3),
            reason=reason,
        )
        return request.replace(attempt=request.attempt + 1, not_before=self._clock() + wait)
