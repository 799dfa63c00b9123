"""Usage as a tenant sees it, and usage as CSV (docs/api.md#usage).

``GET /v1/usage``: the calling tenant's own usage and cost per model and UTC day, read from the
same hashes the admin API reads (``finish-5.lua`` counts them); the tenant comes from the key,
never from a parameter, so a key sees its own tenant's usage only. It takes the ``jobs`` scope,
the native API's: usage is an account matter, not an inference call.

The CSV form of the admin export is built here too: one header row, then one row per tenant,
model and day, the same fields as the JSON rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.gateway import gateway_of
from anygate.api.paging import list_page
from anygate.broker.admin_queries import USAGE_MAX_DAYS, AdminQueries, UsageRow, days_between
from anygate.broker.errors import InvalidRequestError

CSV_FIELDS = (
    "tenant",
    "model",
    "date",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost_usd",
)


def parse_day(request: Request, name: str, default: date) -> date:
    raw = request.query_params.get(name)
    if not raw:
        return default
    try:
        if len(raw) == len("YYYY-MM-DD"):
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise InvalidRequestError(f"{name}: expected a date as YYYY-MM-DD", param=name)


def day_range(request: Request, first_name: str, last_name: str, today: date) -> list[date]:
    """Both days included; today when neither is given, and up to today from a first day
    alone. At most ``USAGE_MAX_DAYS`` days: each is one read per tenant."""
    last = parse_day(request, last_name, today)
    first = parse_day(request, first_name, last if request.query_params.get(last_name) else today)
    if first > last:
        raise InvalidRequestError(f"{first_name}: must not be after {last_name}", param=first_name)
    if (last - first).days + 1 > USAGE_MAX_DAYS:
        raise InvalidRequestError(
            f"{first_name}: at most {USAGE_MAX_DAYS} days can be asked for at once",
            param=first_name,
        )
    return days_between(first, last)


def usage_csv(rows: Sequence[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        api = row.to_api()
        writer.writerow({name: api[name] for name in CSV_FIELDS})
    return out.getvalue()


def csv_response(rows: Sequence[UsageRow], days: Sequence[date]) -> Response:
    name = f"usage_{days[0].isoformat()}_{days[-1].isoformat()}.csv"
    return Response(
        usage_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def totals(rows: Sequence[UsageRow]) -> dict[str, object]:
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    return {
        "requests": sum(r.requests for r in rows),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost_usd": round(sum(r.cost_usd for r in rows), 10),
    }


async def tenant_usage(request: Request) -> Response:
    gw = gateway_of(request)
    tenant = await gw.auth.tenant(request, "jobs")
    days = day_range(request, "start", "end", datetime.now(UTC).date())
    rows = await AdminQueries(gw.redis, gw.broker.keys).usage([tenant.id], days)
    return list_page(
        [r.to_api() for r in rows],
        False,
        start=days[0].isoformat(),
        end=days[-1].isoformat(),
        totals=totals(rows),
    )


ROUTES = [Route("/v1/usage", tenant_usage, methods=["GET"])]
