"""A Redis Cluster client for the broker (``redis.mode: cluster``, docs/scaling.md).

redis-py's asyncio ``RedisCluster`` routes each command by its first key and follows MOVED and
ASK, which is all the sharded broker needs of it for single commands and scripts: every script
touches one slot by construction (``keys.py``). Three things the broker asks of a client the
cluster client lacks, and how they are met here:

- **transactions** (``pipeline(transaction=True)``): the broker uses MULTI only on home keys
  (tenants, files, batches), which share one slot; such a pipeline runs on a plain client of the
  node that owns the home slot;
- **pub/sub**: classic PUBLISH reaches every node of a cluster, so one subscriber connection to
  any node (the home slot's) hears every channel;
- **pipelined script calls** (``pipelining.AutoPipeline``): grouped by the node owning each call's
  slot and written to that node in one round trip (``node_client``).

The node clients follow the cluster's slot map as the cluster client learns it; a call that meets
a MOVED reply (slots moving while the cluster grows) is sent again through the cluster client,
which follows the redirect and refreshes the map.
"""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterPipeline, RedisCluster

from anygate.broker.keys import shard_prefix


class ShardedRedis(RedisCluster):
    """``RedisCluster`` plus transactions and pub/sub on the home slot's node."""

    def __init__(self, *, home_key: str, node_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home_key = home_key
        self._node_options = node_options
        self._node_clients: dict[tuple[str, int], Redis] = {}

    def node_client(self, key: str) -> Redis:
        """A plain client of the node that owns ``key``'s slot (the cluster must be
        initialized: any command, ``ping`` included, does it)."""
        node = self.get_node_from_key(key)
        if node is None:
            raise RuntimeError(f"no node serves the slot of {key!r}")
        address = (node.host, int(node.port))
        client = self._node_clients.get(address)
        if client is None:
            client = Redis(host=node.host, port=int(node.port), **self._node_options)
            self._node_clients[address] = client
        return client

    def home(self) -> Redis:
        """The node that holds the home slot: tenants, keys, files, batches, control plane."""
        if self._initialize:
            raise RuntimeError("the cluster client is not initialized yet: await ping() first")
        return self.node_client(self._home_key)

    def pipeline(  # type: ignore[override]
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline | Pipeline:
        if transaction:
            return self.home().pipeline(transaction=True)
        return super().pipeline()

    def pubsub(self, **kwargs: Any) -> PubSub:
        return self.home().pubsub(**kwargs)

    async def aclose(self) -> None:
        clients, self._node_clients = list(self._node_clients.values()), {}
        for client in clients:
            await client.aclose()
        await super().aclose()


def create_cluster(url: str, namespace: str, options: dict[str, Any]) -> Redis:
    """A ``ShardedRedis`` from one seed node's URL and ``redis_options``-style options.

    Typed as ``Redis``: the broker calls the commands both clients answer alike, and the ones
    that differ (transactions, pub/sub, pipelined scripts) are supplied above. The blocking
    pool of a single-node client has no cluster twin: each node gets a pool of
    ``max_connections``."""
    node_options = {k: v for k, v in options.items() if k != "connection_class"}
    cluster_options = {
        k: v
        for k, v in options.items()
        if k not in ("connection_class", "retry_on_error", "health_check_interval")
    }
    client = ShardedRedis.from_url(
        url,
        home_key=shard_prefix(namespace, ""),
        node_options=node_options,
        **cluster_options,
    )
    return cast("Redis", client)


def as_cluster(redis: Redis) -> ShardedRedis | None:
    """The cluster client behind ``redis``, or None for a single node (or Sentinel)."""
    obj: object = redis
    return obj if isinstance(obj, ShardedRedis) else None
