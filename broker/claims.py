"""The reply of ``claim-12.lua``, decoded: one codec, next to the list of its fields.

The script answers a flat list, ``len(CLAIM_FIELDS)`` values per job, in this order (its header
says the same); ``decode_claims`` is the only reader.
"""

from __future__ import annotations

from typing import Any

from anygate.broker.models import ENDPOINTS_BY_CODE, ClaimedJob
from anygate.config import Priority

CLAIM_FIELDS = (
    "id", "attempt", "tenant", "endpoint", "model", "body", "priority", "stream", "entry", "plan",
    "step", "step_at", "cooled", "pk", "reply_to",
)  # fmt: skip


def decode_claims(flat: list[Any]) -> list[ClaimedJob]:
    width = len(CLAIM_FIELDS)
    if len(flat) % width:
        raise ValueError(f"claim reply of {len(flat)} values is not {width} per job")
    jobs = []
    for i in range(0, len(flat), width):
        f = dict(zip(CLAIM_FIELDS, flat[i : i + width], strict=True))
        jobs.append(
            ClaimedJob(
                id=f["id"],
                attempt=int(f["attempt"]),
                tenant=f["tenant"],
                endpoint=ENDPOINTS_BY_CODE[f["endpoint"]],
                model=f["model"],
                body=f["body"].encode(),
                priority=Priority(f["priority"]),
                stream=f["stream"] == "1",
                plan=f["plan"],
                step=int(f["step"] or 0),
                step_started_attempt=int(f["step_at"] or 1),
                cooled=int(f["cooled"] or 0),
                client_key=f["pk"],
                reply_to=f["reply_to"],
            )
        )
    return jobs
