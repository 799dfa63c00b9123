"""The job record's hash: what ``NewJob.record_fields`` writes (through enqueue-2.lua) and
``JobRecord.from_hash`` reads back (broker/models.py)."""

from __future__ import annotations

from anygate.broker.models import JobRecord, JobStatus, NewJob
from anygate.config import Priority


def stored(job: NewJob, sealed: str | None = None) -> dict[str, str]:
    """The hash as Redis returns it: the fields as strings, and what the script adds."""
    pairs = job.record_fields(sealed)
    h = {str(pairs[i]): str(pairs[i + 1]) for i in range(0, len(pairs), 2)}
    return h | {"status": "queued", "attempts": "0", "ix": "1700000000000-0", "entry": "1-0"}


class TestJobRecord:
    def test_a_full_job_reads_back_as_queued(self) -> None:
        job = NewJob(
            tenant="acme",
            pool="openai",
            endpoint="/v1/embeddings",
            model="text-embed",
            body=b"{}",
            priority=Priority.BATCH,
            stream=False,
            metadata={"k": "v ü"},
            deadline_ms=1700000009000,
            webhook_url="https://h/x",
            plan="p|openai|m",
            keep_s=60,
            batch_id="b1",
            custom_id="c1",
            reply_to="api-1",
        )
        record = JobRecord.from_hash("j1", stored(job))
        assert record == JobRecord.queued("j1", job, 1700000000000)
        assert record.status is JobStatus.QUEUED

    def test_unset_fields_are_left_out(self) -> None:
        job = NewJob("acme", "openai", "/v1/chat/completions", "m", b"{}", Priority.STANDARD)
        h = stored(job)
        assert set(h) == {
            "tenant",
            "pool",
            "priority",
            "endpoint",
            "model",
            "stream",
            "status",
            "attempts",
            "ix",
            "entry",
        }
        assert h["stream"] == "1"
        assert JobRecord.from_hash("j1", h) == JobRecord.queued("j1", job, 1700000000000)

    def test_the_sealed_client_key_is_stored_as_given(self) -> None:
        job = NewJob("acme", "openai", "/v1/chat/completions", "m", b"{}", Priority.STANDARD)
        assert stored(job, "v1:sealed")["pk"] == "v1:sealed"
        assert "pk" not in stored(job)
