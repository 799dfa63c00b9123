"""The Config page (docs/console.md#config): the configuration this process runs with, secrets
masked (``config_view``), and a form that checks a pasted configuration with the server's own
validation. Nothing is saved: the configuration is a file, changed by editing it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from anygate.api.console.config_view import MAX_PASTE_BYTES, CheckResult, check_pasted, masked_yaml
from anygate.api.console.guard import Console, console_view
from anygate.api.console.render import render

FIELD = "yaml"


def _page(
    request: Request,
    console: Console,
    *,
    pasted: str = "",
    result: CheckResult | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "config.html",
        session=console.session,
        section="config",
        status_code=status_code,
        effective=masked_yaml(console.gw.config),
        pasted=pasted,
        result=result,
        max_kib=MAX_PASTE_BYTES // 1024,
    )


async def _config(request: Request, console: Console) -> Response:
    return _page(request, console)


async def _check(request: Request, console: Console) -> Response:
    form = await request.form()
    raw = form.get(FIELD)
    pasted = raw if isinstance(raw, str) else ""
    result = check_pasted(pasted)
    too_big = len(pasted.encode("utf-8")) > MAX_PASTE_BYTES
    # an oversize paste is not sent back: the answer would be as large as the refused input
    return _page(
        request,
        console,
        pasted="" if too_big else pasted,
        result=result,
        status_code=200 if result.valid else 400,
    )


ROUTES = [
    Route("/config", console_view(_config), methods=["GET"]),
    Route("/config/check", console_view(_check), methods=["POST"]),
]
