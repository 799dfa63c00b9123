"""Map errors to responses once, at the edge: OpenAI's error shape, status and Retry-After.

Handlers raise ``AnygateError``s; Redis failures become 503 with Retry-After
(docs/api.md#bad-input-and-request-limits: answer quickly, never hang); anything unexpected is a 500
whose message reveals nothing internal.
"""

from __future__ import annotations

import math

import structlog
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from anygate.api.middleware import REQUEST_ID_SCOPE_KEY
from anygate.api.responses import JSONResponse
from anygate.api.sync_call import ClientGoneError
from anygate.broker.errors import AnygateError, NotFoundError, ServiceUnavailableError

log = structlog.get_logger(__name__)


def error_response(exc: AnygateError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.retry_after is not None or exc.status in {429, 503}:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after or 1)))
    return JSONResponse(exc.to_openai(), status_code=exc.status, headers=headers)


async def _anygate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AnygateError)
    return error_response(exc)


async def _redis_error(_request: Request, exc: Exception) -> Response:
    """Redis failed this request: 503 (``redis_watch`` logs an outage, once)."""
    log.debug("request failed on redis", error=type(exc).__name__)
    return error_response(
        ServiceUnavailableError("the job store is unavailable; retry shortly", retry_after=1)
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFoundError("Unknown request URL.", code="unknown_url"))
    if exc.status_code == 405:
        body = {
            "error": {
                "message": "Method not allowed for this URL.",
                "type": "invalid_request_error",
                "param": None,
                "code": "method_not_allowed",
            }
        }
        return JSONResponse(body, status_code=405)
    body = {
        "error": {
            "message": str(exc.detail),
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    return JSONResponse(body, status_code=exc.status_code)


async def _client_gone(_request: Request, _exc: Exception) -> Response:
    """Nobody reads this: the caller left (its job cancelled per policy); 499 as nginx logs it."""
    return Response(status_code=499)


async def _unexpected(request: Request, exc: Exception) -> Response:
    """Starlette answers these outside every middleware, so the request id is added here."""
    request_id = request.scope.get(REQUEST_ID_SCOPE_KEY)
    log.exception("unhandled error", exc_info=exc, request_id=request_id)
    response = error_response(
        AnygateError("internal error; the request id identifies it in our logs")
    )
    if request_id:
        response.headers["x-request-id"] = request_id
    return response


EXCEPTION_HANDLERS: dict[type[Exception] | int, ExceptionHandler] = {
    AnygateError: _anygate_error,
    RedisError: _redis_error,
    HTTPException: _http_error,
    ClientGoneError: _client_gone,
    Exception: _unexpected,
}
