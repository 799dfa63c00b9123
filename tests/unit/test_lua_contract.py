"""What the Lua scripts and the Python that calls them must agree on, read from the .lua source:
the strings both sides name (a Lua table of constants and its Python enum), the key families a
script derives at run time (KeySpace's), and the priority classes."""

from __future__ import annotations

import enum
import inspect
import re
from importlib import resources

import pytest

from anygate.broker.cluster_counters import JobCounter, TokenKind
from anygate.broker.keys import CLASS_ORDER, KeySpace
from anygate.broker.models import JobStatus
from anygate.broker.script_calls.cancel import CancelStatus, WorkerControl
from anygate.broker.script_calls.enqueue import EnqueueOutcome, QuotaMeasure, QuotaPeriod
from anygate.broker.script_calls.finish import FINISH_ARGS
from anygate.broker.script_calls.health import BreakerState, HealthEvent, HealthOp, ProbeVerdict
from anygate.broker.script_calls.ratewindow import RateOp
from anygate.broker.script_calls.requeue import RequeueReason
from anygate.broker.script_calls.requeuedead import RequeueDeadOutcome

LUA = resources.files("anygate.broker") / "lua"
PRELUDE = "_lib.lua"
SCRIPTS = sorted(p.name for p in LUA.iterdir() if p.name.endswith(".lua") and p.name != PRELUDE)


def source(name: str) -> str:
    return (LUA / name).read_text(encoding="utf-8")


def code(name: str) -> str:
    """The source without its comments (``--`` to the end of the line; no string holds one)."""
    return re.sub(r"--.*", "", source(name))


def constant_tables(text: str) -> dict[str, dict[str, str]]:
    """``local NAME = {KEY = 'value', ...}``: every table of string constants in the text."""
    tables = {}
    for name, body in re.findall(r"local ([A-Z_]+) = \{(.*?)\}", text, flags=re.DOTALL):
        pairs = re.findall(r"([A-Z_]+) = '([^']*)'", body)
        rest = re.sub(r"[A-Z_]+ = '[^']*'", "", body)
        if pairs and not rest.replace(",", "").strip():
            tables[name] = dict(pairs)
    return tables


TWINS: list[tuple[str, str, type[enum.StrEnum]]] = [
    (PRELUDE, "STATUS", JobStatus),
    (PRELUDE, "COUNTER", JobCounter),
    (PRELUDE, "TOKENS", TokenKind),
    ("enqueue-2.lua", "OUTCOME", EnqueueOutcome),
    ("enqueue-2.lua", "PERIOD", QuotaPeriod),
    ("enqueue-2.lua", "MEASURE", QuotaMeasure),
    ("cancel-6.lua", "CANCEL", CancelStatus),
    ("cancel-6.lua", "CONTROL", WorkerControl),
    ("requeue-6.lua", "REASON", RequeueReason),
    ("requeuedead-2.lua", "OUTCOME", RequeueDeadOutcome),
    ("ratewindow-3.lua", "OP", RateOp),
    ("health-1.lua", "OP", HealthOp),
    ("health-1.lua", "VERDICT", ProbeVerdict),
    ("health-1.lua", "STATE", BreakerState),
    ("health-1.lua", "EVENT", HealthEvent),
]


class TestSharedStrings:
    @pytest.mark.parametrize(("script", "table", "twin"), TWINS, ids=str)
    def test_the_lua_table_and_its_python_twin_agree(
        self, script: str, table: str, twin: type[enum.StrEnum]
    ) -> None:
        found = constant_tables(code(script)).get(table)
        assert found is not None, f"{script} defines no table {table}"
        assert found == {m.name: m.value for m in twin}

    @pytest.mark.parametrize("script", SCRIPTS)
    def test_a_script_names_only_constants_that_exist(self, script: str) -> None:
        """A misspelt ``STATUS.RUNING`` would be nil in Lua, silently."""
        tables = constant_tables(code(PRELUDE)) | constant_tables(code(script))
        for table, member in re.findall(r"\b([A-Z_]+)\.([A-Z_]+)\b", code(script)):
            assert table in tables, f"{script}: {table} is no table of constants"
            assert member in tables[table], f"{script}: {table}.{member} does not exist"

    def test_every_table_has_a_twin(self) -> None:
        """A new table of shared strings gets a Python twin (and a line in TWINS)."""
        defined = {
            (name, table) for name in [PRELUDE, *SCRIPTS] for table in constant_tables(code(name))
        }
        assert defined == {(script, table) for script, table, _twin in TWINS}

    def test_the_classes_are_claimed_in_class_order(self) -> None:
        found = re.search(r"local CLASSES = \{([^}]*)\}", code(PRELUDE))
        assert found is not None
        assert re.findall(r"'(\w+)'", found.group(1)) == [p.value for p in CLASS_ORDER]


NOT_KEYS = frozenset(
    {
        "prefix",
        "home_prefix",
        "namespace",
        "pool_shards",
        "pinned",
        "shard",
        "shards",
        "of",
        "on",
        "for_pool",
        "for_job",
        "shard_of_pool",
    }
)
"""KeySpace's members that are not keys: the layout's parts and its views of one shard."""


def keyspace_families() -> set[str]:
    """Each KeySpace key's family: what follows the prefix, up to the first name in it."""
    space = KeySpace("t")
    families = set()
    for name, member in inspect.getmembers(KeySpace):
        if name.startswith("_") or name in NOT_KEYS:
            continue
        if isinstance(member, property):
            key = getattr(space, name)
        else:
            params = list(inspect.signature(member).parameters.values())[1:]
            args = [CLASS_ORDER[0] if p.annotation == "Priority" else "X" for p in params]
            key = getattr(space, name)(*args)
        families.add(key.removeprefix(space.prefix).split(":X")[0])
    return families


class TestDerivedKeys:
    @pytest.mark.parametrize("script", [PRELUDE, *SCRIPTS])
    def test_keys_are_derived_only_through_key_of(self, script: str) -> None:
        text = code(script)
        if script == PRELUDE:
            text = re.sub(r"local function key_of.*?\nend\n", "", text, flags=re.DOTALL)
        assert not re.search(r"prefix \.\. '", text), "a key built by hand"

    @pytest.mark.parametrize("script", [PRELUDE, *SCRIPTS])
    def test_every_derived_key_is_a_keyspace_family(self, script: str) -> None:
        families = set(re.findall(r"key_of\((?:home_of\()?prefix\)?, '([\w:]+)'", code(script)))
        assert families <= keyspace_families()

    def test_key_of_builds_what_keyspace_builds(self) -> None:
        """The helper's rule, checked on the families with one, two and three names."""
        space = KeySpace("t")
        rule = lambda family, *names: ":".join([space.prefix + family, *names])  # noqa: E731
        assert rule("job", "j1") == space.job("j1")
        assert rule("usage", "acme", "20260101") == space.tenant_usage("acme", "20260101")
        assert rule("lane", "openai", "batch", "acme") == space.lane(
            "openai", CLASS_ORDER[2], "acme"
        )
        assert rule("tqueued") == space.tenants_queued
        body = re.search(r"local function key_of.*?\nend\n", code(PRELUDE), flags=re.DOTALL)
        assert body is not None
        assert "prefix .. family" in body.group(0)
        assert "k .. ':' .. select(i, ...)" in body.group(0)


class TestCounters:
    @pytest.mark.parametrize("script", SCRIPTS)
    def test_counters_are_added_to_only_through_keys_given(self, script: str) -> None:
        """A counter hash derived at run time would work on one Redis and break a Cluster's
        contract that a script names its keys: every ``count`` goes to a ``KEYS[n]``."""
        for target in re.findall(r"\bcount\(([^,]*),", code(script)):
            assert re.fullmatch(r"KEYS\[\d+\]", target.strip()), f"{script}: count({target}, …)"

    @pytest.mark.parametrize(
        ("script", "hashes"),
        [
            ("enqueue-2.lua", {"metrics:jobs"}),
            ("claim-13.lua", {"metrics:jobs"}),
            ("finish-5.lua", {"metrics:jobs", "metrics:tokens"}),
            ("cancel-6.lua", {"metrics:jobs"}),
            ("reclaim-6.lua", {"metrics:jobs"}),
        ],
    )
    def test_the_header_names_the_counter_hashes_among_its_keys(
        self, script: str, hashes: set[str]
    ) -> None:
        """Each counting script's KEYS header lists the hashes it counts in, and the counter
        families are KeySpace's."""
        header = re.search(r"-- KEYS:(.*?)\n-- ARGV", source(script), flags=re.DOTALL)
        assert header is not None
        assert set(re.findall(r"metrics:\w+", header.group(1))) == hashes
        assert hashes <= keyspace_families()
        assert "count(KEYS[" in code(script)


def test_finish_reads_as_many_arguments_per_job_as_python_sends() -> None:
    """finish-5.lua walks its ARGV in steps of PER_JOB; FinishArgs.job_argv sends FINISH_ARGS."""
    found = re.search(r"local PER_JOB = (\d+)", code("finish-5.lua"))
    assert found is not None
    assert int(found.group(1)) == FINISH_ARGS
