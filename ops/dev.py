"""``anygate dev``: the whole stack on one machine with nothing installed but this package.

A supervisor, not a framework: it starts each part as its own process (exactly as production
runs them), waits until the API is ready, prints how to reach it, and stops everything it
started, by pid, on Ctrl-C or when any part dies. State lives in ``--data-dir`` (Redis AOF, the
generated config, the dev keys), so a restart keeps queued jobs, results and keys.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import yaml

from anygate.api.auth import hash_key
from anygate.broker.client_keys import new_encryption_key
from anygate.broker.tenants import mint_key
from anygate.ops.embedded_redis import AppendFsync, EmbeddedRedis
from anygate.ops.processes import Child, first_exit, free_port, start, stop_all, wait_http

MOCK_KEY_ENV = "ANYGATE_MOCK_KEY"


@dataclass(frozen=True)
class DevKeys:
    tenant_key: str
    admin_key: str


def load_or_create_keys(env_file: Path) -> DevKeys:
    """Keys are made on first start and reused after, so a restart keeps clients working."""
    values: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.removeprefix("export ").partition("=")
            if sep:
                values[name.strip()] = value.strip().strip("'\"")
    tenant = values.get("ANYGATE_KEY") or mint_key()
    admin = values.get("ANYGATE_ADMIN_KEY") or mint_key()
    return DevKeys(tenant, admin)


def write_env_file(env_file: Path, url: str, keys: DevKeys) -> None:
    env_file.write_text(
        f"export ANYGATE_URL={url}\n"
        f"export ANYGATE_KEY={keys.tenant_key}\n"
        f"export ANYGATE_ADMIN_KEY={keys.admin_key}\n",
        encoding="utf-8",
    )
    env_file.chmod(0o600)


def load_or_create_secret(path: Path) -> Path:
    """A server secret (32 random bytes, base64), made once and kept (0600): the key that
    seals client provider keys (BYOK), so a tenant switched to ``hybrid`` through the admin API
    works without a restart, and the one that signs webhooks."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(new_encryption_key() + "\n", encoding="utf-8")
    return path


def dev_config(
    keys: DevKeys,
    *,
    mock_openai: bool,
    mock_gemini: bool,
    encryption_key: Path | None = None,
    webhook_secret: Path | None = None,
) -> dict[str, object]:
    """The generated config: an OpenAI and a Gemini pool, each real when its key is set (
    ``OPENAI_API_KEY``, ``GEMINI_API_KEY``), else served by the built-in mock."""
    mock_key = f"env:{MOCK_KEY_ENV}"
    return {
        "providers": {
            "openai": {
                "kind": "openai",
                "api_key": mock_key if mock_openai else "env:OPENAI_API_KEY",
            },
            "gemini": {
                "kind": "gemini",
                "api_key": mock_key if mock_gemini else "env:GEMINI_API_KEY",
            },
        },
        "models": {
            "gpt-4o-mini": {
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "gpt-4o-mini",
                        "input_price_per_m": 0.15,
                        "output_price_per_m": 0.6,
                    },
                ]
            },
            "text-embedding-3-small": {
                "kind": "embedding",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "text-embedding-3-small",
                        "input_price_per_m": 0.02,
                    },
                ],
            },
            "gemini-2.5-flash": {
                "deployments": [
                    {
                        "provider": "gemini",
                        "model": "gemini-2.5-flash",
                        "input_price_per_m": 0.3,
                        "output_price_per_m": 2.5,
                    },
                ]
            },
            "gemini-embedding-001": {
                "kind": "embedding",
                "deployments": [
                    {
                        "provider": "gemini",
                        "model": "gemini-embedding-001",
                        "input_price_per_m": 0.15,
                    },
                ],
            },
        },
        "tenants": [{"id": "dev", "api_key_sha256": [hash_key(keys.tenant_key)]}],
        "admin_api_key_sha256": [hash_key(keys.admin_key)],
        "security": {
            **({"encryption_key": f"file:{encryption_key}"} if encryption_key else {}),
            **({"webhook_secret": f"file:{webhook_secret}"} if webhook_secret else {}),
        },
    }


RELOADABLE = ("api", "worker-openai", "worker-gemini", "control")
"""The children a SIGHUP to ``anygate dev`` is passed on to: they reload their config (the
mock provider and Redis have none)."""


def _start_children(
    children: list[Child],
    env: dict[str, str],
    *,
    mock_openai: bool,
    mock_gemini: bool,
    watch_config: bool = False,
) -> None:
    """Mock provider (when a pool has no key), API, one worker per pool, control plane; each is
    appended as soon as it started, so a failure part-way still stops what already runs."""
    me = [sys.executable, "-m", "anygate.ops"]
    if mock_openai or mock_gemini:
        mock_port = free_port()
        env[MOCK_KEY_ENV] = "mock-key"
        mock = f"http://127.0.0.1:{mock_port}"
        if mock_openai:
            env["ANYGATE__PROVIDERS__OPENAI__BASE_URL"] = f"{mock}/v1"
        if mock_gemini:
            env["ANYGATE__PROVIDERS__GEMINI__BASE_URL"] = mock
        mock_argv = [*me, "mock-provider", "--port", str(mock_port)]
        children.append(start("mock-provider", mock_argv, env=env))
    watch = ["--watch-config"] if watch_config else []
    children.append(start("api", [*me, "api", *watch], env=env))
    for pool in ("openai", "gemini"):
        argv = [*me, "worker", "--pool", pool, *watch]
        children.append(start(f"worker-{pool}", argv, env=env))
    children.append(start("control", [*me, "control", *watch], env=env))


def _pass_on_reload(children: list[Child]) -> None:
    for child in children:
        if child.name in RELOADABLE and child.running:
            os.kill(child.pid, signal.SIGHUP)


def run_dev(
    *, host: str, port: int, data_dir: str, strict: bool = False, watch_config: bool = False
) -> int:
    """``strict``: Redis fsyncs its AOF before every reply and every process runs with
    ``redis.durability: strict``, so nothing acknowledged is lost on a power loss; the default
    fsyncs once a second (docs/durability.md)."""
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    env_file = root / "dev.env"
    keys = load_or_create_keys(env_file)
    mock_openai = not os.environ.get("OPENAI_API_KEY")
    mock_gemini = not os.environ.get("GEMINI_API_KEY")
    config_path = Path(os.environ.get("ANYGATE_CONFIG") or root / "config.yaml")
    if "ANYGATE_CONFIG" not in os.environ:
        tree = dev_config(
            keys,
            mock_openai=mock_openai,
            mock_gemini=mock_gemini,
            encryption_key=load_or_create_secret(root / "encryption.key"),
            webhook_secret=load_or_create_secret(root / "webhook.secret"),
        )
        config_path.write_text(yaml.safe_dump(tree), "utf-8")

    stopping = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    children: list[Child] = []
    # Ignored while the children start (they inherit it, until they catch it themselves:
    # ``catch_early_sighup``), then passed on to them.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    fsync: AppendFsync = "always" if strict else "everysec"
    redis = EmbeddedRedis(root / "redis", aof=True, appendfsync=fsync).start()
    env = dict(os.environ)
    env.update(
        {
            "ANYGATE_CONFIG": str(config_path),
            "ANYGATE__REDIS__URL": redis.url,
            "ANYGATE__SERVER__HOST": host,
            "ANYGATE__SERVER__PORT": str(port),
            "ANYGATE__REDIS__DURABILITY": "strict" if strict else "standard",
        }
    )
    url = f"http://{host}:{port}"
    try:
        _start_children(
            children,
            env,
            mock_openai=mock_openai,
            mock_gemini=mock_gemini,
            watch_config=watch_config,
        )
        signal.signal(signal.SIGHUP, lambda _sig, _frame: _pass_on_reload(children))
        wait_http(f"{url}/readyz", watch=children, what="the API")
        write_env_file(env_file, url, keys)
        print(
            f"\nanygate is running at {url}\n"
            f"  tenant key: {keys.tenant_key}\n"
            f"  admin key:  {keys.admin_key}\n"
            f"  openai:     {'built-in mock (no OPENAI_API_KEY)' if mock_openai else 'OpenAI'}\n"
            f"  gemini:     {'built-in mock (no GEMINI_API_KEY)' if mock_gemini else 'Gemini'}\n"
            f"  durability: {'strict (appendfsync always)' if strict else 'standard (everysec)'}\n"
            f"  source {env_file} in another shell to use it.\n",
            flush=True,
        )
        while not stopping:
            dead = first_exit(children)
            if dead:
                code = dead.popen.wait()
                print(f"{dead.name} exited with code {code}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        stop_all(children, timeout=35.0)
        redis.stop()
