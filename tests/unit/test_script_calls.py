"""The typed script calls (broker/script_calls/): each wrapper hands its script as many keys as
the script's file name says, its arguments in the header's order, and decodes its reply."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from anygate.broker.keys import KeySpace
from anygate.broker.models import JobStatus
from anygate.broker.rate_window import Admission
from anygate.broker.script_calls.append import AppendKeys, decode_append
from anygate.broker.script_calls.cancel import CancelKeys, CancelStatus, decode_cancel
from anygate.broker.script_calls.claim import CLAIM_FIELDS, ClaimArgs, ClaimKeys, decode_claims
from anygate.broker.script_calls.enqueue import (
    Accepted,
    EnqueueArgs,
    EnqueueKeys,
    EnqueueOutcome,
    QueueFull,
    QuotaMeasure,
    QuotaPeriod,
    QuotaSpent,
    decode_enqueue,
)
from anygate.broker.script_calls.finish import FINISH_ARGS, FinishArgs, FinishKeys, usage_record
from anygate.broker.script_calls.handoff import AdoptKeys, HandOffKeys
from anygate.broker.script_calls.health import (
    BreakerState,
    HealthKeys,
    HealthPeek,
    HealthVerdict,
    ProbeVerdict,
    decode_peek,
    decode_probe,
)
from anygate.broker.script_calls.heartbeat import HeartbeatArgs, HeartbeatKeys
from anygate.broker.script_calls.provider_batch import ReleaseKeys, TakeKeys
from anygate.broker.script_calls.ratewindow import RateWindowKeys, decode_take
from anygate.broker.script_calls.reclaim import ReclaimKeys
from anygate.broker.script_calls.requeue import RequeueArgs, RequeueKeys, encode_model
from anygate.broker.script_calls.requeuedead import RequeueDeadKeys
from anygate.broker.scripts import SCRIPT_NAMES, ScriptKeys, _load
from anygate.broker.worker_registry import RegistryValue
from anygate.config import Priority

K = KeySpace("t")
KEYS: dict[str, ScriptKeys] = {
    "enqueue": EnqueueKeys.of(K, "openai"),
    "claim": ClaimKeys.of(K, "openai"),
    "append": AppendKeys.of(K, "j1"),
    "finish": FinishKeys.of(K, "openai"),
    "requeue": RequeueKeys.of(K, "j1", "openai", "gemini"),
    "heartbeat": HeartbeatKeys.of(K, "openai"),
    "reclaim": ReclaimKeys.of(K, "openai"),
    "cancel": CancelKeys.of(K, "j1", "openai"),
    "ratewindow": RateWindowKeys.of(K, "openai:rpm"),
    "health": HealthKeys.of(K, "openai:gpt-4o-mini"),
    "requeuedead": RequeueDeadKeys.of(K, "openai", "j1"),
    "handoff": HandOffKeys.of(K, "j1", "openai"),
    "adopt": AdoptKeys.of(K, "j1", "openai"),
    "pbtake": TakeKeys.of(K, "openai", "chat:openai:gpt-4o-mini", "pb1"),
    "pbrelease": ReleaseKeys.of(K, "openai", "chat:openai:gpt-4o-mini"),
}


class TestKeys:
    def test_every_script_has_typed_keys(self) -> None:
        assert set(KEYS) == set(SCRIPT_NAMES)

    @pytest.mark.parametrize("name", sorted(KEYS))
    def test_as_many_keys_as_the_file_name_says(self, name: str) -> None:
        keys = KEYS[name].keys()
        assert len(keys) == _load(name).key_count
        assert all(k.startswith(K.prefix) for k in keys), "one hash tag for every key"

    def test_claim_keys_follow_the_header(self) -> None:
        keys = ClaimKeys.of(K, "openai").keys()
        assert keys[:3] == [
            K.ring("openai", Priority.INTERACTIVE),
            K.ring("openai", Priority.STANDARD),
            K.ring("openai", Priority.BATCH),
        ]
        assert keys[3] == K.credits("openai", Priority.INTERACTIVE)
        assert keys[6:] == [
            K.wrr("openai"),
            K.redeliver("openai"),
            K.delayed("openai"),
            K.leases("openai"),
            K.stats("openai"),
            K.tenant_weights("openai"),
            K.metrics_jobs,
        ]

    @pytest.mark.parametrize("name", ["enqueue", "claim", "finish", "cancel", "reclaim"])
    def test_the_scripts_that_count_are_given_the_counters(self, name: str) -> None:
        """A counter hash is a key like any other: passed in KEYS, never derived (Cluster)."""
        keys = KEYS[name].keys()
        assert K.metrics_jobs in keys
        assert (K.metrics_tokens in keys) == (name == "finish")

    def test_requeue_leaves_one_pool_for_another(self) -> None:
        keys = RequeueKeys.of(K, "j1", "openai", "gemini").keys()
        assert keys[1:3] == [K.leases("openai"), K.stats("openai")]
        assert keys[3:] == [K.redeliver("gemini"), K.delayed("gemini"), K.stats("gemini")]


class TestArgs:
    def test_claim_args_in_the_headers_order(self) -> None:
        args = ClaimArgs(K.prefix, "openai", "w1", 30000, 4, (8, 4, 1), 3600, "a=2", "tok")
        assert args.argv() == [K.prefix, "openai", "w1", 30000, 4, 8, 4, 1, 3600, "a=2", "tok"]

    def test_finish_sends_the_status_by_its_value(self) -> None:
        args = FinishArgs(K.prefix, "j1", 2, JobStatus.FAILED, "", "{}", "", "", 60, "", "")
        assert args.argv()[:2] == [K.prefix, 60], "the call's part: prefix and ttl"
        assert args.job_argv()[2] == "failed"
        assert len(args.job_argv()) == FINISH_ARGS
        assert args.argv()[2:] == args.job_argv()

    def test_heartbeat_encodes_the_registry_value_and_pairs_the_jobs(self) -> None:
        args = HeartbeatArgs(K.prefix, "w1", 30000, RegistryValue(5, 8, 1), [("j1", 1), ("j2", 3)])
        assert args.argv() == [K.prefix, "w1", 30000, "5 8 1 {}", "j1", 1, "j2", 3]

    def test_requeue_args_refund_as_a_flag_and_the_model_as_json(self) -> None:
        args = RequeueArgs(K.prefix, "j1", 2, 0, "fallback", True, "gemini", 1, "", "m/1")
        assert args.argv() == [K.prefix, "j1", 2, 0, "fallback", 1, "gemini", 1, "", '"m/1"']


class TestRequeueModel:
    @pytest.mark.parametrize("model", ['a "quoted" model', "meta/llama", "ünï\ncode", "x"])
    def test_the_model_is_one_json_string_that_reads_back(self, model: str) -> None:
        encoded = encode_model(model)
        assert orjson.loads(encoded) == model
        event = '{"id":"j1","attempt":2' + ',"model":' + encoded + "}"  # as the script joins it
        assert orjson.loads(event)["model"] == model

    def test_no_model_is_no_argument(self) -> None:
        assert encode_model(None) == ""
        assert encode_model("") == ""


class TestReplies:
    def test_claims_decode_job_by_job(self) -> None:
        one = [
            "j1",
            "2",
            "acme",
            "chat",
            "gpt-4o-mini",
            "{}",
            "batch",
            "1",
            "1-0",
            "p",
            "1",
            "2",
            "1",
            "sealed",
            "api-1",
            "17000 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "1700000000123-0",
        ]
        two = [
            "j2",
            "1",
            "beta",
            "embeddings",
            "m",
            "[]",
            "standard",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ]
        assert len(one) == len(CLAIM_FIELDS)
        first, second = decode_claims(one + two)
        assert (first.id, first.attempt, first.tenant, first.model) == (
            "j1",
            2,
            "acme",
            "gpt-4o-mini",
        )
        assert (first.priority, first.stream, first.body) == (Priority.BATCH, True, b"{}")
        assert (first.endpoint, second.endpoint) == ("/v1/chat/completions", "/v1/embeddings")
        assert (first.plan, first.step, first.step_started_attempt, first.cooled) == ("p", 1, 2, 1)
        assert (first.client_key, first.reply_to) == ("sealed", "api-1")
        assert (second.stream, second.step, second.step_started_attempt) == (False, 0, 1)
        assert second.client_key == second.reply_to == ""
        assert first.trace.endswith("-b7ad6b7169203331-01")
        assert second.trace == "", "a job queued without a trace claims as untraced"
        assert (first.created_ms, second.created_ms) == (1_700_000_000_123, 0)
        assert (first.queued_ms, second.queued_ms) == (1, 0)

    def test_a_claim_reply_of_the_wrong_width_is_refused(self) -> None:
        with pytest.raises(ValueError, match="per job"):
            decode_claims(["j1", "1"])

    def test_enqueue_replies(self) -> None:
        assert decode_enqueue(["j1", "new", 3, 1700, 9, "", 4]) == Accepted(
            EnqueueOutcome.NEW, "j1", 3, 1700, 9, None, 4
        )
        existing = decode_enqueue(["j0", "existing", 0, 0, 0, "", 0])
        assert isinstance(existing, Accepted)
        assert existing.outcome is EnqueueOutcome.EXISTING
        assert decode_enqueue(["", "queue_full", "2500", "40"]) == QueueFull(40, 2500.0)
        assert decode_enqueue(["", "queue_full", ""]) == QueueFull(0, None)
        assert decode_enqueue(["", "insufficient_quota", "month", "tokens"]) == QuotaSpent(
            QuotaPeriod.MONTH, QuotaMeasure.TOKENS
        )

    def test_append_says_none_when_the_attempt_lost_the_job(self) -> None:
        assert decode_append(None) is None
        assert decode_append(False) is None
        assert decode_append(0) == 0, "all there already: still the owner"

    def test_cancel_of_a_missing_job(self) -> None:
        assert not decode_cancel([CancelStatus.MISSING, CancelStatus.MISSING]).found
        assert decode_cancel(["running", "cancelled"]).found

    def test_health_replies(self) -> None:
        assert decode_probe(["wait", 120, 500]) == HealthVerdict(ProbeVerdict.WAIT, 120, 500)
        assert decode_probe(["probe", 0]) == HealthVerdict(ProbeVerdict.PROBE, 0, 0)
        assert decode_peek(["half", 0, 250, 1, 1]) == HealthPeek(
            BreakerState.HALF, 0, 250, dirty=True, settling=True
        )

    def test_rate_window_take(self) -> None:
        assert decode_take([1, 0]) == Admission(True, 0)
        assert decode_take([0, -1]) == Admission(False, -1)


def test_usage_record_falls_back_on_the_total() -> None:
    now = datetime(2026, 1, 31, 23, 59, tzinfo=UTC)
    assert (
        usage_record("m", {"prompt_tokens": 5, "total_tokens": 12}, now) == "20260131|202601|5|7|m"
    )
    assert usage_record("m", None, now) == ""


def test_enqueue_args_count_their_own_part() -> None:
    """enqueue-2.lua walks its ARGV job by job: each part starts with its length."""
    args = EnqueueArgs(
        K.prefix,
        "j1",
        "openai",
        Priority.BATCH,
        "acme",
        2,
        "",
        60,
        "d",
        "{}",
        "",
        ["model", "m", "tenant", "acme"],
    )
    part = args.job_argv()
    assert part[0] == len(part) - 1 == 9 + 4
    assert part[1:4] == ["j1", "batch", "acme"]
    assert args.argv() == [K.prefix, "openai", *part]
