"""Strict durability with replicas: no acknowledgement leaves before the replicas have it.

With ``redis.durability: strict`` and ``redis.min_replicas_acked`` > 0 (the default under
Sentinel), every successful answer (a 202, a job read back in its terminal state, a listing, a
cancel, a file or batch accepted...) waits, before its status line is sent, for the gateway's
durability barrier: one ``PUBLISH`` + ``WAIT`` round trip shared by every answer of the same
event-loop turn (``broker/durability.py``). The answer follows the Redis reply of the call that
made or read its state, so the barrier's write, read after it, carries a replication offset
that covers it. A barrier that fails (too few replicas in time, Redis away) turns the answer
into a 503 with ``Retry-After``: never a silent success. docs/high-availability.md.

Pure ASGI, like the other middleware: it holds back only the first message of a response (its
status and headers), never the body of a stream.
"""

from __future__ import annotations

import structlog
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from anygate.api.errors import error_response
from anygate.broker.errors import ServiceUnavailableError

log = structlog.get_logger(__name__)

UNACKNOWLEDGED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Answers that acknowledge nothing stored: no wait for the replicas."""


class ReplicationWaitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNACKNOWLEDGED_PATHS:
            await self.app(scope, receive, send)
            return
        failed = False

        async def send_after_replicas(message: Message) -> None:
            nonlocal failed
            if failed:
                return  # the body of an answer replaced by the 503
            if message["type"] == "http.response.start" and message["status"] < 400:
                gateway = getattr(scope["app"].state, "gateway", None)
                if gateway is not None:
                    try:
                        await gateway.barrier()
                    except (RedisError, OSError) as exc:
                        failed = True
                        log.warning(
                            "answer withheld: replicas did not confirm", error=str(exc)[:200]
                        )
                        unconfirmed = ServiceUnavailableError(
                            "the job store could not confirm the write on its replicas; "
                            "retry shortly (with the same Idempotency-Key)",
                            retry_after=1,
                        )
                        await error_response(unconfirmed)(scope, receive, send)
                        return
            await send(message)

        await self.app(scope, receive, send_after_replicas)
