"""Run the mock under uvicorn with the fastest loop and parser, and nothing it does not need."""

from __future__ import annotations

import logging

import uvicorn

from anygate.ops.mock_provider.app import DropConnectionError, create_app
from anygate.ops.mock_provider.settings import MockSettings


class _IntendedDrops(logging.Filter):
    """Hide the traceback uvicorn logs when a `drop` fault cuts a connection on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnectionError)


def serve(host: str, port: int, settings: MockSettings) -> None:
    """Serve until SIGINT/SIGTERM; hanging requests get one second before shutdown cuts them."""
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        interface="asgi3",
        lifespan="off",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    # Config installs uvicorn's logging configuration, so the filter goes on afterwards.
    logging.getLogger("uvicorn.error").addFilter(_IntendedDrops())
    uvicorn.Server(config).run()
