"""Console sessions and the guard's pure checks, on fakeredis (docs/console.md#sessions)."""

from __future__ import annotations

import fakeredis
import orjson
import pytest
from starlette.requests import Request

from anygate.api.console.guard import same_origin
from anygate.api.console.live import fragment_event
from anygate.api.console.login import safe_next
from anygate.api.console.sessions import ConsoleSessions, token_digest
from anygate.broker.keys import KeySpace
from anygate.config import ConsoleConfig


def sessions(**config: float) -> tuple[ConsoleSessions, fakeredis.aioredis.FakeRedis]:
    redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
    return ConsoleSessions(redis, KeySpace("t"), ConsoleConfig(**config)), redis  # type: ignore[arg-type]


async def test_redis_holds_the_tokens_digest_not_the_token() -> None:
    store, redis = sessions()
    token, session = await store.open("key_1", "d" * 64)
    keys = [k async for k in redis.scan_iter("*")]
    assert keys == [KeySpace("t").console_session(token_digest(token))]
    assert token not in keys[0]
    stored = await redis.hgetall(keys[0])
    assert token not in str(stored)
    assert await redis.pttl(keys[0]) > 1_700_000
    found = await store.find(token)
    assert found == session
    assert found.csrf_matches(session.csrf)
    assert not found.csrf_matches(None)
    assert not found.csrf_matches(session.csrf[:-1] + "x")


async def test_a_session_past_its_max_age_is_gone() -> None:
    store, redis = sessions(max_age_s=60)
    token, _ = await store.open("key_1", "d" * 64)
    key = KeySpace("t").console_session(token_digest(token))
    await redis.hset(key, "created", 0)  # logged in long ago
    assert await store.find(token) is None
    assert not await redis.exists(key)


async def test_unknown_and_oversized_tokens_find_nothing() -> None:
    store, _ = sessions()
    assert await store.find(None) is None
    assert await store.find("no-such-token") is None
    assert await store.find("x" * 1000) is None


async def test_failed_logins_count_within_the_minute() -> None:
    store, _ = sessions()
    assert await store.failed_logins("127.0.0.1") == 0
    assert await store.note_failed_login("127.0.0.1") == 1
    assert await store.note_failed_login("127.0.0.1") == 2
    assert await store.failed_logins("127.0.0.2") == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/jobs?tenant=acme", "/ui/jobs?tenant=acme"),
        (None, "/ui/"),
        ("", "/ui/"),
        ("https://evil.example/ui/", "/ui/"),
        ("//evil.example/ui/", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        ("/v1/jobs", "/ui/"),
        ("/ui/x?next=https://evil.example", "/ui/"),
    ],
)
def test_after_login_only_a_console_path_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def request_with(headers: dict[str, str]) -> Request:
    raw = [(k.encode(), v.encode()) for k, v in {"host": "gw.local:8080", **headers}.items()]
    return Request({"type": "http", "method": "POST", "path": "/ui/x", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"origin": "http://gw.local:8080"}, True),
        ({"origin": "https://gw.local:8080"}, True),
        ({"origin": "http://evil.example"}, False),
        ({"origin": "http://gw.local:8080.evil.example"}, False),
        ({"origin": "null"}, False),
        ({}, False),
        ({"referer": "http://gw.local:8080/ui/tenants"}, True),
        ({"referer": "http://evil.example/ui/"}, False),
        ({"origin": "https://gw.example", "x-forwarded-host": "gw.example"}, True),
        ({"origin": "https://evil.example", "x-forwarded-host": "gw.example"}, False),
        ({"origin": "https://x", "x-forwarded-host": ""}, False),
    ],
)
def test_a_change_must_come_from_this_site(headers: dict[str, str], allowed: bool) -> None:
    assert same_origin(request_with(headers)) is allowed


def test_a_fragment_event_is_one_json_line() -> None:
    event = fragment_event("lanes", "<tr>\n<td>a</td></tr>")
    head, data, end = event.decode().split("\n", 2)
    assert head == "event: fragment"
    assert orjson.loads(data.removeprefix("data: ")) == {
        "id": "lanes",
        "html": "<tr>\n<td>a</td></tr>",
    }
    assert end == "\n"
