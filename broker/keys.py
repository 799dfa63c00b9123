"""The Redis key layout, in one place (docs/architecture.md and docs/scaling.md draw it).

Every key starts with ``ag:{<namespace>}:`` or ``ag:{<namespace>:<shard>}:``; the braces make the
part inside the hash tag, so every key a script touches, including the ones it derives at run time
from the prefix it is given, hashes to the same cluster slot. There are three kinds of key:

- **home** keys (tenants, API keys, files, batches, rate windows, deployment health …) under the
  namespace's own tag, whatever the shard;
- **pool** keys (lanes, rings, leases, stats …) under the tag of the pool's shard
  (``AnygateConfig.shard_of``);
- **job** keys (record, body, events, channel) under the tag of the shard the job id names
  (``job_<random>.<shard>``; no suffix: the home shard), so any process finds a job in one hop,
  and **shard** keys (a tenant's job index, queued and in-flight counts, usage, cluster counters)
  under ``prefix``: the tag of the shard this space is ``on``.

A space made ``on(shard)`` puts job keys on that shard whatever the id says: a worker holds the
jobs of its pool's shard, among them jobs handed off from another shard (``handoff.py``).
On one Redis every pool's shard is the home shard by default and nothing changes. Pool, class
and tenant names are validated to ``[A-Za-z0-9_.-]`` by config, so they are safe in key names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from anygate.config import AnygateConfig, Priority

CLASS_ORDER: tuple[Priority, ...] = (Priority.INTERACTIVE, Priority.STANDARD, Priority.BATCH)

HOME = ""
"""The namespace's own shard: home keys, and every pool unless config places it elsewhere."""

MOVED = "moved"
"""The status of a job's record on a shard it was handed off from: ``moved_to`` names the shard
that holds the job now (``handoff.py``)."""

_SHARD = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def job_shard(job_id: str) -> str:
    """The shard a job id names: the part after its last ``.``; none (or not a valid shard name,
    as in an id a client made up): the home shard."""
    _, dot, shard = job_id.rpartition(".")
    return shard if dot and _SHARD.match(shard) else HOME


def shard_prefix(namespace: str, shard: str) -> str:
    return f"ag:{{{namespace}}}:" if shard == HOME else f"ag:{{{namespace}:{shard}}}:"


@dataclass(frozen=True, slots=True)
class KeySpace:
    namespace: str
    pool_shards: Mapping[str, str] = field(default_factory=dict)
    """Pool → shard (``AnygateConfig.pool_shards``); a pool not named is on the home shard."""
    pinned: str | None = None
    """The shard this space is ``on``; ``None``: the home shard, job keys by their id."""
    shards: tuple[str, ...] = ()
    """Every shard in use, the home shard first: readers of shard keys visit each. Derived from
    ``pool_shards`` once, and handed on by ``on``: the hot paths ask for it on every call."""

    def __post_init__(self) -> None:
        if not self.shards:
            others = sorted({s for s in self.pool_shards.values() if s != HOME})
            object.__setattr__(self, "shards", (HOME, *others))

    @classmethod
    def of(cls, config: AnygateConfig) -> KeySpace:
        return cls(config.redis.namespace, config.pool_shards())

    @property
    def prefix(self) -> str:
        """The prefix of this space's shard: what its scripts derive their keys from."""
        return shard_prefix(self.namespace, self.pinned or HOME)

    @property
    def home_prefix(self) -> str:
        return shard_prefix(self.namespace, HOME)

    @property
    def shard(self) -> str:
        return self.pinned or HOME

    def on(self, shard: str) -> KeySpace:
        """The same layout, seen from one shard (a worker's, or the one a job lives on)."""
        return KeySpace(self.namespace, self.pool_shards, shard, self.shards)

    def for_pool(self, pool: str) -> KeySpace:
        return self.on(self.shard_of_pool(pool))

    def for_job(self, job_id: str) -> KeySpace:
        return self.on(job_shard(job_id))

    def shard_of_pool(self, pool: str) -> str:
        return self.pool_shards.get(pool, HOME)

    def _job_prefix(self, job_id: str) -> str:
        return (
            self.prefix
            if self.pinned is not None
            else shard_prefix(self.namespace, job_shard(job_id))
        )

    def _pool_prefix(self, pool: str) -> str:
        return shard_prefix(self.namespace, self.shard_of_pool(pool))

    def job(self, job_id: str) -> str:
        return f"{self._job_prefix(job_id)}job:{job_id}"

    def body(self, job_id: str) -> str:
        return f"{self._job_prefix(job_id)}body:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self._job_prefix(job_id)}ev:{job_id}"

    def job_channel(self, job_id: str) -> str:
        """Named by the shard the id names, wherever the job is now (``_lib.lua``'s
        ``job_channel``): a watcher follows a job handed off to another shard unawares."""
        return f"{shard_prefix(self.namespace, job_shard(job_id))}n:{job_id}"

    def reply_channel(self, instance: str) -> str:
        return f"{self.home_prefix}reply:{instance}"

    def worker_channel(self, worker_id: str) -> str:
        return f"{self.home_prefix}ctl:{worker_id}"

    def wake_channel(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}wake:{pool}"

    def lane(self, pool: str, priority: Priority, tenant: str) -> str:
        return f"{self._pool_prefix(pool)}lane:{pool}:{priority.value}:{tenant}"

    def ring(self, pool: str, priority: Priority) -> str:
        return f"{self._pool_prefix(pool)}ring:{pool}:{priority.value}"

    def credits(self, pool: str, priority: Priority) -> str:
        return f"{self._pool_prefix(pool)}credit:{pool}:{priority.value}"

    def wrr(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}wrr:{pool}"

    def redeliver(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}redeliver:{pool}"

    def delayed(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}delayed:{pool}"

    def leases(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}leases:{pool}"

    def stats(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}stats:{pool}"

    def tenant_weights(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}tweight:{pool}"

    def parked(self, pool: str, queue: str) -> str:
        """Jobs parked for a provider batch (``script_calls.provider_batch.parked_queue``: one
        endpoint of one deployment), scored by the time each must go live."""
        return f"{self._pool_prefix(pool)}pbq:{pool}:{queue}"

    def provider_batch_queues(self, pool: str) -> str:
        """The names of the pool's parked queues that ever held a job (set): the control
        plane finds them here, including a queue whose deployment left the configuration."""
        return f"{self._pool_prefix(pool)}pbqueues:{pool}"

    def provider_batch_lock(self, pool: str, name: str) -> str:
        """One control process at a time collects a queue or follows a batch."""
        return f"{self._pool_prefix(pool)}pblock:{name}"

    def provider_batch(self, pool: str, batch_id: str) -> str:
        """A provider batch the control plane follows (hash): its deployment, the provider's
        id for it, its state, cutoff and line count."""
        return f"{self._pool_prefix(pool)}pb:{batch_id}"

    def provider_batch_jobs(self, pool: str, batch_id: str) -> str:
        """A provider batch's jobs: job id → the attempt the batch holds (the finish's fence)."""
        return f"{self._pool_prefix(pool)}pbjobs:{batch_id}"

    def provider_batches(self, pool: str) -> str:
        """The pool's provider batches not yet finished with (zset by cutoff)."""
        return f"{self._pool_prefix(pool)}pbactive:{pool}"

    def dead(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}dead:{pool}"

    def workers(self, pool: str) -> str:
        return f"{self._pool_prefix(pool)}workers:{pool}"

    @property
    def control_ticked(self) -> str:
        """Set by every batch tick of the control plane: the sign that it runs."""
        return f"{self.home_prefix}control:ticked"

    def tenant_jobs(self, tenant: str) -> str:
        return f"{self.prefix}tjobs:{tenant}"

    def rate_log(self, limit: str) -> str:
        return f"{self.home_prefix}rlog:{limit}"

    def rate_sum(self, limit: str) -> str:
        return f"{self.home_prefix}rsum:{limit}"

    def rate_line(self, limit: str) -> str:
        """Who waits for room in a rate window, and when it comes (``ratewindow-3.lua``)."""
        return f"{self.home_prefix}rwait:{limit}"

    def console_session(self, digest: str) -> str:
        """A console session (hash: actor, CSRF token, times), by the SHA-256 of its cookie's
        token, so a dump of Redis holds no cookie that works; it expires when left idle."""
        return f"{self.home_prefix}console:s:{digest}"

    def console_form_posted(self, digest: str) -> str:
        """Set (NX) when a console form with this one-time token (its SHA-256) is posted: a
        reloaded answer page cannot make a second key."""
        return f"{self.home_prefix}console:once:{digest}"

    def console_login_failures(self, client: str) -> str:
        """Failed console logins from one client address in the current minute (a counter)."""
        return f"{self.home_prefix}console:fail:{client}"

    def deployment_health(self, deployment: str) -> str:
        return f"{self.home_prefix}dh:{deployment}"

    @property
    def health_channel(self) -> str:
        return f"{self.home_prefix}health"

    def tenant_usage(self, tenant: str, period: str) -> str:
        """A tenant's usage in one UTC day (``YYYYMMDD``) or month (``YYYYMM``)."""
        return f"{self.prefix}usage:{tenant}:{period}"

    def budget_warned(self, crossing_id: str) -> str:
        """Set (NX) when a budget threshold's crossing is announced: once per period."""
        return f"{self.home_prefix}budgetw:{crossing_id}"

    @property
    def tenants_queued(self) -> str:
        return f"{self.prefix}tqueued"

    @property
    def tenants_in_flight(self) -> str:
        return f"{self.prefix}tinflight"

    @property
    def metrics_jobs(self) -> str:
        """The cluster's job counters (``cluster_counters.py``): submitted, started, finished,
        redelivered; added to by the scripts that make each change, never reset."""
        return f"{self.prefix}metrics:jobs"

    @property
    def metrics_tokens(self) -> str:
        """The cluster's token and cost counters per model and tenant (``finish-5.lua``)."""
        return f"{self.prefix}metrics:tokens"

    def tenant(self, tenant: str) -> str:
        return f"{self.home_prefix}tenant:{tenant}"

    @property
    def tenant_ids(self) -> str:
        """Every tenant id (deleted ones too, as tombstones), scored by creation time."""
        return f"{self.home_prefix}tenants"

    @property
    def tenants_version(self) -> str:
        """A counter every tenant change increments (workers reload only when it moved)."""
        return f"{self.home_prefix}tenants:ver"

    def api_key(self, key_id: str) -> str:
        return f"{self.home_prefix}apikey:{key_id}"

    @property
    def api_key_index(self) -> str:
        """SHA-256 of a key → its id: the lookup authentication makes."""
        return f"{self.home_prefix}apikeys"

    def tenant_keys(self, tenant: str) -> str:
        return f"{self.home_prefix}tkeys:{tenant}"

    @property
    def auth_channel(self) -> str:
        """Published on every change to a tenant or key: API processes drop their caches."""
        return f"{self.home_prefix}auth"

    def client_key(self, job_id: str) -> str:
        """A job's client provider key (BYOK), encrypted; deleted when the job ends."""
        return f"{self._job_prefix(job_id)}pk:{job_id}"

    def batch(self, batch_id: str) -> str:
        return f"{self.home_prefix}batch:{batch_id}"

    @property
    def active_batches(self) -> str:
        """Batches not yet ended: what the control plane drives on each tick."""
        return f"{self.home_prefix}batches:active"

    def tenant_batches(self, tenant: str) -> str:
        return f"{self.home_prefix}tbatches:{tenant}"

    @property
    def handoffs(self) -> str:
        """Hand-offs to another shard begun on this one (``handoff.py``): ``<job id>|<target
        shard>`` scored by when step 1 ran; a member left here long was cut short."""
        return f"{self.prefix}handoffs"

    def parcel(self, job_id: str) -> str:
        """A job between the two steps of a hand-off: what the target shard takes in."""
        return f"{self.prefix}parcel:{job_id}"

    def batch_done(self, batch_id: str) -> str:
        """A batch's ended-line counts on a shard other than the home one (``_lib.lua``)."""
        return f"{self.prefix}bdone:{batch_id}"

    def batch_jobs(self, batch_id: str) -> str:
        """The batch's job ids in input-line order (lines that never became jobs are absent)."""
        return f"{self.home_prefix}bjobs:{batch_id}"

    def batch_rejects(self, batch_id: str) -> str:
        """Error-file lines for input lines that never became jobs (JSON, in line order)."""
        return f"{self.home_prefix}brej:{batch_id}"

    @property
    def job_webhooks(self) -> str:
        """Ids of ended jobs whose ``webhook_url`` the control plane has yet to hand to arq."""
        return f"{self.prefix}jobhooks"

    def batch_lock(self, batch_id: str) -> str:
        return f"{self.home_prefix}block:{batch_id}"

    def idempotency(self, tenant: str, digest: str) -> str:
        return f"{self.prefix}idem:{tenant}:{digest}"

    def idle(self, pool: str) -> str:
        """Set by a claim that came back short: the pool's workers sleep until a wake."""
        return f"{self._pool_prefix(pool)}idle:{pool}"

    def claimed(self, worker_id: str) -> str:
        """A worker's last claim token and the jobs it took (``claim-13.lua``), for a minute."""
        return f"{self.prefix}claimed:{worker_id}"

    @property
    def clock(self) -> str:
        """When any reclaim last ran, and the grace after a Redis outage (``reclaim-6.lua``)."""
        return f"{self.prefix}clock"

    def paused(self, pool: str) -> str:
        """Set while an operator holds the pool (admin API): its workers claim nothing."""
        return f"{self._pool_prefix(pool)}paused:{pool}"

    def file(self, file_id: str) -> str:
        """An uploaded file's metadata (hash); written only once every chunk is stored."""
        return f"{self.home_prefix}file:{file_id}"

    def file_data(self, file_id: str) -> str:
        """A file's bytes as a list of chunks of whole lines (~``files.chunk_bytes`` each)."""
        return f"{self.home_prefix}fdata:{file_id}"

    def tenant_files(self, tenant: str) -> str:
        """A tenant's file ids scored by creation ms: the cursor for ``GET /v1/files``."""
        return f"{self.home_prefix}tfiles:{tenant}"

    def file_bad_lines(self, file_id: str) -> str:
        """A batch file's identifiable but invalid lines (JSON): they go to the error file."""
        return f"{self.home_prefix}fbad:{file_id}"
