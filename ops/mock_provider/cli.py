"""`anygate mock-provider`: the command line face of the mock, one option per setting."""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from anygate.ops.mock_provider.server import serve
from anygate.ops.mock_provider.settings import FAULT_KINDS, MockSettings


def _default(name: str) -> Any:
    return MockSettings.model_fields[name].default


def _help(name: str) -> str:
    return MockSettings.model_fields[name].description or name


@click.command(name="mock-provider")
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind")
@click.option(
    "--port", default=8090, show_default=True, type=click.IntRange(0, 65535), help="port to bind"
)
@click.option(
    "--latency-ms",
    type=float,
    default=_default("latency_ms"),
    show_default=True,
    help=_help("latency_ms"),
)
@click.option(
    "--chunk-count",
    type=int,
    default=_default("chunk_count"),
    show_default=True,
    help=_help("chunk_count"),
)
@click.option(
    "--chunk-delay-ms",
    type=float,
    default=_default("chunk_delay_ms"),
    show_default=True,
    help=_help("chunk_delay_ms"),
)
@click.option("--prompt-tokens", type=int, default=None, help=_help("prompt_tokens"))
@click.option("--completion-tokens", type=int, default=None, help=_help("completion_tokens"))
@click.option(
    "--embedding-dim",
    type=int,
    default=_default("embedding_dim"),
    show_default=True,
    help=_help("embedding_dim"),
)
@click.option(
    "--api-key",
    default=None,
    envvar="ANYGATE_MOCK_API_KEY",
    help="key clients must send (env ANYGATE_MOCK_API_KEY); default: any non-empty key",
)
@click.option(
    "--bearer-token",
    default=None,
    envvar="ANYGATE_MOCK_BEARER_TOKEN",
    help="bearer token Azure OpenAI paths require (env ANYGATE_MOCK_BEARER_TOKEN); default: any",
)
@click.option(
    "--fault-rate",
    type=float,
    default=_default("fault_rate"),
    show_default=True,
    help=_help("fault_rate"),
)
@click.option(
    "--fault",
    type=click.Choice(FAULT_KINDS),
    default=_default("fault"),
    show_default=True,
    help=_help("fault"),
)
@click.option("--rate-limit-rpm", type=int, default=None, help=_help("rate_limit_rpm"))
@click.option("--rate-limit-tpm", type=int, default=None, help=_help("rate_limit_tpm"))
@click.option(
    "--rate-limit-window-s",
    type=float,
    default=_default("rate_limit_window_s"),
    show_default=True,
    help=_help("rate_limit_window_s"),
)
@click.option(
    "--rate-limit-per-model/--rate-limit-per-key",
    default=_default("rate_limit_per_model"),
    show_default=True,
    help=_help("rate_limit_per_model"),
)
@click.option(
    "--batch-delay-s",
    type=float,
    default=_default("batch_delay_s"),
    show_default=True,
    help=_help("batch_delay_s"),
)
@click.option(
    "--request-log-size",
    type=int,
    default=_default("request_log_size"),
    show_default=True,
    help=_help("request_log_size"),
)
def mock_provider_command(host: str, port: int, **fields: Any) -> None:
    """Serve a fake OpenAI- and Gemini-compatible upstream for tests, demos and benchmarks.

    Control it at runtime under /_mock/ (faults, settings, requests, reset, health).
    """
    try:
        settings = MockSettings.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "--" + str(first["loc"][0]).replace("_", "-")
        raise click.BadParameter(first["msg"], param_hint=name) from None
    click.echo(f"anygate mock-provider listening on http://{host}:{port}", err=True)
    serve(host, port, settings)
