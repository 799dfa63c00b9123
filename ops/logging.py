"""structlog set-up: JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from anygate.core.redaction import RedactingFilter, redact_event


def configure_logging(level: str = "info", *, json: bool | None = None) -> None:
    as_json = (not sys.stderr.isatty()) if json is None else json
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    # httpx logs every request at INFO: a formatted line and a write per upstream call, on the
    # hot path, repeating what our own events already record.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # JSON lines through orjson, written as bytes: a worker writes two lines per job at info,
    # and the stdlib encoder was a third of each line's cost.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(
            serializer=functools.partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS)
        )
        if as_json
        else structlog.dev.ConsoleRenderer()
    )
    factory: Callable[..., Any] = (
        structlog.BytesLoggerFactory(sys.stderr.buffer)
        if as_json
        else structlog.PrintLoggerFactory(sys.stderr)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
