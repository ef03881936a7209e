"""The library's logger: structlog events routed through the stdlib logger ``crawler``.

The library never configures logging. Events go to ``logging.getLogger("crawler")`` as
records whose message is the event name and whose ``extra`` holds the event's keys, so a host
program decides what it sees with ordinary logging configuration. The logger carries a
``NullHandler`` (the stdlib's rule for libraries), so with no configuration at all nothing is
printed, rather than bare event names from Python's last-resort handler. ``log_formatter()``
renders the events with their fields for a host's own handler; the CLI uses it too.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, cast

import structlog

__all__ = ["get_logger", "log_formatter"]

STDLIB_LOGGER = logging.getLogger("crawler")
STDLIB_LOGGER.addHandler(logging.NullHandler())


def get_logger(**initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to ``initial`` that emits through :data:`STDLIB_LOGGER`."""
    return cast(
        structlog.stdlib.BoundLogger,
        structlog.wrap_logger(
            STDLIB_LOGGER,
            processors=[structlog.stdlib.filter_by_level, structlog.stdlib.render_to_log_kwargs],
            wrapper_class=structlog.stdlib.BoundLogger,
            **initial,
        ),
    )


def debug_enabled() -> bool:
    """Cheap check before building a per-request DEBUG event on the hot path."""
    return STDLIB_LOGGER.isEnabledFor(logging.DEBUG)


def log_formatter(style: Literal["console", "json"] = "console", *, colors: bool = False) -> logging.Formatter:
    """A ``logging.Formatter`` that renders crawler events with their fields.

    ``console``: ``2026-01-01T12:00:00Z [warning] request_failed url=... reason=timeout``;
    ``json``: one JSON object per line. Records from other loggers render the same way.
    """
    if style not in ("console", "json"):
        raise ValueError(f"log style must be 'console' or 'json', got {style!r}")
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=colors) if style == "console" else structlog.processors.JSONRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
