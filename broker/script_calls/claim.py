"""``claim-13.lua``: a worker takes up to N jobs; the reply decoded into ``ClaimedJob``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.models import ENDPOINTS_BY_CODE, ClaimedJob
from anygate.broker.scripts import Arg, Scripts
from anygate.config import Priority

CLAIM_FIELDS = (
    "id",
    "attempt",
    "tenant",
    "endpoint",
    "model",
    "body",
    "priority",
    "stream",
    "entry",
    "plan",
    "step",
    "step_at",
    "cooled",
    "pk",
    "reply_to",
    "tp",
    "ix",
)
"""The script answers a flat list, this many values per job, in this order (its header says the
same); ``decode_claims`` is its only reader."""


@dataclass(frozen=True, slots=True)
class ClaimKeys:
    rings: tuple[str, str, str]
    """Per class, in ``CLASS_ORDER``: the tenants with work, head first."""
    credits: tuple[str, str, str]
    wrr: str
    redeliver: str
    delayed: str
    leases: str
    stats: str
    tenant_weights: str
    metrics: str

    @classmethod
    def of(cls, k: KeySpace, pool: str) -> ClaimKeys:
        a, b, c = CLASS_ORDER
        return cls(
            (k.ring(pool, a), k.ring(pool, b), k.ring(pool, c)),
            (k.credits(pool, a), k.credits(pool, b), k.credits(pool, c)),
            k.wrr(pool),
            k.redeliver(pool),
            k.delayed(pool),
            k.leases(pool),
            k.stats(pool),
            k.tenant_weights(pool),
            k.metrics_jobs,
        )

    def keys(self) -> list[str]:
        return [
            *self.rings,
            *self.credits,
            self.wrr,
            self.redeliver,
            self.delayed,
            self.leases,
            self.stats,
            self.tenant_weights,
            self.metrics,
        ]


@dataclass(frozen=True, slots=True)
class ClaimArgs:
    prefix: str
    pool: str
    worker_id: str
    lease_ms: int
    max_jobs: int
    class_weights: tuple[int, int, int]
    """In ``CLASS_ORDER``."""
    ttl_s: int
    in_flight_caps: str
    """``quotas.in_flight_caps``: a tenant at its cap is passed over."""
    token: str = ""
    """A claim whose reply was lost is repeated with the same token, and answers with the jobs
    the first call took."""

    def argv(self) -> list[Arg]:
        return [
            self.prefix,
            self.pool,
            self.worker_id,
            self.lease_ms,
            self.max_jobs,
            *self.class_weights,
            self.ttl_s,
            self.in_flight_caps,
            self.token,
        ]


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
                trace=f["tp"],
                created_ms=int(f["ix"].partition("-")[0] or 0),
                queued_ms=int(f["entry"].partition("-")[0] or 0),
            )
        )
    return jobs


async def claim(scripts: Scripts, keys: ClaimKeys, args: ClaimArgs) -> list[ClaimedJob]:
    """Besides its keys, the script touches, under the prefix: ``job:``, ``body:``, ``ev:`` and
    ``n:`` of each job it starts or expires, ``lane:<pool>:<class>:<tenant>`` of the tenants it
    serves, ``tinflight``, ``tqueued``, ``claimed:<worker>``, ``paused:<pool>``,
    ``idle:<pool>``, and what ending an expired job touches (``batch:``, ``jobhooks``,
    ``reply:``)."""
    return decode_claims(await scripts.claim.call(keys, args))
