"""A Redis Cluster client for the broker (``redis.mode: cluster``, docs/scaling.md).

redis-py's asyncio ``RedisCluster`` routes each command by its first key and follows MOVED and
ASK, which is all the sharded broker needs of it for single commands and scripts: every script
touches one slot by construction (``keys.py``). Three things the broker asks of a client the
cluster client lacks, and how they are met here:

- **transactions** (``pipeline(transaction=True)``): the broker uses MULTI only on home keys
  (tenants, files, batches), which share one slot; such a pipeline runs on a plain client of the
  node that owns the home slot;
- **pub/sub**: classic PUBLISH reaches every node of a cluster, so one subscriber connection to
  any node (the one the URL names) hears every channel;
- **pipelined script calls** (``pipelining.AutoPipeline``): grouped by the node owning each call's
  slot and written to that node in one round trip (``node_client``).

The node clients follow the cluster's slot map as the cluster client learns it; a call that meets
a MOVED reply (slots moving while the cluster grows) is sent again through the cluster client,
which follows the redirect and refreshes the map.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.connection import BlockingConnectionPool

from anygate.broker.keys import shard_prefix


class _HomeTransaction(Pipeline):
    """A MULTI/EXEC pipeline for home keys: bound to the home slot's node when it first talks
    to Redis (the cluster client may learn its slot map only then)."""

    def __init__(self, cluster: ShardedRedis) -> None:
        seed = cluster.seed_client()
        super().__init__(seed.connection_pool, seed.response_callbacks, True, None)
        self._cluster = cluster

    async def _bind(self) -> None:
        await self._cluster.initialize()
        self.connection_pool = self._cluster.home().connection_pool

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        await self._bind()
        return await super().watch(*names)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.watching:  # a watched pipeline is bound already, to its connection
            await self._bind()
        return await super().execute(raise_on_error)


class _BoundedPipeline(ClusterPipeline):
    """A cluster pipeline that waits for a free connection slot of its client."""

    def __init__(self, client: ShardedRedis) -> None:
        super().__init__(client)
        self._slots = client.slots

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        async with self._slots:
            return await super().execute(raise_on_error, allow_redirections)


class ShardedRedis(RedisCluster):
    """``RedisCluster`` plus transactions and pub/sub on the home slot's node.

    redis-py's cluster client fails a command at once (``MaxConnectionsError``) when every
    connection to a node is busy; the single-node client waits for one (a burst of 500 cancels
    from a batch's wind-down, of submits at the API). Here too a command waits: at most
    ``max_connections`` commands and pipelines of this client are under way at once."""

    def __init__(self, *, home_key: str, node_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._home_key = home_key
        self._node_options = node_options
        self._node_clients: dict[tuple[str, int], Redis] = {}
        self._seed = (str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379)))
        self.slots = asyncio.Semaphore(int(kwargs.get("max_connections", 256)))

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.slots:
            return await super().execute_command(*args, **kwargs)

    def seed_client(self) -> Redis:
        """The node given in the URL: classic pub/sub reaches every node, so it serves that."""
        return self._client_at(*self._seed)

    def _client_at(self, host: str, port: int) -> Redis:
        client = self._node_clients.get((host, port))
        if client is None:
            options = self._node_options
            pool = BlockingConnectionPool(
                host=host, port=port, timeout=options.get("socket_timeout"), **options
            )
            client = Redis.from_pool(pool)
            self._node_clients[(host, port)] = client
        return client

    def node_client(self, key: str) -> Redis:
        """A plain client of the node that owns ``key``'s slot (the cluster must be
        initialized: any command, ``ping`` included, does it)."""
        node = self.get_node_from_key(key)
        if node is None:
            raise RuntimeError(f"no node serves the slot of {key!r}")
        return self._client_at(node.host, int(node.port))

    def home(self) -> Redis:
        """The node that holds the home slot: tenants, keys, files, batches, control plane."""
        if self._initialize:
            raise RuntimeError("the cluster client is not initialized yet: await ping() first")
        return self.node_client(self._home_key)

    def pipeline(  # type: ignore[override]
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline | Pipeline:
        if transaction:
            return _HomeTransaction(self)
        return _BoundedPipeline(self)  # type: ignore[abstract]

    def pubsub(self, **kwargs: Any) -> PubSub:
        return self.seed_client().pubsub(**kwargs)

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
