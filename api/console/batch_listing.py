"""Which batches the Batches page lists (docs/console.md#batches), read from the batch store's
indexes (``broker/batch_store.py``): ``batches:active`` (every batch not yet ended, any
tenant) and each tenant's ``tbatches:{tenant}`` (newest first). Without a tenant filter the
page shows the active ones and a few recent ones per tenant; with one, that tenant's pages."""

from __future__ import annotations

from dataclasses import dataclass

from anygate.api.gateway import Gateway
from anygate.broker.batch_store import Batch, BatchStore

MAX_ACTIVE = 200
RECENT_PER_TENANT = 5
MAX_TENANTS = 100
PAGE = 50


@dataclass(frozen=True, slots=True)
class Overview:
    active: list[Batch]
    active_truncated: bool
    recent: list[tuple[str, list[Batch]]]
    """(tenant, its newest batches) for each tenant with any."""
    tenants_truncated: bool


def store_of(gw: Gateway) -> BatchStore:
    return BatchStore(gw.redis, gw.broker.keys)


async def overview(gw: Gateway) -> Overview:
    store = store_of(gw)
    ids = await store.active_ids()
    active = [b for b in [await store.load(i) for i in ids[:MAX_ACTIVE]] if b is not None]
    active.sort(key=lambda b: int(b.h.get("created_at") or 0), reverse=True)
    tenants, more_tenants = await gw.tenants.list_tenants(limit=MAX_TENANTS)
    recent: list[tuple[str, list[Batch]]] = []
    for tenant in tenants:
        batches, _ = await store.page(tenant.id, after=None, limit=RECENT_PER_TENANT)
        if batches:
            recent.append((tenant.id, batches))
    return Overview(active, len(ids) > MAX_ACTIVE, recent, more_tenants)


async def tenant_page(
    gw: Gateway, tenant: str, after: str | None
) -> tuple[list[Batch], str | None]:
    """A page of the tenant's batches, newest first, and the next page's cursor."""
    batches, has_more = await store_of(gw).page(tenant, after=after, limit=PAGE)
    return batches, batches[-1].id if has_more and batches else None
