"""Stream ids from clients (``parse_stream_id``): accepted exactly when Redis would take them
as what they look like, both parts within unsigned 64 bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anygate.broker.models import (
    LAST_STREAM_ID,
    STREAM_ID_PART_MAX,
    format_stream_id,
    parse_stream_id,
    stream_id_key,
)

U64 = st.integers(0, STREAM_ID_PART_MAX)
EDGES = st.sampled_from([0, 1, 2**32, 2**63 - 1, 2**63, STREAM_ID_PART_MAX - 1, STREAM_ID_PART_MAX])
PARTS = st.one_of(EDGES, U64)


class TestParseStreamId:
    @given(PARTS, PARTS)
    def test_every_id_within_64_bits_round_trips(self, ms: int, seq: int) -> None:
        text = f"{ms}-{seq}"
        assert parse_stream_id(text) == (ms, seq) == stream_id_key(text)
        assert format_stream_id(parse_stream_id(text)) == text

    @given(PARTS)
    def test_a_bare_millisecond_time_means_sequence_zero(self, ms: int) -> None:
        assert parse_stream_id(str(ms)) == (ms, 0)

    @given(PARTS, st.integers(1, 30))
    def test_leading_zeros_are_read_as_redis_reads_them(self, ms: int, zeros: int) -> None:
        assert parse_stream_id("0" * zeros + f"{ms}-" + "0" * zeros + "7") == (ms, 7)

    @given(PARTS, st.integers(STREAM_ID_PART_MAX + 1, 2**200))
    def test_a_part_past_64_bits_is_refused(self, fine: int, huge: int) -> None:
        for text in (f"{huge}-{fine}", f"{fine}-{huge}", str(huge)):
            with pytest.raises(ValueError, match="at most 18446744073709551615"):
                parse_stream_id(text)

    @pytest.mark.parametrize(
        "text",
        [
            "18446744073709551616-0",
            "1-18446744073709551616",
            "18446744073709551616",
            "99999999999999999999-0",
            "1" * 5000,
            "1-" + "9" * 5000,
        ],
    )
    def test_the_issues_values_and_very_long_numbers_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="at most"):
            parse_stream_id(text)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "-",
            "+",
            "$",
            ">",
            "*",
            "1-",
            "-1",
            "-1-0",
            "1--1",
            "1-2-3",
            "+1-0",
            " 1-0",
            "1-0 ",
            "1_000-0",
            "1.5-0",
            "0x10-0",
            "1e3-0",
            "\u0661-\u0660",
            "\uff11-0",
            "1-0\n",
            "x-y",
            "(1-0",
        ],
    )
    def test_anything_but_decimal_digits_is_refused(self, text: str) -> None:
        with pytest.raises(ValueError, match="decimal digits"):
            parse_stream_id(text)

    @given(st.text(max_size=30))
    def test_any_text_is_either_refused_or_a_pair_within_64_bits(self, text: str) -> None:
        try:
            ms, seq = parse_stream_id(text)
        except ValueError:
            return
        assert 0 <= ms <= STREAM_ID_PART_MAX
        assert 0 <= seq <= STREAM_ID_PART_MAX
        assert text.replace("-", "").isascii()
        assert text.replace("-", "").isdigit()

    def test_the_largest_id_is_the_last_one(self) -> None:
        assert parse_stream_id(f"{STREAM_ID_PART_MAX}-{STREAM_ID_PART_MAX}") == LAST_STREAM_ID
