"""A provider batch's lines out and results back: each job gets exactly one result, and only
its own; a line the provider did not run goes live, one it refused for good fails."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from anygate.broker.errors import UpstreamRejectedError, UpstreamTransientError
from anygate.config import Deployment
from anygate.workers.pricing import cost_usd
from anygate.workers.provider_batch.gemini_format import inlined_request, read_responses
from anygate.workers.provider_batch.lines import BatchRequest, LineState
from anygate.workers.provider_batch.openai_format import input_file, input_line, read_results

CHAT = "/v1/chat/completions"


def chat_request(job_id: str, **extra: Any) -> BatchRequest:
    body = {"model": "fast", "messages": [{"role": "user", "content": "hi"}], **extra}
    return BatchRequest(job_id, CHAT, orjson.dumps(body), "gpt-4o-mini")


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }


def out_line(job_id: str, status: int, body: dict[str, Any]) -> bytes:
    line = {
        "id": f"batch_req_{job_id}",
        "custom_id": job_id,
        "response": {"status_code": status, "request_id": "req_1", "body": body},
        "error": None,
    }
    return orjson.dumps(line) + b"\n"


def err_line(job_id: str, code: str) -> bytes:
    line = {
        "id": "x",
        "custom_id": job_id,
        "response": None,
        "error": {"code": code, "message": "m"},
    }
    return orjson.dumps(line) + b"\n"


def test_an_input_line_names_the_job_and_the_upstream_model_and_asks_for_no_stream() -> None:
    line = orjson.loads(input_line(chat_request("job_a", stream=True, stream_options={})))
    assert line["custom_id"] == "job_a"
    assert line["method"] == "POST"
    assert line["url"] == CHAT
    assert line["body"]["model"] == "gpt-4o-mini"
    assert "stream" not in line["body"]
    assert "stream_options" not in line["body"]
    data = input_file([chat_request("job_a"), chat_request("job_b")])
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 2


def test_results_come_back_one_per_job_from_both_files() -> None:
    output = out_line("job_a", 200, completion("A")) + out_line(
        "job_b", 400, {"error": {"message": "bad"}}
    )
    errors = err_line("job_c", "batch_expired") + out_line("job_d", 500, {"error": {}})
    back = read_results(output, errors, ["job_a", "job_b", "job_c", "job_d", "job_e"])
    r = back.results
    assert r["job_a"].state is LineState.DONE
    assert r["job_a"].outcome is not None
    assert r["job_a"].outcome.result["choices"][0]["message"]["content"] == "A"
    assert r["job_a"].outcome.usage == {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
    }
    assert r["job_b"].state is LineState.FAILED
    assert isinstance(r["job_b"].error, UpstreamRejectedError)
    assert r["job_c"].state is LineState.NOT_RUN  # expired: the job still has time, it goes live
    assert r["job_d"].state is LineState.NOT_RUN  # a 500 is worth another try, live
    assert isinstance(r["job_d"].error, UpstreamTransientError)
    assert r["job_e"].state is LineState.NOT_RUN  # in neither file
    assert back.strays == 0


def test_a_line_for_another_job_or_a_second_answer_never_finishes_anything() -> None:
    output = (
        out_line("job_a", 200, completion("first"))
        + out_line("job_a", 200, completion("second"))
        + out_line("job_zzz", 200, completion("stranger"))
        + b"not json\n\n"
    )
    back = read_results(output, b"", ["job_a"])
    assert back.strays == 3
    assert set(back.results) == {"job_a"}
    outcome = back.results["job_a"].outcome
    assert outcome is not None
    assert outcome.result["choices"][0]["message"]["content"] == "first"


def test_a_line_with_only_the_batch_s_word_goes_live_with_its_reason() -> None:
    """Expired, cancelled, or a code of the batch's own: no answer, so the live call decides."""
    errors = err_line("job_a", "some_new_code") + err_line("job_b", "batch_cancelled")
    back = read_results(b"", errors, ["job_a", "job_b"])
    for job_id, code in (("job_a", "some_new_code"), ("job_b", "batch_cancelled")):
        result = back.results[job_id]
        assert result.state is LineState.NOT_RUN
        assert result.error is not None
        assert result.error.code == code


def gemini_answer(text: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1, "totalTokenCount": 5},
    }


def test_a_gemini_line_is_the_translated_request_keyed_by_its_job() -> None:
    req = chat_request("job_a", stream=True, temperature=0.5)
    line = inlined_request(req)
    assert line["metadata"] == {"key": "job_a"}
    assert line["request"]["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert line["request"]["generationConfig"]["temperature"] == 0.5
    with pytest.raises(UpstreamRejectedError):
        inlined_request(chat_request("job_b", logit_bias={"1": 2}))
    with pytest.raises(ValueError, match="embeddings"):
        inlined_request(BatchRequest("job_c", "/v1/embeddings", b"{}", "text-embedding-004"))


def test_gemini_responses_come_back_as_openai_answers() -> None:
    items = [
        {"response": gemini_answer("G"), "metadata": {"key": "job_a"}},
        {"key": "job_b", "error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}},
        {"metadata": {"key": "job_c"}, "error": {"code": 503, "message": "busy"}},
        {"metadata": {"key": "job_a"}, "response": gemini_answer("again")},
        {"metadata": {"key": "job_x"}, "response": gemini_answer("stranger")},
    ]
    back = read_responses(
        items, ["job_a", "job_b", "job_c", "job_d"], model="gemini-2.5-flash", created=1
    )
    r = back.results
    assert r["job_a"].state is LineState.DONE
    assert r["job_a"].outcome is not None
    answer = r["job_a"].outcome.result
    assert answer["choices"][0]["message"]["content"] == "G"
    assert answer["model"] == "gemini-2.5-flash"
    assert answer["usage"]["prompt_tokens"] == 4
    assert r["job_b"].state is LineState.FAILED
    assert r["job_c"].state is LineState.NOT_RUN
    assert r["job_d"].state is LineState.NOT_RUN
    assert back.strays == 2


def test_a_provider_batch_is_charged_its_share_of_the_list_price() -> None:
    dep = Deployment(provider="openai", model="m", input_price_per_m=2.0, output_price_per_m=8.0)
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000}
    assert cost_usd(usage, dep) == 6.0
    assert cost_usd(usage, dep, price_ratio=0.5) == 3.0
