"""The control plane prunes every tenant's job index, not only the config file's tenants:
tenants created through the admin API, and deleted ones, have indexes too."""

from __future__ import annotations

from redis.asyncio import Redis

from anygate.broker import Broker
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig, TenantSettings
from anygate.workers.control import prune_job_indexes
from tests.integration.helpers import enqueue


async def test_expired_jobs_leave_the_indexes_of_config_admin_and_deleted_tenants(
    redis: Redis, config: AnygateConfig, broker: Broker
) -> None:
    store = TenantStore(redis, broker.keys)
    await store.seed(config)
    await store.create_tenant("made-by-admin", TenantSettings())
    await store.create_tenant("gone", TenantSettings())
    jobs = {t: (await enqueue(broker, t)).job_id for t in ("acme", "made-by-admin", "gone")}
    kept = (await enqueue(broker, "acme")).job_id
    await store.delete_tenant("gone")
    for job_id in jobs.values():  # as if their retention had run out
        await redis.delete(broker.keys.job(job_id))
    removed = await prune_job_indexes({"config": config, "anygate_redis": redis})
    assert removed == 3
    left = await redis.xrange(broker.keys.tenant_jobs("acme"))
    assert [fields["j"] for _id, fields in left] == [kept]
