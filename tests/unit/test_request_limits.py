"""Request hardening (docs/api.md#bad-input-and-request-limits): JSON nested too deeply is a 400
``json_too_deep`` before any validation; too many or too large headers a 431, too long a URL a 414;
everything else passes through untouched (same scope, same receive, body never read)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from anygate.api.errors import EXCEPTION_HANDLERS
from anygate.api.limits import RequestLimitsMiddleware
from anygate.api.middleware import RequestIdMiddleware
from anygate.broker.errors import InvalidRequestError
from anygate.config import ServerConfig
from anygate.core.body import nested_deeper_than, parse_json_object

# --- JSON depth ------------------------------------------------------------------------------


def nest(levels: int, *, kind: str = "array") -> bytes:
    """``{"x": ...}`` holding ``levels - 1`` more levels: ``levels`` in all."""
    inner = levels - 1
    if kind == "array":
        deep = b"[" * inner + b"1" + b"]" * inner
    else:
        deep = b'{"a":' * inner + b"1" + b"}" * inner
    return b'{"x":' + deep + b"}"


def depth(value: Any) -> int:
    """The reference definition: ``{}`` and ``[]`` are 1, scalars 0."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def too_deep(raw: bytes, limit: int) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as raised:
        parse_json_object(raw, limit)
    return raised.value


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("limit", [1, 2, 8, 64])
def test_depth_at_the_limit_passes_and_one_more_is_refused(kind: str, limit: int) -> None:
    assert depth(parse_json_object(nest(limit, kind=kind), limit)) == limit
    error = too_deep(nest(limit + 1, kind=kind), limit)
    assert error.status == 400
    assert error.code == "json_too_deep"
    assert error.param is None
    assert str(limit) in error.message


def test_the_default_limit_is_64() -> None:
    assert ServerConfig().max_json_depth == 64
    parse_json_object(nest(64))
    assert too_deep(nest(65), 64).code == "json_too_deep"


def test_beyond_orjsons_own_limit_is_still_json_too_deep() -> None:
    """orjson refuses 1024+ levels as a decode error; it is the same problem, named the same."""
    assert too_deep(nest(5000), 64).code == "json_too_deep"
    assert too_deep(nest(5000, kind="object"), 64).code == "json_too_deep"


def test_strings_full_of_brackets_do_not_count() -> None:
    text = '[[[[{{{{ "quoted" \\ ]]]]' * 200
    body = orjson.dumps({"messages": [{"role": "user", "content": text}], "k": {text: text}})
    assert parse_json_object(body, 3)["messages"][0]["content"] == text


def test_breadth_does_not_count() -> None:
    body = orjson.dumps(
        {"input": [[i, i + 1] for i in range(10_000)], "m": {str(i): {} for i in range(500)}}
    )
    parse_json_object(body, 3)
    assert too_deep(body, 2).code == "json_too_deep"


@pytest.mark.parametrize("width", [3, 40, 5000])
@pytest.mark.parametrize("container", ["list", "dict"])
def test_one_deep_child_among_many_scalars_is_found(width: int, container: str) -> None:
    """Wide containers are screened in bulk; a single nested child, wherever it is, still counts."""
    deep: Any = 1
    for _ in range(5):
        deep = [deep]
    for position in (0, width // 2, width - 1):
        children: list[Any] = list(range(width))
        children[position] = deep
        value: Any = (
            children if container == "list" else {str(i): c for i, c in enumerate(children)}
        )
        assert depth({"x": value}) == 7
        assert not nested_deeper_than({"x": value}, 7)
        assert nested_deeper_than({"x": value}, 6)


def test_scalars_and_empty_containers() -> None:
    assert not nested_deeper_than("text", 1)
    assert not nested_deeper_than(None, 1)
    assert not nested_deeper_than({}, 1)
    assert nested_deeper_than({"a": []}, 1)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda children: (
        st.lists(children, max_size=40)
        | st.dictionaries(st.text(max_size=3), children, max_size=40)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=json_values, limit=st.integers(1, 12))
def test_depth_check_agrees_with_the_recursive_definition(value: Any, limit: int) -> None:
    assert nested_deeper_than(value, limit) == (depth(value) > limit)
    raw = orjson.dumps({"v": value})
    if depth(value) + 1 > limit:
        assert too_deep(raw, limit).code == "json_too_deep"
    else:
        assert parse_json_object(raw, limit) == {"v": value}


def test_other_bad_bodies_keep_their_own_errors() -> None:
    assert too_deep(b"[1]", 8).code is None  # not an object
    assert "not valid JSON" in too_deep(b'{"a": [', 8).message
    assert "empty" in too_deep(b"  ", 8).message


async def test_too_deep_answers_400_in_openais_shape() -> None:
    async def handler(request: Request) -> Response:
        return JSONResponse(parse_json_object(await request.body(), 4))

    app = Starlette(
        routes=[Route("/", handler, methods=["POST"])], exception_handlers=EXCEPTION_HANDLERS
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post("/", content=nest(4))).status_code == 200
        response = await client.post("/", content=nest(5))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": None,
        "code": "json_too_deep",
    }


# --- headers and URL -------------------------------------------------------------------------

LIMITS = ServerConfig(max_header_count=10, max_header_bytes=1024, max_url_bytes=300)


class Inner:
    """Records what reached the application."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})


def http_scope(
    headers: list[tuple[bytes, bytes]],
    path: str = "/v1/jobs",
    query: bytes = b"",
    method: str = "GET",
) -> Scope:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
    }


async def never_receive() -> Message:
    raise AssertionError("a refusal must not read the body")


async def run(scope: Scope, inner: Inner | None = None) -> tuple[int, dict[str, Any] | None]:
    """Drive the middleware once; returns the status and the JSON body (``None`` if passed on)."""
    inner = inner or Inner()
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestLimitsMiddleware(inner, LIMITS)(scope, never_receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], orjson.loads(body) if body else None


def headers_of(count: int, value_size: int = 1) -> list[tuple[bytes, bytes]]:
    return [(f"x-h{i:03d}".encode(), b"v" * value_size) for i in range(count)]


def assert_openai_error(body: dict[str, Any] | None, code: str) -> None:
    assert body is not None
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == code
    assert body["error"]["param"] is None


async def test_header_count_at_the_limit_passes_and_one_more_is_431() -> None:
    assert (await run(http_scope(headers_of(10))))[0] == 204
    status, body = await run(http_scope(headers_of(11)))
    assert status == 431
    assert_openai_error(body, "headers_too_large")


async def test_header_bytes_at_the_limit_pass_and_one_more_is_431() -> None:
    headers = headers_of(4, value_size=256 - 6)  # name 6 bytes + value 250 = 256 each: 1024
    assert (await run(http_scope(headers)))[0] == 204
    headers[-1] = (headers[-1][0], headers[-1][1] + b"v")
    status, body = await run(http_scope(headers))
    assert status == 431
    assert_openai_error(body, "headers_too_large")


async def test_one_huge_header_is_431() -> None:
    status, _ = await run(http_scope([(b"cookie", b"c" * 5000)]))
    assert status == 431


async def test_url_at_the_limit_passes_and_longer_is_414() -> None:
    path = "/v1/jobs/" + "j" * (300 - len("/v1/jobs/"))
    assert (await run(http_scope([], path=path)))[0] == 204
    status, body = await run(http_scope([], path=path + "j"))
    assert status == 414
    assert_openai_error(body, "url_too_long")


async def test_the_query_string_counts_towards_the_url() -> None:
    query = b"a=" + b"x" * (300 - len("/v1/jobs?a="))
    assert (await run(http_scope([], query=query)))[0] == 204
    assert (await run(http_scope([], query=query + b"x")))[0] == 414


async def test_the_url_is_measured_as_sent() -> None:
    """Percent-escapes count as the bytes the client sent (``raw_path``), not decoded."""
    scope = http_scope([], path="/v1/jobs/" + "é" * 10)
    scope["raw_path"] = ("/v1/jobs/" + "%C3%A9" * 50).encode()  # 309 bytes as sent
    assert (await run(scope))[0] == 414


@pytest.mark.parametrize(
    ("path", "method", "headers", "query"),
    [
        ("/v1beta/models/gemini-2.5-flash:generateContent", "POST", [], b""),
        ("/v1beta/models", "GET", [], b""),
        ("/v1/models/gemini-2.5-flash:generateContent", "POST", [], b""),
        ("/v1/models", "GET", [(b"x-goog-api-key", b"k")], b""),
        ("/v1/models", "GET", [], b"key=k"),
    ],
)
async def test_the_gemini_surface_is_refused_in_googles_shape(
    path: str, method: str, headers: list[tuple[bytes, bytes]], query: bytes
) -> None:
    scope = http_scope([*headers, *headers_of(11)], path=path, query=query, method=method)
    status, body = await run(scope)
    assert status == 431
    assert body is not None
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == 431
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert "headers" in body["error"]["message"]


async def test_the_openai_models_list_is_refused_in_openais_shape() -> None:
    _, body = await run(http_scope(headers_of(11), path="/v1/models"))
    assert_openai_error(body, "headers_too_large")


async def test_a_normal_request_reaches_the_app_untouched() -> None:
    inner = Inner()
    scope = http_scope(headers_of(5, 100), query=b"status=queued&limit=5", method="POST")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestLimitsMiddleware(inner, LIMITS)(scope, never_receive, send)
    ((seen_scope, seen_receive, seen_send),) = inner.calls
    assert seen_scope is scope
    assert seen_receive is never_receive
    assert seen_send is send
    assert sent[0]["status"] == 204


async def test_non_http_scopes_pass_through() -> None:
    inner = Inner()
    scope: Scope = {"type": "lifespan"}
    await RequestLimitsMiddleware(inner, LIMITS)(scope, never_receive, never_send)
    assert inner.calls[0][0] is scope


async def never_send(_message: Message) -> None:
    raise AssertionError("nothing to send")


async def test_refusals_carry_the_request_id_and_close_the_connection() -> None:
    """As registered in the app: inside ``RequestIdMiddleware``."""

    async def ok(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[Route("/v1/jobs", ok)],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(RequestLimitsMiddleware, server=LIMITS),
        ],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        fine = await client.get("/v1/jobs")
        assert fine.status_code == 200
        assert fine.headers["x-request-id"]
        many = await client.get("/v1/jobs", headers={f"x-h{i}": "v" for i in range(20)})
        assert many.status_code == 431
        assert many.headers["x-request-id"]
        assert many.headers["connection"] == "close"
        assert many.json()["error"]["code"] == "headers_too_large"
        long_url = await client.get(
            "/v1/jobs", params={"q": "x" * 400}, headers={"x-request-id": "abc"}
        )
        assert long_url.status_code == 414
        assert long_url.headers["x-request-id"] == "abc"
        assert long_url.json()["error"]["code"] == "url_too_long"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_json_depth", 0),
        ("max_json_depth", 129),
        ("max_header_count", 7),
        ("max_header_bytes", 100),
        ("max_url_bytes", 70_000),
    ],
)
def test_limits_are_validated(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        ServerConfig.model_validate({field: value})
