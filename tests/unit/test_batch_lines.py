"""Batch files as lines (``anygate.broker.batch_lines``): line-aligned chunking and the checks
that refuse an upload (unidentifiable lines) or pass a line on to the error file."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from anygate.broker.batch_lines import (
    MAX_LISTED,
    BadLine,
    BatchLineChecker,
    LineChunker,
    chunk_lines,
    line_count,
)
from anygate.broker.errors import InvalidRequestError


def request(custom_id: str, **overrides: Any) -> bytes:
    line: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    }
    line.update(overrides)
    return orjson.dumps(line)


def check(data: bytes, *, chunk: int = 64, max_lines: int = 1000) -> BatchLineChecker:
    """Run the checker over ``data`` exactly as an upload does: through the chunker."""
    checker = BatchLineChecker(max_lines)
    chunker = LineChunker(chunk)
    for piece in chunker.feed(data):
        checker.check_chunk(piece)
    if rest := chunker.finish():
        checker.check_chunk(rest)
    return checker


def refusal_text(checker: BatchLineChecker) -> str:
    refusal = checker.refusal()
    assert refusal is not None
    assert refusal.param == "file"
    assert refusal.code == "invalid_batch_file"
    return refusal.message


def chunked(data: bytes, target: int, cuts: list[int]) -> list[bytes]:
    chunker = LineChunker(target)
    out: list[bytes] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out += chunker.feed(data[last:cut])
        last = max(last, cut)
    out.append(chunker.finish())
    return [c for c in out if c]


class TestLineChunker:
    @given(
        st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x")), max_size=30),
        st.booleans(),
        st.integers(1, 100),
        st.lists(st.integers(0, 10_000), max_size=10),
    )
    def test_chunks_are_whole_lines_that_add_up_to_the_input(
        self, lines: list[bytes], trailing: bool, target: int, cuts: list[int]
    ) -> None:
        """Whatever the pieces the socket delivers, chunks concatenate to the input, every
        chunk but the last ends a line, and a chunk exceeds the target only when it is one
        line."""
        data = b"\n".join(lines) + (b"\n" if trailing else b"")
        chunks = chunked(data, target, cuts)
        assert b"".join(chunks) == data
        for chunk in chunks[:-1]:
            assert chunk.endswith(b"\n")
        for chunk in chunks:
            if len(chunk) > target:
                assert chunk.count(b"\n") <= 1

    def test_a_line_longer_than_the_target_arriving_in_pieces_is_one_chunk(self) -> None:
        chunker = LineChunker(8)
        assert chunker.feed(b"a" * 20) == []
        assert chunker.feed(b"a" * 20) == []
        assert chunker.feed(b"a\nbb\n") == [b"a" * 41 + b"\n"]
        assert chunker.finish() == b"bb\n"

    def test_chunks_end_at_the_last_line_end_within_the_target(self) -> None:
        chunker = LineChunker(10)
        assert chunker.feed(b"abc\ndef\nghi\njkl\n") == [b"abc\ndef\n"]
        assert chunker.feed(b"mn\n") == [b"ghi\njkl\n"]
        assert chunker.finish() == b"mn\n"
        assert chunker.finish() == b""

    def test_lines_of_a_chunk_drop_their_crlf_and_keep_their_numbers(self) -> None:
        chunk = b"one\r\n\r\ntwo\nthree"
        assert list(chunk_lines(chunk, 5)) == [(5, b"one"), (6, b""), (7, b"two"), (8, b"three")]
        assert line_count(chunk) == 4
        assert line_count(b"a\n") == 1
        assert line_count(b"") == 0


class TestBatchLineChecker:
    def test_a_valid_file_passes_and_counts_its_requests(self) -> None:
        data = b"\n".join(request(f"r{i}") for i in range(10)) + b"\n\n\n"
        checker = check(data)
        assert checker.refusal() is None
        assert checker.requests == 10
        assert checker.bad == []

    def test_crlf_line_endings_and_a_byte_order_mark_are_accepted(self) -> None:
        data = b"\xef\xbb\xbf" + b"\r\n".join(request(f"r{i}") for i in range(3)) + b"\r\n"
        checker = check(data)
        assert checker.refusal() is None
        assert checker.requests == 3

    @given(
        st.lists(
            st.one_of(
                st.none(),  # a valid request
                st.recursive(
                    st.none()
                    | st.booleans()
                    | st.integers(-(2**63), 2**63 - 1)
                    | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3),
                    max_leaves=5,
                ).map(orjson.dumps),
                st.text(min_size=1, max_size=20)
                .map(str.encode)
                .filter(lambda b: b"\n" not in b and b"\r" not in b and b.strip() != b"")
                .filter(lambda b: not _is_json_object(b)),
            ),
            min_size=1,
            max_size=40,
        ),
        st.integers(8, 200),
    )
    def test_every_line_that_is_not_a_json_object_is_refused_by_number(
        self, kinds: list[bytes | None], chunk: int
    ) -> None:
        lines = [k if k is not None else request(f"id-{i}") for i, k in enumerate(kinds)]
        expected = [i + 1 for i, k in enumerate(kinds) if k is not None]
        checker = check(b"\n".join(lines), chunk=chunk)
        if not expected:
            assert checker.refusal() is None
            return
        message = refusal_text(checker)
        assert checker.fatal_count == len(expected)
        named = [problem.line for problem in checker.fatal]
        assert named == expected[:MAX_LISTED]
        assert f"line {expected[0]}: " in message

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            (b'{"method": "POST"}', "custom_id: missing"),
            (b'{"custom_id": 7}', "custom_id: expected a string, got a number"),
            (b'{"custom_id": ""}', "custom_id: must not be empty"),
            (orjson.dumps({"custom_id": "x" * 513}), "custom_id: longer than 512 characters"),
            (b"[1, 2]", "expected a JSON object, got an array"),
            (b"{not json", "not valid JSON"),
        ],
    )
    def test_an_unidentifiable_line_names_its_problem(self, line: bytes, reason: str) -> None:
        message = refusal_text(check(request("a") + b"\n" + line + b"\n"))
        assert f"line 2: {reason}" in message

    def test_a_duplicate_custom_id_names_the_line_that_used_it_first(self) -> None:
        data = b"\n".join([request("a"), request("b"), b"", request("a")])
        message = refusal_text(check(data))
        assert "line 4: custom_id 'a' was already used on line 1" in message

    def test_the_list_stops_at_one_hundred_and_counts_the_rest(self) -> None:
        data = b"\n".join(b"nope" for _ in range(130))
        checker = check(data)
        message = refusal_text(checker)
        assert len(checker.fatal) == MAX_LISTED
        assert "line 100: " in message
        assert "line 101: " not in message
        assert message.endswith("and 30 more")
        assert "130 lines" in message

    def test_a_refusal_also_names_the_invalid_lines_the_same_pass_found(self) -> None:
        """One unparseable line refuses the file; the two identifiable-but-invalid lines found
        on the way are named too, with their custom_id, so one round of fixes is enough."""
        data = b"\n".join(
            [
                request("ok"),
                request("get", method="GET"),
                b"{not json",
                request("ok-2"),
                request("no-model", body={"messages": []}),
            ]
        )
        message = refusal_text(check(data))
        assert message.startswith("file: 1 line of the batch file cannot be identified")
        assert "2 more lines (named by custom_id) are requests that cannot run" in message
        listed = message.splitlines()[1:]
        assert len(listed) == 3
        assert listed[0] == "line 2 (custom_id 'get'): method: expected 'POST', got 'GET'"
        assert listed[1].startswith("line 3: not valid JSON (")
        assert listed[2] == "line 5 (custom_id 'no-model'): body.model: expected a string, got null"

    @given(
        st.lists(st.sampled_from(["ok", "junk", "GET"]), min_size=1, max_size=260),
        st.integers(16, 4000),
    )
    def test_a_refusal_lists_the_first_hundred_bad_lines_of_either_kind_in_order(
        self, kinds: list[str], chunk: int
    ) -> None:
        made = {"ok": lambda i: request(f"r{i}"), "GET": lambda i: request(f"g{i}", method="GET")}
        lines = [made[k](i) if k in made else b"junk" for i, k in enumerate(kinds)]
        checker = check(b"\n".join(lines), chunk=chunk)
        bad = [i + 1 for i, k in enumerate(kinds) if k != "ok"]
        if "junk" not in kinds:
            assert checker.refusal() is None
            return
        listed = refusal_text(checker).split(":\n", 1)[1].splitlines()
        more = len(bad) - MAX_LISTED
        if more > 0:
            assert listed.pop() == f"and {more} more"
        numbers = [int(text.split(":")[0].split(" ")[1]) for text in listed]
        assert numbers == bad[:MAX_LISTED]

    @pytest.mark.parametrize(
        ("overrides", "reason"),
        [
            ({"method": "GET"}, "method: expected 'POST', got 'GET'"),
            ({"method": None}, "method: expected 'POST', got nothing"),
            ({"url": "/v1/completions"}, "url: expected one of /v1/chat/completions, "),
            ({"body": "text"}, "body: expected a JSON object, got a string"),
            ({"body": {"messages": []}}, "body.model: expected a string, got null"),
            ({"body": {"model": 4}}, "body.model: expected a string, got a number"),
        ],
    )
    def test_an_identifiable_but_invalid_line_goes_to_the_error_file(
        self, overrides: dict[str, Any], reason: str
    ) -> None:
        data = b"\n".join([request("good"), request("bad", **overrides), request("also")])
        checker = check(data)
        assert checker.refusal() is None
        assert checker.requests == 3
        assert len(checker.bad) == 1
        bad = checker.bad[0]
        assert (bad.line, bad.custom_id) == (2, "bad")
        assert bad.reason.startswith(reason)
        assert BadLine.from_json(orjson.loads(orjson.dumps(bad.to_json()))) == bad

    def test_an_unknown_model_alias_is_not_a_problem_here(self) -> None:
        line = request("a", body={"model": "no-such-alias", "input": "x"}, url="/v1/embeddings")
        checker = check(line)
        assert checker.refusal() is None
        assert checker.bad == []

    @pytest.mark.parametrize("data", [b"", b"\n\n", b"  \r\n\t\n"])
    def test_a_file_without_requests_is_refused(self, data: bytes) -> None:
        assert "holds no requests" in refusal_text(check(data))

    def test_one_request_over_the_line_limit_stops_the_check(self) -> None:
        data = b"\n".join(request(f"r{i}") for i in range(6))
        with pytest.raises(InvalidRequestError) as caught:
            check(data, max_lines=5)
        assert caught.value.code == "too_many_lines"
        assert "at most 5 requests" in caught.value.message
        assert check(data, max_lines=6).refusal() is None

    @given(
        st.lists(
            st.sampled_from([b"", b"junk", b"[]", b'{"custom_id": "dup"}', b"ok", b"GET"]),
            max_size=30,
        ),
        st.integers(1, 300),
    )
    def test_the_verdict_does_not_depend_on_the_chunk_size(
        self, kinds: list[bytes], chunk: int
    ) -> None:
        made = {b"ok": lambda i: request(f"r{i}"), b"GET": lambda i: request(f"g{i}", method="GET")}
        lines = [made[k](i) if k in made else k for i, k in enumerate(kinds)]
        data = b"\r\n".join(lines)
        whole, pieces = check(data, chunk=10**6), check(data, chunk=chunk)
        assert (pieces.fatal, pieces.fatal_count, pieces.bad, pieces.requests) == (
            whole.fatal,
            whole.fatal_count,
            whole.bad,
            whole.requests,
        )


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False
