"""A job's event stream across dropped connections (docs/client.md#streaming-and-resuming): the
cursor's bookkeeping, then both clients against a scripted gateway whose connections break
mid-body."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from anygate.client import APIConnectionError, JobEvent, NotFoundError, TextDelta
from anygate.client._retry import RetryPolicy
from anygate.client._stream import StreamCursor, event_key
from tests.support.client_kinds import KINDS, open_client, record_pauses

POLICY = RetryPolicy(rng=random.Random(3))


def _chunk(text: str, attempt: int = 1) -> str:
    return json.dumps({"attempt": attempt, "choices": [{"index": 0, "delta": {"content": text}}]})


LOG: list[tuple[str, str, str]] = [
    ("100-0", "queued", "{}"),
    ("101-0", "started", '{"attempt": 1}'),
    ("102-0", "chunk", _chunk("Hel")),
    ("102-1", "chunk", _chunk("lo")),
    ("103-0", "retry", '{"attempt": 2, "reason": "lease_expired"}'),
    ("104-0", "chunk", _chunk("Hello", 2)),
    ("105-0", "chunk", _chunk(" world", 2)),
    ("106-0", "completed", '{"attempt": 2}'),
]


def _sse(entries: list[tuple[str, str, str]]) -> bytes:
    return "".join(f"id: {i}\nevent: {t}\ndata: {d}\n\n" for i, t, d in entries).encode()


class _Breaks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends ``data`` and then breaks as a cut connection does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection: incomplete chunked read")

    async def __aiter__(self) -> Any:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection: incomplete chunked read")


def _after(last: str | None) -> list[tuple[str, str, str]]:
    if last is None:
        return LOG
    return [e for e in LOG if event_key(e[0]) > event_key(last)]


class Gateway:
    """Serves ``LOG`` as the gateway does (after ``Last-Event-ID``); connection ``n`` breaks
    after ``breaks[n]`` events, or ends cleanly there when ``ends`` is set."""

    def __init__(self, breaks: list[int], *, ends: bool = False, replay: int = 0) -> None:
        self.breaks = breaks
        self.ends = ends
        self.replay = replay
        """Events before ``Last-Event-ID`` sent again (a proxy that replays): to be dropped."""
        self.asked: list[str | None] = []
        self.job_status = "succeeded"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/events"):
            return httpx.Response(200, json={"id": "job_1", "status": self.job_status})
        last = request.headers.get("last-event-id")
        connection = len(self.asked)
        self.asked.append(last)
        entries = _after(last)
        if last is not None and self.replay:
            before = [e for e in LOG if event_key(e[0]) <= event_key(last)]
            entries = before[-self.replay :] + entries
        headers = {"content-type": "text/event-stream"}
        if connection < len(self.breaks):
            sent = _sse(entries[: self.breaks[connection]]) + b": keep-alive\n\n"
            if self.ends:
                return httpx.Response(200, content=sent, headers=headers)
            return httpx.Response(200, stream=_Breaks(sent), headers=headers)
        return httpx.Response(200, content=_sse(entries), headers=headers)


def test_the_cursor_hands_each_event_on_once_and_asks_for_what_follows() -> None:
    cursor = StreamCursor(None, POLICY, max_reconnects=2)
    assert cursor.headers() == {}
    first = cursor.accept("100-0", "queued", "{}")
    assert first == JobEvent("100-0", "queued", {})
    assert cursor.accept("100-0", "queued", "{}") is None, "the same id again"
    assert cursor.accept("99-5", "queued", "{}") is None, "an earlier id"
    assert cursor.accept("", "", "") is None, "a keep-alive"
    assert cursor.headers() == {"last-event-id": "100-0"}
    assert not cursor.ended
    cursor.accept("101", "completed", "{}")
    assert cursor.ended, "a terminal event ends the stream"


def test_the_cursor_bounds_reconnections_in_a_row() -> None:
    cursor = StreamCursor("5-0", POLICY, max_reconnects=2)
    assert cursor.reconnect_delay() is not None
    assert cursor.reconnect_delay() is not None
    assert cursor.reconnect_delay() is None, "two reconnections without a new event"
    cursor.accept("6-0", "chunk", _chunk("x"))
    assert cursor.reconnect_delay() is not None, "a new event renews the budget"


def test_a_bad_last_event_id_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="last_event_id"):
        StreamCursor("yesterday", POLICY, max_reconnects=1)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_broken_stream_resumes_after_the_last_event(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    gateway = Gateway(breaks=[3, 2])
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        events = [e async for e in ag.stream("job_1")]
    assert [e.id for e in events] == [e[0] for e in LOG], "each once, in order"
    assert gateway.asked == [None, "102-0", "103-0"]
    assert len(pauses) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_events_a_proxy_replays_are_dropped(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)
    gateway = Gateway(breaks=[4], replay=3)
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        events = [e async for e in ag.stream("job_1")]
    assert [e.id for e in events] == [e[0] for e in LOG]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_that_ends_early_is_resumed(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)
    gateway = Gateway(breaks=[2], ends=True)
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        events = [e async for e in ag.stream("job_1", last_event_id="100-0")]
    assert [e.id for e in events] == [e[0] for e in LOG[1:]]
    assert gateway.asked == ["100-0", "102-0"]


@pytest.mark.parametrize("kind", KINDS)
async def test_resuming_after_the_end_of_a_finished_job_ends(kind: str) -> None:
    gateway = Gateway(breaks=[])
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        events = [e async for e in ag.stream("job_1", last_event_id="106-0")]
    assert events == []
    assert gateway.asked == ["106-0"], "an empty stream of an ended job: no reconnecting"


@pytest.mark.parametrize("kind", KINDS)
async def test_reconnecting_gives_up_when_nothing_new_comes(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses = record_pauses(monkeypatch)
    gateway = Gateway(breaks=[0] * 50)
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        with pytest.raises(APIConnectionError, match="gave up after 5 reconnections"):
            [e async for e in ag.stream("job_1")]
    assert len(gateway.asked) == 6
    assert len(pauses) == 5
    assert pauses == sorted(pauses), "backing off"


@pytest.mark.parametrize("kind", KINDS)
async def test_an_unknown_job_is_not_reconnected(kind: str) -> None:
    def handle(_request: httpx.Request) -> httpx.Response:
        body = {
            "error": {"message": "No job", "type": "invalid_request_error", "code": "job_not_found"}
        }
        return httpx.Response(404, json=body)

    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        with pytest.raises(NotFoundError):
            [e async for e in ag.stream("job_x")]


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_text_restarts_on_a_retry_across_a_break(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_pauses(monkeypatch)
    gateway = Gateway(breaks=[4])
    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(gateway)) as ag:
        deltas = [d async for d in ag.stream_text("job_1")]
    assert deltas == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta("Hello", restart=True),
        TextDelta(" world"),
    ]


class _Tracked(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An endless event stream that records being closed."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        n = 0
        while True:
            n += 1
            yield _sse([(f"{n}-0", "chunk", _chunk("x"))])

    async def __aiter__(self) -> Any:
        for piece in self:
            yield piece

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("kind", KINDS)
async def test_leaving_a_stream_early_closes_its_connection(kind: str) -> None:
    body = _Tracked()

    def handle(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"})

    async with open_client(kind, "http://gw", "k", transport=httpx.MockTransport(handle)) as ag:
        events = ag.stream("job_1")
        async for event in events:
            assert event.id == "1-0"
            break
        assert not body.closed, "still open while the iterator lives"
        await events.aclose()
        assert body.closed, "closing the iterator closes its connection"
