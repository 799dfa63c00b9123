"""The ASGI app in process: routing, auth, error shapes, control endpoints and the request log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from anygate.ops.mock_provider import MockSettings, create_app
from anygate.ops.mock_provider.app import MockApp

OPENAI = {"Authorization": "Bearer k"}
GEMINI = {"x-goog-api-key": "k"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CONTENTS = {"contents": [{"parts": [{"text": "hi"}]}]}


@pytest.fixture
def app() -> MockApp:
    return create_app(MockSettings(api_key="k"))


@pytest.fixture
async def client(app: MockApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:
        yield http


async def test_health_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/_mock/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_openai_missing_key_is_401_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT)

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_openai_wrong_key_is_401_invalid_api_key(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"}
    )

    assert (response.status_code, response.json()["error"]["code"]) == (401, "invalid_api_key")


async def test_openai_bad_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b"{nope", headers=OPENAI)

    assert (response.status_code, response.json()["error"]["type"]) == (
        400,
        "invalid_request_error",
    )


async def test_openai_missing_field_is_400_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "m"}, headers=OPENAI)

    assert (response.status_code, response.json()["error"]["param"]) == (400, "messages")


async def test_gemini_missing_key_is_401_unauthenticated(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1beta/models/gemini-2.5-flash:generateContent", json=CONTENTS)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_gemini_wrong_key_is_400_api_key_invalid(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1beta/models/gemini-2.5-flash:generateContent?key=nope", json=CONTENTS
    )

    assert (response.status_code, response.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")


async def test_gemini_key_may_come_as_query_parameter(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1beta/models/gemini-2.5-flash:generateContent?key=k", json=CONTENTS
    )

    assert response.status_code == 200


async def test_gemini_bad_json_is_400_in_google_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1beta/models/m:generateContent", content=b"[", headers=GEMINI)

    assert response.json()["error"]["code"] == 400


async def test_v1_models_with_google_key_lists_gemini_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models", headers=GEMINI)

    assert "models" in response.json()


async def test_v1_models_with_bearer_key_lists_openai_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models", headers=OPENAI)

    assert response.json()["object"] == "list"


async def test_openai_model_retrieve_returns_the_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/gpt-4o", headers=OPENAI)

    assert response.json()["id"] == "gpt-4o"


async def test_unknown_openai_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/nothing", json={}, headers=OPENAI)

    assert response.status_code == 404


async def test_unknown_gemini_action_is_404_in_google_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1beta/models/m:dance", json={}, headers=GEMINI)

    assert (response.status_code, response.json()["error"]["status"]) == (404, "NOT_FOUND")


async def test_gemini_sse_events_end_with_crlf_pairs(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1beta/models/m:streamGenerateContent?alt=sse", json=CONTENTS, headers=GEMINI
    )

    events = response.content.split(b"\r\n\r\n")
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == b""
    assert all(event.startswith(b"data: {") for event in events[:-1])


async def test_gemini_stream_without_sse_is_one_json_array(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1beta/models/m:streamGenerateContent", json=CONTENTS, headers=GEMINI
    )

    assert len(orjson.loads(response.content)) == 8


async def test_openai_stream_ends_with_done(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions", json={**CHAT, "stream": True}, headers=OPENAI
    )

    assert response.content.endswith(b"data: [DONE]\n\n")


async def test_error_fault_rule_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json=[{"fault": "429", "retry_after": 7}])

    response = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    assert (response.status_code, response.headers["retry-after"]) == (429, "7")
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_gemini_429_fault_has_retry_info(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "429", "retry_after": 2})

    response = await client.post("/v1beta/models/m:generateContent", json=CONTENTS, headers=GEMINI)

    details = response.json()["error"]["details"]
    assert response.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert details[0]["retryDelay"] == "2s"


async def test_malformed_fault_sends_unparseable_unary_body(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json=[{"fault": "malformed"}])

    response = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


async def test_fault_rules_can_be_listed_and_cleared(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json=[{"fault": "500", "times": 2}])

    listed = (await client.get("/_mock/faults")).json()["data"]
    await client.delete("/_mock/faults")

    assert listed[0]["fault"] == "500"
    assert (await client.get("/_mock/faults")).json() == {"data": []}


async def test_invalid_fault_rule_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/faults", json=[{"fault": "nope"}])

    assert response.status_code == 400


async def test_faults_do_not_hit_requests_that_already_failed(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json=[{"fault": "500", "times": 1}])

    unauthorised = await client.post("/v1/chat/completions", json=CHAT)
    answered = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    assert (unauthorised.status_code, answered.status_code) == (401, 500)


async def test_settings_update_changes_chunk_count(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/settings", json={"chunk_count": 3})

    response = await client.post(
        "/v1beta/models/m:streamGenerateContent", json=CONTENTS, headers=GEMINI
    )

    assert len(orjson.loads(response.content)) == 3


async def test_settings_view_hides_the_api_key(client: httpx.AsyncClient) -> None:
    view = (await client.get("/_mock/settings")).json()

    assert "api_key" not in view
    assert view["api_key_required"] is True


async def test_settings_update_rejects_startup_only_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/settings", json={"api_key": "other"})

    assert response.status_code == 400


async def test_settings_update_rejects_invalid_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/settings", json={"chunk_count": 0})

    assert response.status_code == 400
    assert (await client.get("/_mock/settings")).json()["chunk_count"] == 8


async def test_request_log_records_provider_requests_but_not_keys(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=OPENAI)
    await client.post("/v1beta/models/gemini-2.5-flash:generateContent?key=k", json=CONTENTS)

    entries = (await client.get("/_mock/requests")).json()["data"]

    assert [(e["provider"], e["model"], e["stream"], e["status"]) for e in entries] == [
        ("openai", "gpt-4o-mini", True, 200),
        ("gemini", "gemini-2.5-flash", False, 200),
    ]
    assert entries[0]["body"] == {**CHAT, "stream": True}
    assert "key=k" not in orjson.dumps(entries).decode()


async def test_request_log_id_matches_the_x_request_id_header(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    entries = (await client.get("/_mock/requests")).json()["data"]

    assert entries[-1]["id"] == response.headers["x-request-id"]


async def test_request_log_limit_returns_the_newest_entries(client: httpx.AsyncClient) -> None:
    for model in ("a", "b", "c"):
        await client.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=OPENAI)

    entries = (await client.get("/_mock/requests?limit=2")).json()["data"]

    assert [entry["model"] for entry in entries] == ["b", "c"]


async def test_request_log_clears(client: httpx.AsyncClient) -> None:
    await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    await client.delete("/_mock/requests")

    assert (await client.get("/_mock/requests")).json() == {"data": []}


async def test_request_log_is_bounded() -> None:
    app = create_app(MockSettings(request_log_size=2))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://mock"
    ) as http:
        for _ in range(5):
            await http.get("/v1/models", headers=OPENAI)

        entries = (await http.get("/_mock/requests")).json()["data"]

    assert [entry["id"] for entry in entries] == ["req_4", "req_5"]
