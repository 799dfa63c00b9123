"""The ``anygate`` command: one sub-command per process kind (docs/operations.md#running)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
import structlog

from anygate.config import AnygateConfig, ConfigError, load_config
from anygate.config.loader import CONFIG_PATH_ENV
from anygate.config.reloader import catch_early_sighup
from anygate.ops.logging import configure_logging

F = TypeVar("F", bound=Callable[..., Any])


def _config() -> AnygateConfig:
    try:
        return load_config()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _require_durability(config: AnygateConfig) -> None:
    """Strict mode: refuse to start against a Redis server that would not keep its promise
    (docs/durability.md); standard mode asks Redis nothing."""
    if config.redis.durability == "standard":
        return
    from redis.exceptions import RedisError

    from anygate.broker.durability import startup_verdict

    try:
        verdict = asyncio.run(startup_verdict(config.redis))
    except RedisError as exc:
        raise click.ClickException(f"cannot check the Redis server's durability: {exc}") from None
    if not verdict.ok:
        raise click.ClickException(verdict.problem)
    if verdict.problem:
        structlog.get_logger(__name__).warning("durability unverified", problem=verdict.problem)


def _watch_config_option(command: F) -> F:
    """``--watch-config``: reload when the config file changes, besides on SIGHUP
    (docs/operations.md#reloading-configuration)."""
    return click.option(
        "--watch-config",
        is_flag=True,
        default=False,
        help="Reload the configuration when $ANYGATE_CONFIG changes (it always reloads on SIGHUP).",
    )(command)


def _require_config_file(watch_config: bool) -> None:
    if watch_config and not os.environ.get(CONFIG_PATH_ENV):
        raise click.ClickException(f"--watch-config needs a config file: set ${CONFIG_PATH_ENV}")


def _run_async(main: object) -> None:
    try:
        import uvloop  # optional speed-up

        uvloop.run(main)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(main)  # type: ignore[arg-type]


@click.group()
@click.version_option(package_name="anygate", prog_name="anygate")
def main() -> None:
    """anygate: a queue-based LLM gateway (configuration: $ANYGATE_CONFIG + ANYGATE__* env)."""


@main.command()
@click.option("--host", default=None, help="Bind address (default: server.host).")
@click.option("--port", type=int, default=None, help="Port (default: server.port).")
@click.option(
    "--tls-cert",
    "cert_file",
    default=None,
    metavar="PATH",
    help="Serve HTTPS with this PEM certificate (chain) (server.tls.cert_file; docs/tls.md).",
)
@click.option(
    "--tls-key", "key_file", default=None, metavar="PATH", help="Its key (server.tls.key_file)."
)
@click.option(
    "--tls-key-password",
    "key_password",
    default=None,
    metavar="env:NAME|file:PATH",
    help="Where the encrypted key's password is (server.tls.key_password).",
)
@click.option(
    "--tls-client-ca",
    "client_ca_file",
    default=None,
    metavar="PATH",
    help="Ask clients for certificates signed by this CA (server.tls.client_ca_file).",
)
@click.option(
    "--tls-client-cert",
    "client_cert",
    type=click.Choice(["none", "optional", "required"]),
    default=None,
    help="Must a client present a certificate (server.tls.client_cert; default with a "
    "client CA: required).",
)
@_watch_config_option
def api(host: str | None, port: int | None, watch_config: bool, **tls_flags: str | None) -> None:
    """Serve the HTTP API (HTTPS with server.tls or --tls-cert/--tls-key)."""
    import uvicorn

    from anygate.api import create_app
    from anygate.api.http_protocol import CoalescingHttpToolsProtocol
    from anygate.api.metrics_endpoint import listener
    from anygate.ops.tls import CertificateReloader, server_ssl_options, with_flags

    catch_early_sighup()
    _require_config_file(watch_config)
    config = _config()
    configure_logging(config.log_level)
    try:
        tls = with_flags(config.server.tls, tls_flags)
        ssl_options = server_ssl_options(tls)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    reloader = CertificateReloader(tls) if tls is not None else None
    if tls is not None:
        structlog.get_logger(__name__).info(
            "serving https", cert_file=tls.cert_file, client_cert=tls.client_cert_mode
        )
    _require_durability(config)
    with listener(config):  # metrics.api_access: port
        uvicorn.run(
            create_app(config, watch_config=watch_config),
            host=host or config.server.host,
            port=config.server.port if port is None else port,
            loop="uvloop",
            http=CoalescingHttpToolsProtocol,
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
            **ssl_options,
            ssl_context_factory=reloader,
        )


def _metrics_options(command: F) -> F:
    """``--metrics-port``/``--metrics-host``: serve this process's series (docs/metrics.md)."""
    command = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Bind address of the metrics listener.",
    )(command)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve this process's Prometheus metrics on this port (default: not served).",
    )(command)


@contextlib.contextmanager
def _metrics_listener(host: str, port: int | None) -> Iterator[None]:
    if port is None:
        yield
        return
    from anygate.telemetry import serve

    server = serve(host, port)
    structlog.get_logger(__name__).info("serving metrics", host=host, port=server.port)
    try:
        yield
    finally:
        server.close()


@main.command()
@click.option("--pool", required=True, help="Provider pool to serve (a key of `providers`).")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=None)
@click.option(
    "--shutdown-grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds running jobs may finish in after SIGTERM before they are handed back.",
)
@_metrics_options
@_watch_config_option
def worker(  # click passes every option by name
    *,
    pool: str,
    concurrency: int | None,
    shutdown_grace: float,
    metrics_port: int | None,
    metrics_host: str,
    watch_config: bool,
) -> None:
    """Run a worker of one provider pool."""
    from anygate.workers import run_worker

    catch_early_sighup()
    _require_config_file(watch_config)
    config = _config()
    configure_logging(config.log_level)
    _require_durability(config)
    with _metrics_listener(metrics_host, metrics_port):
        _run_async(
            run_worker(
                config,
                pool,
                concurrency,
                shutdown_grace_s=shutdown_grace,
                watch_config=watch_config,
            )
        )


@main.command()
@_metrics_options
@_watch_config_option
def control(metrics_port: int | None, metrics_host: str, watch_config: bool) -> None:
    """Run the control plane (arq): batches, webhooks, housekeeping; rides out Redis outages."""
    from anygate.workers.control_runner import main as run_control

    catch_early_sighup()
    _require_config_file(watch_config)
    config = _config()
    configure_logging(config.log_level)
    _require_durability(config)
    with _metrics_listener(metrics_host, metrics_port):
        _run_async(run_control(config, watch_config=watch_config))


@main.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--data-dir",
    default=".anygate",
    show_default=True,
    help="Where the embedded Redis keeps its AOF and where dev.env is written.",
)
@click.option(
    "--durability",
    type=click.Choice(["standard", "strict"]),
    default="standard",
    show_default=True,
    help="strict: the embedded Redis fsyncs its AOF before every reply (appendfsync always) and "
    "every process runs with redis.durability: strict (docs/durability.md).",
)
@_watch_config_option
def dev(port: int, host: str, data_dir: str, durability: str, watch_config: bool) -> None:
    """Everything in one command: embedded Redis, API, workers, control, mock provider.
    One per data folder; the banner and dev.env come once every part is ready. SIGHUP reloads
    the configuration in every process (docs/operations.md)."""
    from anygate.ops.dev import run_dev
    from anygate.ops.dev_lock import DataDirLockedError
    from anygate.ops.port_check import PortUnavailableError

    strict = durability == "strict"
    try:
        code = run_dev(
            host=host, port=port, data_dir=data_dir, strict=strict, watch_config=watch_config
        )
    except (DataDirLockedError, PortUnavailableError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _register_mock_provider() -> None:
    from anygate.ops.mock_provider import mock_provider_command

    main.add_command(mock_provider_command, name="mock-provider")


_register_mock_provider()


def _register_admin_commands() -> None:
    from anygate.ops.keys_cli import keys, tenants

    main.add_command(keys)
    main.add_command(tenants)


_register_admin_commands()


def _register_user_commands() -> None:
    """The commands users and operators run against a gateway (docs/cli.md)."""
    from anygate.ops.cli_batch import batch
    from anygate.ops.cli_config import config_group
    from anygate.ops.cli_jobs import jobs, submit
    from anygate.ops.cli_status import status

    main.add_command(submit)
    main.add_command(jobs)
    main.add_command(batch)
    main.add_command(status)
    main.add_command(config_group)


_register_user_commands()
