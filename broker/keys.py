"""The Redis key layout, in one place (docs/architecture.md draws the same table).

Every key starts with ``ag:{<namespace>}:``; the braces make the namespace the hash tag, so every
key a script touches, including the ones it derives at run time from the prefix, hashes to the same
cluster slot. Pool, class and tenant names are validated to ``[A-Za-z0-9_.-]`` by config, so
they are safe inside key names.
"""

from __future__ import annotations

from dataclasses import dataclass

from anygate.config import Priority

CLASS_ORDER: tuple[Priority, ...] = (Priority.INTERACTIVE, Priority.STANDARD, Priority.BATCH)


@dataclass(frozen=True, slots=True)
class KeySpace:
    namespace: str

    @property
    def prefix(self) -> str:
        return f"ag:{{{self.namespace}}}:"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def body(self, job_id: str) -> str:
        return f"{self.prefix}body:{job_id}"

    def events(self, job_id: str) -> str:
        return f"{self.prefix}ev:{job_id}"

    def job_channel(self, job_id: str) -> str:
        return f"{self.prefix}n:{job_id}"

    def reply_channel(self, instance: str) -> str:
        return f"{self.prefix}reply:{instance}"

    def worker_channel(self, worker_id: str) -> str:
        return f"{self.prefix}ctl:{worker_id}"

    def wake_channel(self, pool: str) -> str:
        return f"{self.prefix}wake:{pool}"

    def lane(self, pool: str, priority: Priority, tenant: str) -> str:
        return f"{self.prefix}lane:{pool}:{priority.value}:{tenant}"

    def ring(self, pool: str, priority: Priority) -> str:
        return f"{self.prefix}ring:{pool}:{priority.value}"

    def credits(self, pool: str, priority: Priority) -> str:
        return f"{self.prefix}credit:{pool}:{priority.value}"

    def wrr(self, pool: str) -> str:
        return f"{self.prefix}wrr:{pool}"

    def redeliver(self, pool: str) -> str:
        return f"{self.prefix}redeliver:{pool}"

    def delayed(self, pool: str) -> str:
        return f"{self.prefix}delayed:{pool}"

    def leases(self, pool: str) -> str:
        return f"{self.prefix}leases:{pool}"

    def stats(self, pool: str) -> str:
        return f"{self.prefix}stats:{pool}"

    def tenant_weights(self, pool: str) -> str:
        return f"{self.prefix}tweight:{pool}"

    def dead(self, pool: str) -> str:
        return f"{self.prefix}dead:{pool}"

    def workers(self, pool: str) -> str:
        return f"{self.prefix}workers:{pool}"

    def tenant_jobs(self, tenant: str) -> str:
        return f"{self.prefix}tjobs:{tenant}"

    def rate_log(self, limit: str) -> str:
        return f"{self.prefix}rlog:{limit}"

    def rate_sum(self, limit: str) -> str:
        return f"{self.prefix}rsum:{limit}"

    def deployment_health(self, deployment: str) -> str:
        return f"{self.prefix}dh:{deployment}"

    @property
    def health_channel(self) -> str:
        return f"{self.prefix}health"

    def tenant_usage(self, tenant: str, period: str) -> str:
        """A tenant's usage in one UTC day (``YYYYMMDD``) or month (``YYYYMM``)."""
        return f"{self.prefix}usage:{tenant}:{period}"

    def budget_warned(self, crossing_id: str) -> str:
        """Set (NX) when a budget threshold's crossing is announced: once per period."""
        return f"{self.prefix}budgetw:{crossing_id}"

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
        """The cluster's token and cost counters per model and tenant (``finish-6.lua``)."""
        return f"{self.prefix}metrics:tokens"

    def tenant(self, tenant: str) -> str:
        return f"{self.prefix}tenant:{tenant}"

    @property
    def tenant_ids(self) -> str:
        """Every tenant id (deleted ones too, as tombstones), scored by creation time."""
        return f"{self.prefix}tenants"

    @property
    def tenants_version(self) -> str:
        """A counter every tenant change increments (workers reload only when it moved)."""
        return f"{self.prefix}tenants:ver"

    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}apikey:{key_id}"

    @property
    def api_key_index(self) -> str:
        """SHA-256 of a key → its id: the lookup authentication makes."""
        return f"{self.prefix}apikeys"

    def tenant_keys(self, tenant: str) -> str:
        return f"{self.prefix}tkeys:{tenant}"

    @property
    def auth_channel(self) -> str:
        """Published on every change to a tenant or key: API processes drop their caches."""
        return f"{self.prefix}auth"

    def client_key(self, job_id: str) -> str:
        """A job's client provider key (BYOK), encrypted; deleted when the job ends."""
        return f"{self.prefix}pk:{job_id}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    @property
    def active_batches(self) -> str:
        """Batches not yet ended: what the control plane drives on each tick."""
        return f"{self.prefix}batches:active"

    def tenant_batches(self, tenant: str) -> str:
        return f"{self.prefix}tbatches:{tenant}"

    def batch_jobs(self, batch_id: str) -> str:
        """The batch's job ids in input-line order (lines that never became jobs are absent)."""
        return f"{self.prefix}bjobs:{batch_id}"

    def batch_rejects(self, batch_id: str) -> str:
        """Error-file lines for input lines that never became jobs (JSON, in line order)."""
        return f"{self.prefix}brej:{batch_id}"

    @property
    def job_webhooks(self) -> str:
        """Ids of ended jobs whose ``webhook_url`` the control plane has yet to hand to arq."""
        return f"{self.prefix}jobhooks"

    def batch_lock(self, batch_id: str) -> str:
        return f"{self.prefix}block:{batch_id}"

    def idempotency(self, tenant: str, digest: str) -> str:
        return f"{self.prefix}idem:{tenant}:{digest}"

    def idle(self, pool: str) -> str:
        """Set by a claim that came back short: the pool's workers sleep until a wake."""
        return f"{self.prefix}idle:{pool}"

    def claimed(self, worker_id: str) -> str:
        """A worker's last claim token and the jobs it took (``claim-13.lua``), for a minute."""
        return f"{self.prefix}claimed:{worker_id}"

    @property
    def clock(self) -> str:
        """When any reclaim last ran, and the grace after a Redis outage (``reclaim-6.lua``)."""
        return f"{self.prefix}clock"

    def paused(self, pool: str) -> str:
        """Set while an operator holds the pool (admin API): its workers claim nothing."""
        return f"{self.prefix}paused:{pool}"

    def file(self, file_id: str) -> str:
        """An uploaded file's metadata (hash); written only once every chunk is stored."""
        return f"{self.prefix}file:{file_id}"

    def file_data(self, file_id: str) -> str:
        """A file's bytes as a list of chunks of whole lines (~``files.chunk_bytes`` each)."""
        return f"{self.prefix}fdata:{file_id}"

    def tenant_files(self, tenant: str) -> str:
        """A tenant's file ids scored by creation ms: the cursor for ``GET /v1/files``."""
        return f"{self.prefix}tfiles:{tenant}"

    def file_bad_lines(self, file_id: str) -> str:
        """A batch file's identifiable but invalid lines (JSON): they go to the error file."""
        return f"{self.prefix}fbad:{file_id}"
