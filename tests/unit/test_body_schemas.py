"""The one body schema per endpoint (``anygate.core.schemas.BODY_MODELS``): OpenAI's documented
bounds refuse what the provider would refuse, and accept every value inside them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anygate.broker.errors import InvalidRequestError
from anygate.core.body import validate
from anygate.core.schemas import BODY_MODELS, MAX_EMBEDDING_INPUTS, input_problem

CHAT = BODY_MODELS["/v1/chat/completions"]
EMBEDDINGS = BODY_MODELS["/v1/embeddings"]
BASE = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
INT64 = st.integers(-(2**63), 2**63 - 1)


def refused_param(model: Any, body: dict[str, Any], **kwargs: Any) -> str | None:
    with pytest.raises(InvalidRequestError) as caught:
        validate(model, body, **kwargs)
    return caught.value.param


class TestChatBounds:
    @given(
        n=st.integers(1, 128),
        tokens=st.integers(1, 2**63 - 1),
        temperature=st.floats(0, 2) | st.integers(0, 2),
        top_p=st.floats(0, 1),
        penalty=st.floats(-2, 2),
        top_logprobs=st.integers(0, 20),
        stop=st.text(max_size=5) | st.lists(st.text(max_size=5), min_size=1, max_size=4),
        seed=INT64,
    )
    def test_every_value_inside_the_documented_bounds_is_accepted(
        self,
        n: int,
        tokens: int,
        temperature: float,
        top_p: float,
        penalty: float,
        top_logprobs: int,
        stop: Any,
        seed: int,
    ) -> None:
        body = {
            **BASE,
            "n": n,
            "max_tokens": tokens,
            "max_completion_tokens": tokens,
            "temperature": temperature,
            "top_p": top_p,
            "frequency_penalty": penalty,
            "presence_penalty": penalty,
            "logprobs": True,
            "top_logprobs": top_logprobs,
            "stop": stop,
            "seed": seed,
        }
        validate(CHAT, body)

    @given(n=st.integers(max_value=0) | st.integers(min_value=129) | st.floats() | st.booleans())
    def test_n_outside_1_to_128_or_not_an_integer_is_refused(self, n: Any) -> None:
        assert refused_param(CHAT, {**BASE, "n": n}, prefix="body") == "body.n"

    def test_a_renamed_field_is_named_as_the_client_sent_it(self) -> None:
        names = {"n": "generationConfig.candidateCount"}
        assert refused_param(CHAT, {**BASE, "n": 0}, names=names) == names["n"]


class TestEmbeddingInput:
    @given(
        st.text(min_size=1)
        | st.lists(st.text(min_size=1), min_size=1, max_size=MAX_EMBEDDING_INPUTS)
        | st.lists(st.integers(0, 2**63 - 1), min_size=1)
        | st.lists(st.lists(st.integers(0, 2**63 - 1), min_size=1), min_size=1, max_size=50)
    )
    def test_every_input_openai_takes_is_accepted(self, value: Any) -> None:
        assert input_problem(value) is None

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("", "must not be an empty string"),
            ([], "expected a non-empty string or a non-empty array"),
            (["x"] * 2049, "at most 2048 inputs, got 2049"),
            (["a", ""], "item 1: must not be empty"),
            (["a", [1]], "item 1: expected all strings or all token arrays"),
            ([[1], [-1]], "item 1: token ids are integers from 0"),
            ([1.0], "item 0: expected all strings or all token arrays"),
            ([True], "item 0: expected all strings or all token arrays"),
            (None, "expected a non-empty string or a non-empty array"),
        ],
    )
    def test_an_input_openai_refuses_is_refused_saying_why(self, value: Any, problem: str) -> None:
        found = input_problem(value)
        assert found is not None
        assert found.startswith(problem)
        assert refused_param(EMBEDDINGS, {"model": "m", "input": value}) == "input"
