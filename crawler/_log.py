"""The library's logger: structlog events routed through the stdlib logger ``crawler``.

The library never configures logging. Events go to ``logging.getLogger("crawler")`` as
records whose message is the event name and whose ``extra`` holds the event's keys, so a host
program decides what it sees with ordinary logging configuration; with none, Python shows only
warnings and errors. The CLI adds a handler that renders the events (console or JSON).
"""

from __future__ import annotations

import logging

import structlog

__all__ = ["get_logger"]

STDLIB_LOGGER = logging.getLogger("crawler")


def get_logger(**initial: object) -> structlog.stdlib.BoundLogger:
    return structlog.wrap_logger(
        STDLIB_LOGGER,
        processors=[structlog.stdlib.filter_by_level, structlog.stdlib.render_to_log_kwargs],
        wrapper_class=structlog.stdlib.BoundLogger,
        **initial,
    )


def debug_enabled() -> bool:
    """Cheap check before building a per-request DEBUG event on the hot path."""
    return STDLIB_LOGGER.isEnabledFor(logging.DEBUG)
