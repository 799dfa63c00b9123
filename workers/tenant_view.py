"""The tenants' quotas as a worker enforces them, kept current from the tenant store.

Claims enforce ``max_in_flight`` and the rate gate each tenant's rpm/tpm, on every job: they
read this local copy, never Redis. An ``auth`` announcement (any tenant changed) marks it
stale and the next claim reloads it first; the heartbeat checks it too, in case an
announcement was missed during a reconnect. A check is one GET of the tenants' version
counter: the table itself is read only when some tenant changed.
"""

from __future__ import annotations

from anygate.broker import Broker
from anygate.broker.quotas import in_flight_caps
from anygate.broker.shard_quotas import in_flight_elsewhere
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import TenantRecord
from anygate.workers.rate_gate import RateGate


class TenantView:
    """``pool``: the worker's pool. On a sharded broker its claims see only their own shard's
    in-flight counts, so each cap is lowered by the tenant's running jobs on the other shards,
    read again on every heartbeat (``shard_quotas.py``)."""

    def __init__(self, store: TenantStore, broker: Broker, gate: RateGate, pool: str) -> None:
        self._store = store
        self._broker = broker
        self._gate = gate
        self._version = -1
        self._tenants: list[TenantRecord] = []
        self._keys = broker.keys.for_pool(pool)
        self.stale = True

    def changed(self, _message: str = "") -> None:
        self.stale = True

    async def refresh(self) -> None:
        """One GET when nothing changed; the whole table only when the version moved (read
        before the table: a change made meanwhile bumps it again and is picked up next time)."""
        self.stale = False
        try:
            version = await self._store.version()
            if version != self._version:
                self._tenants = await self._store.all_tenants()
                self._gate.use_tenants(self._tenants)
            elsewhere: dict[str, int] = {}
            if len(self._keys.shards) > 1:
                capped = [t.id for t in self._tenants if t.quotas.max_in_flight is not None]
                redis = self._store.redis
                elsewhere = await in_flight_elsewhere(redis, self._keys, capped)
        except BaseException:
            self.stale = True
            raise
        self._version = version
        self._broker.in_flight_caps = in_flight_caps(self._tenants, elsewhere)
