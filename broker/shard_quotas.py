"""A tenant's limits on a sharded broker: exact on the shard a script runs on, and across shards
to within one read (docs/scaling.md#quotas).

``enqueue-2.lua`` refuses a job when the tenant's queued jobs or usage reach a limit, and
``claim-13.lua`` passes over a tenant at its in-flight cap, each atomically, but each sees only
the counters of its own shard. So before the script runs the limit is lowered by what the other
shards hold: the script still decides atomically on its own shard, and a race with a job on
another shard in the same instant can overshoot by that job alone. On one Redis there are no
other shards and the limits pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from anygate.broker.connection import awaited
from anygate.broker.keys import KeySpace
from anygate.broker.quotas import UsagePeriods
from anygate.config import TenantQuotas


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """What a tenant holds on the shards other than the one a script runs on."""

    queued: int = 0
    day_tokens: int = 0
    day_usd: float = 0.0
    month_tokens: int = 0
    month_usd: float = 0.0

    def lower(self, quotas: TenantQuotas) -> TenantQuotas:
        """The limits left for this shard (built without validation: a limit already spent
        elsewhere becomes 0 or less, which the script reads as reached)."""

        def left(limit: float | None, used: float) -> float | None:
            return None if limit is None else limit - used

        return TenantQuotas.model_construct(
            **{
                **quotas.model_dump(),
                "max_queued": left(quotas.max_queued, self.queued),
                "daily_tokens": left(quotas.daily_tokens, self.day_tokens),
                "monthly_tokens": left(quotas.monthly_tokens, self.month_tokens),
                "daily_usd": left(quotas.daily_usd, self.day_usd),
                "monthly_usd": left(quotas.monthly_usd, self.month_usd),
            }
        )


async def submit_elsewhere(
    redis: Redis, keys: KeySpace, tenant: str, periods: UsagePeriods
) -> Elsewhere:
    """The tenant's queued jobs and usage on every shard but ``keys``' own."""
    others = [keys.on(s) for s in keys.shards if s != keys.shard]
    if not others:
        return Elsewhere()
    async with redis.pipeline(transaction=False) as pipe:
        for on in others:
            pipe.hget(on.tenants_queued, tenant)
            pipe.hmget(on.tenant_usage(tenant, periods.day), ["tokens", "cost_usd"])
            pipe.hmget(on.tenant_usage(tenant, periods.month), ["tokens", "cost_usd"])
        replies = await pipe.execute()
    queued = day_t = month_t = 0
    day_usd = month_usd = 0.0
    for i in range(0, len(replies), 3):
        queued += max(0, int(replies[i] or 0))
        day_t += int(replies[i + 1][0] or 0)
        day_usd += float(replies[i + 1][1] or 0)
        month_t += int(replies[i + 2][0] or 0)
        month_usd += float(replies[i + 2][1] or 0)
    return Elsewhere(queued, day_t, day_usd, month_t, month_usd)


async def in_flight_elsewhere(
    redis: Redis, keys: KeySpace, tenants: Iterable[str]
) -> dict[str, int]:
    """Each tenant's running jobs on every shard but ``keys``' own."""
    wanted = list(tenants)
    totals = dict.fromkeys(wanted, 0)
    for shard in keys.shards:
        if shard == keys.shard or not wanted:
            continue
        counts = await awaited(redis.hmget(keys.on(shard).tenants_in_flight, wanted))
        for tenant, n in zip(wanted, counts, strict=True):
            totals[tenant] += max(0, int(n or 0))
    return totals
