"""The client folds a chat job's events into one answer: a ``retry`` event voids what earlier
attempts sent, so the text of two attempts is never joined."""

from __future__ import annotations

from anygate.client import AnswerText, JobEvent, TextDelta


def _chunk(text: str, attempt: int) -> JobEvent:
    data = {"attempt": attempt, "choices": [{"index": 0, "delta": {"content": text}}]}
    return JobEvent(f"{attempt}-{text}", "chunk", data)


def test_chunks_of_one_attempt_make_the_text() -> None:
    answer = AnswerText()
    deltas = [answer.feed(e) for e in (_chunk("Hel", 1), _chunk("lo", 1))]
    assert deltas == [TextDelta("Hel"), TextDelta("lo")]
    assert answer.text == "Hello"


def test_a_retry_voids_what_came_before_and_the_next_delta_says_so() -> None:
    answer = AnswerText()
    answer.feed(_chunk("Hal", 1))
    assert answer.feed(JobEvent("r", "retry", {"attempt": 2, "reason": "lease_expired"})) is None
    assert answer.feed(_chunk("Hello", 2)) == TextDelta("Hello", restart=True)
    assert answer.feed(_chunk("!", 2)) == TextDelta("!")
    assert answer.text == "Hello!"


def test_a_retry_before_any_text_asks_for_no_restart() -> None:
    answer = AnswerText()
    answer.feed(JobEvent("r", "retry", {"attempt": 2}))
    assert answer.feed(_chunk("Hi", 2)) == TextDelta("Hi")


def test_a_chunk_says_its_attempt() -> None:
    assert _chunk("x", 3).attempt == 3
    assert JobEvent("1-0", "queued", {}).attempt is None
