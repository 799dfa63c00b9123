"""Gemini ``:countTokens``: the request a client sends, the one Gemini gets, the answer's check
(docs/api.md#counttokens).

No translation happens: a count is only ever asked of Gemini, so the request travels in Gemini's
own ``CountTokensRequest`` shape and the answer comes back as Gemini sent it. What is checked
here is what the gateway relies on (the request's outline, so a bad body is a 400 naming the
field before anything is queued), and what it must change (the model inside a
``generateContentRequest`` names the alias; Gemini must get its own model's name). Everything
inside a ``Content`` is the provider's to judge.

``CountTokensRequest`` has two forms (https://ai.google.dev/api/tokens): ``contents`` alone
(what google-genai sends, and all it sends: its ``count_tokens`` refuses a system instruction,
tools or a generation config outside Vertex AI), or ``generateContentRequest``, a whole
``GenerateContentRequest`` with its system instruction, tools and the rest, whose tokens are
counted too. Vertex AI's form (``systemInstruction`` and ``tools`` beside ``contents``) is not
the Gemini API's: refused with a pointer to ``generateContentRequest``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anygate.core.translate.common import Fields
from anygate.core.translate.errors import invalid

CONTENTS = "contents"
GENERATE_CONTENT_REQUEST = "generateContentRequest"
_REQUEST_FIELDS = frozenset({CONTENTS, GENERATE_CONTENT_REQUEST})
_GENERATE_FIELDS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "tools",
        "toolConfig",
        "safetySettings",
        "generationConfig",
        "cachedContent",
    }
)
"""``GenerateContentRequest``'s fields (Gemini API): the ones to send inside it."""


def _check_contents(value: list[Any], where: str) -> None:
    """The outline of ``Content[]``: objects whose ``parts`` is an array of objects."""
    for i, item in enumerate(value):
        content = Fields(item, f"{where}[{i}]", gemini=True)
        content.string("role")
        parts = content.array("parts")
        for j, part in enumerate(parts or ()):
            Fields(part, f"{content.path('parts')}[{j}]", gemini=True)


def _model_name(raw: str) -> str:
    return raw.removeprefix("models/")


def _check_model(fields: Fields, alias: str) -> None:
    """A ``model`` in the body, when sent, must name the URL's (as in ``batchEmbedContents``)."""
    model = fields.string("model")
    if model is not None and _model_name(model) != alias:
        raise invalid(
            fields.path("model"),
            f"must be the model in the URL, models/{alias} (or be left out)",
        )


def _check_generate_request(inner: Fields, alias: str) -> None:
    contents = inner.array(CONTENTS)
    if contents is None:
        raise invalid(inner.path(CONTENTS), "is required in a generateContentRequest")
    _check_contents(contents, inner.path(CONTENTS))
    _check_model(inner, alias)


def count_tokens_job_body(body: Mapping[str, Any], alias: str) -> dict[str, Any]:
    """The job body of a ``:countTokens`` call: the request's fields under their canonical
    names, and the alias in ``model`` (every job names its model there)."""
    fields = Fields(body, "", gemini=True)
    _check_model(fields, alias)  # the path's field, which some clients repeat: not forwarded
    for key in fields.present():
        if key in _REQUEST_FIELDS or key == "model":
            continue
        hint = (
            f"; send it inside {GENERATE_CONTENT_REQUEST} to count its tokens"
            if key in _GENERATE_FIELDS
            else ""
        )
        raise invalid(fields.path(key), f"is not a field of CountTokensRequest{hint}")
    contents = fields.array(CONTENTS)
    inner = fields.obj(GENERATE_CONTENT_REQUEST, gemini=True)
    if contents is None and inner is None:
        raise invalid(CONTENTS, f"is required (or {GENERATE_CONTENT_REQUEST})")
    job: dict[str, Any] = {"model": alias}
    if contents is not None:
        _check_contents(contents, fields.path(CONTENTS))
        job[CONTENTS] = contents
    if inner is not None:
        _check_generate_request(inner, alias)
        job[GENERATE_CONTENT_REQUEST] = fields.get(GENERATE_CONTENT_REQUEST)
    return job


def count_tokens_request(job_body: Mapping[str, Any], upstream_model: str) -> dict[str, Any]:
    """What Gemini gets for a ``:countTokens`` job: the request without the alias, and a
    ``generateContentRequest`` naming the upstream model (Gemini requires its ``model``)."""
    request = {key: value for key, value in job_body.items() if key != "model"}
    inner = request.get(GENERATE_CONTENT_REQUEST)
    if isinstance(inner, Mapping):
        name = upstream_model if "/" in upstream_model else f"models/{upstream_model}"
        request[GENERATE_CONTENT_REQUEST] = {
            **{key: value for key, value in inner.items() if key != "model"},
            "model": name,
        }
    return request


def count_is_valid(answer: Mapping[str, Any]) -> bool:
    """Whether Gemini's answer carries a count to pass on: ``totalTokens`` a non-negative
    integer, or absent (proto3 JSON leaves a zero out)."""
    total = answer.get("totalTokens")
    if total is None:
        return True
    return isinstance(total, int) and not isinstance(total, bool) and total >= 0
