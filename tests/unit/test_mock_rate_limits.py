"""The mock's rate limiter (pure, clock in hand), its wire texts, the app around it, the audit."""

from __future__ import annotations

import copy
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.ops.mock_provider import MockSettings, create_app
from anygate.ops.mock_provider.rate_limit_wire import openai_duration, seconds_text
from anygate.ops.mock_provider.rate_limits import RateLimiter, RateLimits
from tests.support.rate_audit import max_in_window

OPENAI = {"Authorization": "Bearer k"}
GEMINI = {"x-goog-api-key": "k"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CONTENTS = {"contents": [{"parts": [{"text": "hi"}]}]}
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


def limiter(rpm: int | None = None, tpm: int | None = None, window_s: float = 1.0) -> RateLimiter:
    return RateLimiter(RateLimits(rpm, tpm, window_s))


# -- the limiter --------------------------------------------------------------------------------


def test_requests_over_the_limit_are_refused_until_the_oldest_leaves_the_window() -> None:
    limits = limiter(rpm=3)
    assert [limits.check("k", 1, t).admitted for t in (0.0, 0.1, 0.2)] == [True] * 3

    refused = limits.check("k", 1, 0.3)

    assert (refused.admitted, refused.refused_by) == (False, "requests")
    assert refused.retry_after_s == pytest.approx(0.7)
    assert (refused.used_requests, refused.remaining_requests) == (3, 0)
    assert not limits.check("k", 1, 0.999).admitted
    assert limits.check("k", 1, 1.0).admitted, "the request at 0.0 stops counting at 1.0"


def test_a_refused_request_is_charged_nothing() -> None:
    limits = limiter(rpm=1, tpm=10)
    limits.check("k", 4, 0.0)
    for t in (0.1, 0.2, 0.3):
        assert not limits.check("k", 4, t).admitted

    again = limits.check("k", 10, 1.0)

    assert again.admitted
    assert again.remaining_tokens == 0


def test_tokens_over_the_limit_wait_for_enough_old_tokens_to_expire() -> None:
    limits = limiter(tpm=100)
    limits.check("k", 60, 0.0)
    limits.check("k", 30, 0.5)

    refused = limits.check("k", 20, 0.6)

    assert (refused.refused_by, refused.used_tokens, refused.remaining_tokens) == ("tokens", 90, 10)
    assert refused.retry_after_s == pytest.approx(0.4), "the 60 tokens at 0.0 make room"
    assert limits.check("k", 20, 1.0).admitted


def test_a_request_larger_than_the_token_limit_is_too_large_not_throttled() -> None:
    limits = limiter(rpm=5, tpm=100)

    refused = limits.check("k", 101, 0.0)

    assert (refused.admitted, refused.refused_by) == (False, "too_large")
    assert math.isinf(refused.retry_after_s)
    assert limits.check("k", 100, 0.0).admitted, "the refusal charged nothing"


def test_both_limits_exceeded_report_requests_and_wait_for_both() -> None:
    limits = limiter(rpm=2, tpm=10)
    limits.check("k", 1, 0.0)
    limits.check("k", 8, 0.5)

    refused = limits.check("k", 5, 0.6)

    assert refused.refused_by == "requests"
    assert refused.retry_after_s == pytest.approx(0.9), "room for the tokens comes last"


def test_keys_are_limited_independently() -> None:
    limits = limiter(rpm=1)
    assert limits.check("a", 1, 0.0).admitted
    assert limits.check("b", 1, 0.0).admitted
    assert not limits.check("a", 1, 0.5).admitted


def test_headers_report_remaining_room_and_the_time_until_the_window_is_empty() -> None:
    limits = limiter(rpm=3, tpm=100)
    limits.check("k", 10, 0.0)

    decision = limits.check("k", 20, 0.25)

    assert (decision.remaining_requests, decision.remaining_tokens) == (1, 70)
    assert decision.reset_requests_s == decision.reset_tokens_s == pytest.approx(1.0)


def test_an_unlimited_dimension_reports_nothing() -> None:
    decision = limiter(rpm=2).check("k", 10_000, 0.0)

    assert decision.admitted
    assert (decision.remaining_tokens, decision.reset_tokens_s) == (None, 0.0)


def test_settle_changes_what_an_admitted_request_costs() -> None:
    limits = limiter(tpm=10)
    limits.check("k", 10, 0.0)

    limits.settle("k", 0.0, 0)

    assert limits.check("k", 10, 0.5).admitted


def test_new_limits_apply_to_what_was_already_charged_and_clear_forgets_it() -> None:
    limits = limiter(rpm=5)
    limits.check("k", 1, 0.0)
    limits.check("k", 1, 0.0)
    limits.limits = RateLimits(rpm=2, window_s=1.0)
    assert not limits.check("k", 1, 0.1).admitted

    limits.clear()

    assert limits.check("k", 1, 0.1).admitted


def test_a_clock_stepping_back_counts_the_request_at_the_latest_charge() -> None:
    limits = limiter(rpm=2)
    limits.check("k", 1, 5.0)

    decision = limits.check("k", 1, 4.0)

    assert (decision.admitted, decision.at) == (True, 5.0)
    assert not limits.check("k", 1, 5.5).admitted


_STEPS = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0, 1.5)),
        st.integers(0, 30),
        st.sampled_from(["a", "b"]),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    rpm=st.none() | st.integers(1, 5),
    tpm=st.none() | st.integers(1, 60),
    window=st.sampled_from([0.5, 1.0, 2.5]),
    steps=_STEPS,
)
def test_never_more_than_the_limits_in_any_window_and_no_refusal_without_cause(
    rpm: int | None, tpm: int | None, window: float, steps: list[tuple[float, int, str]]
) -> None:
    limits = limiter(rpm, tpm, window)
    admitted: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
    now = 0.0
    for gap, cost, key in steps:
        now += gap
        decision = limits.check(key, cost, now)
        live = [e for e in admitted[key] if e["arrived_at"] + window > now]
        if decision.admitted:
            admitted[key].append({"arrived_at": now, "tokens": cost})
            continue
        if decision.refused_by == "too_large":
            assert tpm is not None
            assert cost > tpm
            continue
        if decision.refused_by == "requests":
            assert rpm is not None
            assert len(live) >= rpm
        else:
            assert tpm is not None
            assert sum(e["tokens"] for e in live) + cost > tpm
        retried = copy.deepcopy(limits)
        assert retried.check(key, cost, now + decision.retry_after_s + 1e-9).admitted
    for entries in admitted.values():
        if rpm is not None:
            assert max_in_window(entries, window) <= rpm
        if tpm is not None:
            assert max_in_window(entries, window, tokens=True) <= tpm


# -- the audit helper ---------------------------------------------------------------------------


def test_audit_windows_are_half_open_like_the_limiter() -> None:
    entries = [{"arrived_at": t, "status": 200, "tokens": 5} for t in (0.0, 0.5, 1.0, 1.2)]

    assert max_in_window(entries, 1.0) == 3, "1.0 is outside [0.0, 1.0) but in [0.5, 1.5)"
    assert max_in_window(entries, 1.0, tokens=True) == 15
    assert max_in_window(entries, 0.1) == 1


def test_audit_filters_by_status_and_skips_entries_without_a_time() -> None:
    entries: list[dict[str, Any]] = [
        {"arrived_at": 0.0, "status": 200, "tokens": 3},
        {"arrived_at": 0.1, "status": 429, "tokens": 0},
        {"arrived_at": None, "status": None, "tokens": 0},
        {"arrived_at": 0.2, "started_at": 0.2, "status": 200, "tokens": 4},
    ]

    assert max_in_window(entries, 1.0) == 3
    assert max_in_window(entries, 1.0, statuses={200}) == 2
    assert max_in_window(entries, 1.0, statuses={429}) == 1
    assert max_in_window(entries, 1.0, at="started_at") == 1
    assert max_in_window([], 1.0) == 0


@given(
    times=st.lists(st.sampled_from([x / 4 for x in range(20)]), max_size=30),
    window=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
)
def test_audit_matches_a_brute_force_count(times: list[float], window: float) -> None:
    entries = [{"arrived_at": t, "tokens": i} for i, t in enumerate(times)]
    starts = [x / 8 - 3 for x in range(80)]
    brute = max(
        (sum(1 for t in times if s <= t < s + window) for s in starts),
        default=0,
    )
    brute_tokens = max(
        (sum(i for i, t in enumerate(times) if s <= t < s + window) for s in starts),
        default=0,
    )

    assert max_in_window(entries, window) == brute
    assert max_in_window(entries, window, tokens=True) == brute_tokens


# -- the wire texts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0166, "17ms"),
        (0.4, "400ms"),
        (1.2, "1.2s"),
        (9.816, "9.816s"),
        (360, "6m0s"),
        (61, "1m1s"),
    ],
)
def test_openai_durations_read_like_openai_headers(seconds: float, text: str) -> None:
    assert openai_duration(seconds) == text


def test_seconds_round_up_to_the_millisecond() -> None:
    assert (seconds_text(1.2), seconds_text(0.0001), seconds_text(2.0)) == ("1.2", "0.001", "2")


# -- the app ------------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(MockSettings(prompt_tokens=10, completion_tokens=5))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mock") as http:
        yield http


async def _limit(client: httpx.AsyncClient, **changes: Any) -> None:
    fields = {f"rate_limit_{name}": value for name, value in changes.items()}
    (await client.post("/_mock/settings", json=fields)).raise_for_status()


async def _log(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = (await client.get("/_mock/requests")).json()["data"]
    return data


async def test_without_limits_nothing_is_refused_but_usage_is_logged(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        response = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)
        assert response.status_code == 200
        assert "x-ratelimit-limit-requests" not in response.headers

    assert [entry["tokens"] for entry in await _log(client)] == [15] * 5


async def test_a_faulted_request_counts_but_bills_no_tokens(client: httpx.AsyncClient) -> None:
    await _limit(client, rpm=2, tpm=100, window_s=60)
    (await client.post("/_mock/faults", json={"fault": "500", "times": 1})).raise_for_status()

    statuses = [
        (await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)).status_code
        for _ in range(3)
    ]

    assert statuses == [500, 200, 429]
    entries = await _log(client)
    assert [(e["tokens"], e["fault"], e["rate_limited"]) for e in entries] == [
        (0, "500", None),
        (15, None, None),
        (0, None, "requests"),
    ]


async def test_unmetered_and_rejected_requests_are_not_limited(client: httpx.AsyncClient) -> None:
    await _limit(client, rpm=1, window_s=60)

    answers = [
        await client.get("/v1/models", headers=OPENAI),
        await client.post("/v1/chat/completions", json=CHAT),
        await client.post("/v1/chat/completions", json={"model": "m"}, headers=OPENAI),
        await client.post(
            "/v1beta/models/gemini-2.5-flash:countTokens", json=CONTENTS, headers=GEMINI
        ),
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI),
    ]

    assert [answer.status_code for answer in answers] == [200, 401, 400, 200, 200]
    assert [entry["tokens"] for entry in await _log(client)] == [0, 0, 0, 0, 15]


async def test_each_provider_and_key_has_its_own_limits(client: httpx.AsyncClient) -> None:
    await _limit(client, rpm=1, window_s=60)

    answers = [
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI),
        await client.post(GENERATE, json=CONTENTS, headers=GEMINI),
        await client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer j"}),
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI),
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    fingerprints = [entry["key_fingerprint"] for entry in await _log(client)]
    assert fingerprints[0] == fingerprints[1] == fingerprints[3] != fingerprints[2]
    assert all(len(fp) == 8 and fp != "k" for fp in fingerprints)


async def test_per_model_limits_keep_models_apart(client: httpx.AsyncClient) -> None:
    await _limit(client, rpm=1, window_s=60, per_model=True)
    other = {**CHAT, "model": "gpt-4o"}

    answers = [
        await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI),
        await client.post("/v1/chat/completions", json=other, headers=OPENAI),
        await client.post("/v1/chat/completions", json=other, headers=OPENAI),
    ]

    assert [answer.status_code for answer in answers] == [200, 200, 429]


async def test_reset_forgets_charges_and_restores_the_start_settings(
    client: httpx.AsyncClient,
) -> None:
    await _limit(client, rpm=1, window_s=60)
    await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)

    reset = await client.post("/_mock/reset")
    await _limit(client, rpm=1, window_s=60)

    assert reset.json()["rate_limit_rpm"] is None
    response = await client.post("/v1/chat/completions", json=CHAT, headers=OPENAI)
    assert response.status_code == 200
    assert len(await _log(client)) == 1


async def test_invalid_limits_are_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/_mock/settings", json={"rate_limit_rpm": 0})

    assert response.status_code == 400
    assert "rate_limit_rpm" in response.json()["error"]["message"]


async def test_gemini_embeddings_are_charged_their_fixed_prompt_tokens(
    client: httpx.AsyncClient,
) -> None:
    await _limit(client, tpm=25, window_s=60)
    embed = "/v1beta/models/gemini-embedding-001:embedContent"
    body = {"content": {"parts": [{"text": "hello there"}]}}

    statuses = [(await client.post(embed, json=body, headers=GEMINI)).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert [entry["tokens"] for entry in await _log(client)] == [10, 10, 0]
