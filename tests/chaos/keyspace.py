"""Count Redis keys by family (``ag:{ns}:<family>:…``, docs/architecture.md) and Redis's
memory, before the load and after retention, so the two can be compared.

Per-job families must come back to their baseline once every job has ended and its retention has
passed; persistent families (tenants, keys, usage, stats, batch and file records, the dead-letter
list, the tenant job index, arq's own keys) may grow, and are listed so the report shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

PER_JOB = frozenset(
    {
        "job",
        "ev",
        "body",
        "lane",
        "idem",
        "ring",
        "credit",
        "redeliver",
        "delayed",
        "leases",
        "cache",
        "cachelead",
        "jobhooks",
        "block",
        "paused",
    }
)
"""Families whose keys exist because of jobs in flight or recently ended."""
PERSISTENT = frozenset(
    {
        "tenant",
        "tenants",
        "apikey",
        "apikeys",
        "tkeys",
        "opkeys",
        "tweight",
        "wrr",
        "stats",
        "usage",
        "workers",
        "dead",
        "tjobs",
        "batch",
        "bjobs",
        "brej",
        "tbatches",
        "batches",
        "file",
        "fdata",
        "fbad",
        "tfiles",
        "control",
        "dh",
        "rlog",
        "rsum",
        "rwait",
        "idle",
        "arq",
    }
)
"""Kept on purpose (see docs/architecture.md, lifetimes): not asserted, only reported.
``tjobs`` is the tenant's job index, pruned of expired jobs once a minute; ``dead`` is capped;
``arq`` holds arq's own results (its ``keep_result``); ``dh`` a deployment's health."""


def family(key: str, prefix: str) -> str:
    if key.startswith(prefix):
        return key[len(prefix) :].split(":", 1)[0]
    return key.split(":", 1)[0]


@dataclass
class Census:
    counts: dict[str, int] = field(default_factory=dict)
    per_job_keys: dict[str, list[str]] = field(default_factory=dict)
    """Family -> the names of its keys, for the per-job families only."""
    used_memory: int = 0
    per_job_bytes: int = 0
    """MEMORY USAGE summed over the per-job families' keys."""


def take_census(client: redis.Redis, prefix: str) -> Census:
    census = Census()
    for key in client.scan_iter(count=1000):
        name = key if isinstance(key, str) else key.decode()
        fam = family(name, prefix)
        census.counts[fam] = census.counts.get(fam, 0) + 1
        if fam in PER_JOB:
            census.per_job_keys.setdefault(fam, []).append(name)
    for names in census.per_job_keys.values():
        for name in names:
            census.per_job_bytes += int(client.memory_usage(name) or 0)  # type: ignore[arg-type]
    memory: Any = client.info("memory")
    census.used_memory = int(memory["used_memory"])
    return census


def leftovers(before: Census, after: Census, allowed: set[str]) -> dict[str, int]:
    """Per-job families holding more keys than at the baseline, ``allowed`` keys not counted."""
    out: dict[str, int] = {}
    for fam, names in after.per_job_keys.items():
        extra = len([n for n in names if n not in allowed]) - before.counts.get(fam, 0)
        if extra > 0:
            out[fam] = extra
    return out
