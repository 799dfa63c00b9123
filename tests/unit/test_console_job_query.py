"""The Jobs page's search form (api/console/jobs.py JobQuery): what it accepts, and the field it
names when it refuses."""

from __future__ import annotations

import pytest

from anygate.api.console.job_timeline import when
from anygate.api.console.jobs import JobQuery
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
