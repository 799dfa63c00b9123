"""What a configuration reload would change, and whether it may change it live
(docs/operations.md#reloading-configuration).

Pure: no I/O, no clock. A process asks ``plan_reload(old, new)`` for the difference between the
config it runs and the one just read, as leaf paths (``models.fast.deployments[0].model``), and
for the changes among them that it cannot apply without a restart. The restart-only paths are one
list, the same for every process, so the API, the workers and the control plane make the same
decision on the same file; a process adds only what concerns itself alone (a worker's own pool
gone) through ``extra_problems``.

Restart-only entries are path patterns (``*`` is one segment) matched as prefixes, so a field
added later under a restart-only section (``redis.sentinel``, a pool's ``shard``) is restart-only
without touching this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from anygate.config.loader import format_loc
from anygate.config.model import AnygateConfig
from anygate.config.secrets import SecretRef, SecretResolutionError

Path = tuple[str | int, ...]
"""A leaf's place in the config tree: ``("models", "fast", "deployments", 0, "model")``.
Segments stay apart (an alias may hold a dot: ``gemini-2.5-flash``)."""


@dataclass(frozen=True, slots=True)
class RestartOnly:
    pattern: tuple[str, ...]
    """Path prefix; ``*`` matches any one segment."""
    reason: str

    def matches(self, path: Path) -> bool:
        if len(path) < len(self.pattern):
            return False
        return all(p == "*" or p == str(s) for p, s in zip(self.pattern, path, strict=False))


RESTART_ONLY: tuple[RestartOnly, ...] = (
    RestartOnly(("redis",), "Redis clients and the key namespace are set up once per process"),
    RestartOnly(("server", "host"), "the API's listening socket is bound at start"),
    RestartOnly(("server", "port"), "the API's listening socket is bound at start"),
    RestartOnly(("server", "cors_origins"), "the API's middleware is built at start"),
    RestartOnly(("server", "max_header_count"), "the API's middleware is built at start"),
    RestartOnly(("server", "max_header_bytes"), "the API's middleware is built at start"),
    RestartOnly(("server", "max_url_bytes"), "the API's middleware is built at start"),
    RestartOnly(("server", "redis_wait_s"), "Redis clients are set up once per process"),
    RestartOnly(("server", "console", "enabled"), "the console's routes are built at start"),
    RestartOnly(
        ("server", "tls"),
        "the API's TLS settings are read at start (renewed files at the same paths are served "
        "without a restart: docs/tls.md)",
    ),
    RestartOnly(("metrics",), "metrics endpoints and listeners are set up at start"),
    RestartOnly(("logging",), "the access log middleware is built at start"),
    RestartOnly(("log_level",), "logging is configured once at start"),
    RestartOnly(
        ("queue", "rate_limit_window_s"),
        "rate windows in Redis are sized by it: processes on different windows would count "
        "the same limit differently",
    ),
    RestartOnly(
        ("queue", "rate_limit_minute_s"),
        "rate windows in Redis are sized by it: processes on different windows would count "
        "the same limit differently",
    ),
    RestartOnly(
        ("budget_warnings", "check_interval_s"), "the control plane's schedule is set at start"
    ),
    RestartOnly(
        ("security", "encryption_key"),
        "client keys sealed under the old key are still waiting with their jobs",
    ),
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a reload is refused: the field at fault and what is wrong with it."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    changed: tuple[Path, ...]
    """Every leaf that differs (added, removed or changed), in order."""
    restart_required: tuple[Problem, ...]
    summary: tuple[str, ...] = ()
    """``changed`` for a log line: a whole entry added or removed (a model, a provider) is
    one item, ``models.fast (added)``, not each of its fields."""

    @property
    def unchanged(self) -> bool:
        return not self.changed

    @property
    def sections(self) -> tuple[str, ...]:
        """The top-level sections touched: what the log line names."""
        return tuple(dict.fromkeys(str(p[0]) for p in self.changed))

    def changed_fields(self, limit: int = 20) -> list[str]:
        shown = list(self.summary[:limit])
        if len(self.summary) > limit:
            shown.append(f"… {len(self.summary) - limit} more")
        return shown


@dataclass(slots=True)
class ConfigState:
    """A process's running config, its hash and how many reloads it has taken."""

    config: AnygateConfig
    generation: int = 1
    hash: str = field(default="")

    def __post_init__(self) -> None:
        if not self.hash:
            self.hash = config_hash(self.config)

    def advance(self, config: AnygateConfig) -> None:
        self.config = config
        self.generation += 1
        self.hash = config_hash(config)


def format_path(path: Path) -> str:
    return format_loc(path)


def config_hash(config: AnygateConfig) -> str:
    """A short digest of the config as validated (after env overrides): equal in every process
    given the same file and environment, so an operator can see that all took the same one.
    Secret references are hashed as references, never resolved."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def leaves(tree: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every scalar of a dumped config with its path; an empty mapping or list is a leaf of
    its own, so adding the first entry shows as a change."""
    if isinstance(tree, Mapping) and tree:
        for key, value in tree.items():
            yield from leaves(value, (*prefix, str(key)))
    elif isinstance(tree, list | tuple) and tree:
        for i, value in enumerate(tree):
            yield from leaves(value, (*prefix, i))
    else:
        yield prefix, tree


def changed_paths(old: AnygateConfig, new: AnygateConfig) -> tuple[Path, ...]:
    before = dict(leaves(old.model_dump(mode="json")))
    after = dict(leaves(new.model_dump(mode="json")))
    ordered = list(after) + [p for p in before if p not in after]
    return tuple(p for p in ordered if before.get(p, _ABSENT) != after.get(p, _ABSENT))


def summarise(old: AnygateConfig, new: AnygateConfig, changed: Iterable[Path]) -> tuple[str, ...]:
    """Each changed leaf, or the entry it belongs to when that entry is new or gone."""
    old_nodes = _nodes(old)
    new_nodes = _nodes(new)
    out: dict[str, None] = {}
    for path in changed:
        label = format_path(path)
        for k in range(1, len(path)):
            head = path[:k]
            if head not in old_nodes:
                label = f"{format_path(head)} (added)"
                break
            if head not in new_nodes:
                label = f"{format_path(head)} (removed)"
                break
        out[label] = None
    return tuple(out)


def _nodes(config: AnygateConfig) -> set[Path]:
    return {
        path[:k]
        for path, _v in leaves(config.model_dump(mode="json"))
        for k in range(1, len(path) + 1)
    }


_ABSENT = object()


def plan_reload(
    old: AnygateConfig,
    new: AnygateConfig,
    *,
    restart_only: Iterable[RestartOnly] = RESTART_ONLY,
) -> ReloadPlan:
    changed = changed_paths(old, new)
    rules = tuple(restart_only)
    needs_restart: list[Problem] = []
    for path in changed:
        rule = next((r for r in rules if r.matches(path)), None)
        if rule is not None:
            needs_restart.append(Problem(format_path(path), f"needs a restart: {rule.reason}"))
    needs_restart.extend(_moved_pools(old, new))
    return ReloadPlan(changed, tuple(needs_restart), summarise(old, new, changed))


def _moved_pools(old: AnygateConfig, new: AnygateConfig) -> list[Problem]:
    """A pool kept by both configs whose shard (explicit, or its default) would change: its
    queued and running jobs live on the old shard (docs/scaling.md). A pool added or removed
    moves nothing."""
    return [
        Problem(
            f"pools.{pool}.shard",
            "needs a restart: a pool's Redis placement is fixed while it holds jobs (drain "
            "the pool first: docs/scaling.md)",
        )
        for pool in sorted(old.providers.keys() & new.providers.keys())
        if old.shard_of(pool) != new.shard_of(pool)
    ]


def worker_problems(new: AnygateConfig, pool: str) -> list[Problem]:
    """A worker serves one pool for its whole life: a config without that provider cannot be
    applied to it (stopping it, which drains its running jobs first, is the way)."""
    if pool in new.providers:
        return []
    return [
        Problem(
            f"providers.{pool}",
            f"this worker serves pool {pool!r}, which the new config no longer has; "
            "needs a restart: stop this worker (it finishes its running jobs first)",
        )
    ]


def secret_problems(refs: Iterable[tuple[str, SecretRef]]) -> list[Problem]:
    """The references among ``(field, ref)`` that name nothing this process can read (an
    unset variable, a missing file): refused before anything is built. Messages name the
    reference, never a value."""
    problems = []
    for where, ref in refs:
        try:
            ref.resolve()
        except SecretResolutionError as exc:
            problems.append(Problem(where, str(exc)))
    return problems
