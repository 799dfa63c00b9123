"""The Jobs page's search form (api/console/jobs.py JobQuery): what it accepts, and the field it
names when it refuses."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from anygate.api.console.job_timeline import when
from anygate.api.console.jobs import PAGE, JobQuery, search
from anygate.broker import JobStatus
from anygate.broker.errors import InvalidRequestError


def test_a_tenant_with_status_and_model_filters() -> None:
    query = JobQuery.parse({"tenant": " acme ", "status": "running", "model": "gpt-4o-mini"})
    assert query == JobQuery("acme", JobStatus.RUNNING, "gpt-4o-mini", None)
    assert JobQuery.parse({"tenant": "acme", "after": "job_x"}).after == "job_x"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "succeeded"}, "tenant"),
        ({"model": "gpt-4o-mini"}, "tenant"),
        ({"tenant": "not a tenant"}, "tenant"),
        ({"tenant": "acme", "status": "sleeping"}, "status"),
    ],
)
def test_refusals_name_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        JobQuery.parse(params)
    assert refused.value.param == field


def test_times_are_utc_to_the_millisecond() -> None:
    assert when(1_700_000_000_123) == "2023-11-14 22:13:20.123 UTC"
    assert when(None) == "—"


class FakeBroker:
    """``list_jobs`` over a list, newest first, with the broker's cursor semantics."""

    def __init__(self, models: list[str]) -> None:
        self.jobs = [SimpleNamespace(id=f"job_{i}", model=m) for i, m in enumerate(models)]
        self.calls = 0

    async def list_jobs(
        self, tenant: str, *, status: object, limit: int, after: str | None
    ) -> tuple[list[Any], bool]:
        self.calls += 1
        start = next(i + 1 for i, j in enumerate(self.jobs) if j.id == after) if after else 0
        page = self.jobs[start : start + limit]
        return page, start + limit < len(self.jobs)


async def pages(models: list[str], model: str) -> list[list[str]]:
    gw: Any = SimpleNamespace(broker=FakeBroker(models))
    seen: list[list[str]] = []
    after: str | None = None
    while True:
        found, after = await search(gw, JobQuery("acme", None, model, after))
        seen.append([r.id for r in found])
        if after is None:
            return seen


async def test_a_model_filter_fills_pages_across_the_brokers_pages_and_ends_exactly() -> None:
    models = ["a" if i % 3 == 2 else "b" for i in range(3 * PAGE)]  # PAGE matching, spread
    got = await pages(models, "a")
    assert got == [[f"job_{i}" for i in range(2, 3 * PAGE, 3)]]
    everything = await pages(["a"] * (2 * PAGE), "")
    assert [len(p) for p in everything] == [PAGE, PAGE]
    assert everything[1][0] == f"job_{PAGE}"
