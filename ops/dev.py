"""``anygate dev``: the whole stack on one machine with nothing installed but this package.

A supervisor, not a framework: it takes its data folder's lock (``dev_lock.py``), checks that
its port is free (``port_check.py``), starts each part as its own process (exactly as
production runs them), waits until every part is ready (``dev_ready.py``), writes ``dev.env``
(``dev_env.py``), prints how to reach it, and stops everything it started, by pid, on Ctrl-C or
when any part dies. Its children die with it even when it is killed outright. State lives in
``--data-dir`` (Redis AOF, the generated config, the dev keys), so a restart keeps queued jobs,
results and keys.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis as redis_py
import yaml

from anygate.api.auth import hash_key
from anygate.broker.client_keys import new_encryption_key
from anygate.broker.keys import KeySpace
from anygate.config import load_config
from anygate.ops.dev_env import DevEnv, DevKeys, load_or_create_keys, write_env_file
from anygate.ops.dev_lock import DevLock
from anygate.ops.dev_ready import StackParts, forget_control_tick, redis_now_ms, wait_ready
from anygate.ops.embedded_redis import AppendFsync, EmbeddedRedis, EmbeddedRedisError
from anygate.ops.port_check import check_port
from anygate.ops.processes import (
    Child,
    ProcessStartError,
    first_exit,
    free_port,
    start,
    stop_all,
)

MOCK_KEY_ENV = "ANYGATE_MOCK_KEY"


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

POOLS = ("openai", "gemini")


class _InterruptedError(Exception):
    """SIGINT or SIGTERM before the stack was ready: stop starting it."""


def _mock_env(env: dict[str, str], *, mock_openai: bool, mock_gemini: bool) -> str | None:
    """Point the pools without a real key at the mock provider (its port chosen now); its URL,
    or ``None`` when every pool has a key."""
    if not (mock_openai or mock_gemini):
        return None
    mock = f"http://127.0.0.1:{free_port()}"
    env[MOCK_KEY_ENV] = "mock-key"
    if mock_openai:
        env["ANYGATE__PROVIDERS__OPENAI__BASE_URL"] = f"{mock}/v1"
    if mock_gemini:
        env["ANYGATE__PROVIDERS__GEMINI__BASE_URL"] = mock
    return mock


def _start_children(
    children: list[Child], env: dict[str, str], mock_url: str | None, *, watch_config: bool
) -> None:
    """Mock provider (when a pool has no key), API, one worker per pool, control plane; each is
    appended as soon as it started, so a failure part-way still stops what already runs. Each
    dies with us (``die_with_parent``), so a killed ``anygate dev`` leaves nothing running."""
    me = [sys.executable, "-m", "anygate.ops"]
    if mock_url is not None:
        mock_argv = [*me, "mock-provider", "--port", mock_url.rsplit(":", 1)[1]]
        children.append(start("mock-provider", mock_argv, env=env, die_with_parent=True))
    watch = ["--watch-config"] if watch_config else []
    children.append(start("api", [*me, "api", *watch], env=env, die_with_parent=True))
    for pool in POOLS:
        argv = [*me, "worker", "--pool", pool, *watch]
        children.append(start(f"worker-{pool}", argv, env=env, die_with_parent=True))
    children.append(start("control", [*me, "control", *watch], env=env, die_with_parent=True))


def _pass_on_reload(children: list[Child]) -> None:
    for child in children:
        if child.name in RELOADABLE and child.running:
            os.kill(child.pid, signal.SIGHUP)


def _banner(env: DevEnv, plan: _Plan) -> str:
    return (
        f"\nanygate is running at {env.url}\n"
        f"  tenant key: {env.keys.tenant_key}\n"
        f"  admin key:  {env.keys.admin_key}\n"
        f"  console:    {env.url}/ui (log in with the admin key)\n"
        f"  openai:     {'built-in mock (no OPENAI_API_KEY)' if plan.mock_openai else 'OpenAI'}\n"
        f"  gemini:     {'built-in mock (no GEMINI_API_KEY)' if plan.mock_gemini else 'Gemini'}\n"
        f"  redis:      {env.redis_url}\n"
        f"  durability: {'strict (appendfsync always)' if plan.strict else 'standard (everysec)'}\n"
        f"  source {plan.env_file} in another shell to use it.\n"
    )


def run_dev(
    *, host: str, port: int, data_dir: str, strict: bool = False, watch_config: bool = False
) -> int:
    """``strict``: Redis fsyncs its AOF before every reply and every process runs with
    ``redis.durability: strict``, so nothing acknowledged is lost on a power loss; the default
    fsyncs once a second (docs/durability.md).

    Raises ``DataDirLockedError`` when another ``anygate dev`` holds ``data_dir``, and
    ``PortUnavailableError`` when ``host:port`` cannot be listened on, both before anything is
    started or written; ``ConfigError`` for a config that does not load. Returns the exit code."""
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    with DevLock.acquire(root, url):
        check_port(host, port)
        plan = _plan(root, host, port, strict=strict, watch_config=watch_config)
        return _supervise(plan)


@dataclass(frozen=True)
class _Plan:
    """What this run starts, decided before anything is."""

    root: Path
    url: str
    port: int
    strict: bool
    watch_config: bool
    keys: DevKeys
    config_path: Path
    env: dict[str, str]
    """The children's environment (the Redis URL is added once Redis is up)."""
    mock_openai: bool
    mock_gemini: bool
    mock_url: str | None
    space: KeySpace

    @property
    def env_file(self) -> Path:
        return self.root / "dev.env"


def _plan(root: Path, host: str, port: int, *, strict: bool, watch_config: bool) -> _Plan:
    """Keys, config (generated unless ``ANYGATE_CONFIG`` names one) and the children's
    environment. The config is loaded once here, so a bad one is an error before any start."""
    keys = load_or_create_keys(root / "dev.env")
    mock_openai = not os.environ.get("OPENAI_API_KEY")
    mock_gemini = not os.environ.get("GEMINI_API_KEY")
    config_path = Path(os.environ.get("ANYGATE_CONFIG") or root / "config.yaml").resolve()
    if "ANYGATE_CONFIG" not in os.environ:
        tree = dev_config(
            keys,
            mock_openai=mock_openai,
            mock_gemini=mock_gemini,
            encryption_key=load_or_create_secret(root / "encryption.key"),
            webhook_secret=load_or_create_secret(root / "webhook.secret"),
        )
        config_path.write_text(yaml.safe_dump(tree), "utf-8")
    env = dict(os.environ)
    env.update(
        {
            "ANYGATE_CONFIG": str(config_path),
            "ANYGATE__SERVER__HOST": host,
            "ANYGATE__SERVER__PORT": str(port),
            "ANYGATE__REDIS__DURABILITY": "strict" if strict else "standard",
        }
    )
    mock_url = _mock_env(env, mock_openai=mock_openai, mock_gemini=mock_gemini)
    return _Plan(
        root=root,
        url=f"http://{host}:{port}",
        port=port,
        strict=strict,
        watch_config=watch_config,
        keys=keys,
        config_path=config_path,
        env=env,
        mock_openai=mock_openai,
        mock_gemini=mock_gemini,
        mock_url=mock_url,
        space=KeySpace.of(load_config(config_path, environ=env)),
    )


def _start_stack(plan: _Plan, redis: EmbeddedRedis, children: list[Child]) -> None:
    """Redis, then every child; returns once each part is ready (``dev_ready.py``)."""
    redis.start()
    plan.env["ANYGATE__REDIS__URL"] = redis.url
    with redis_py.Redis.from_url(redis.url, decode_responses=True, socket_timeout=5) as client:
        since_ms = redis_now_ms(client)
        forget_control_tick(client, plan.space)
        _start_children(children, plan.env, plan.mock_url, watch_config=plan.watch_config)
        signal.signal(signal.SIGHUP, lambda _sig, _frame: _pass_on_reload(children))
        by_name = {child.name: child for child in children}
        parts = StackParts(
            url=plan.url,
            port=plan.port,
            api=by_name["api"],
            workers={pool: by_name[f"worker-{pool}"] for pool in POOLS},
            control=by_name["control"],
            mock_url=plan.mock_url,
            keys=plan.space,
        )
        wait_ready(parts, client, since_ms, children)


def _supervise(plan: _Plan) -> int:
    """Start, announce once ready, then watch until a signal or a child's exit; everything
    started is stopped on the way out, whichever way that is. A signal while starting cuts the
    start short; once stopping, further signals change nothing (the children die with us
    anyway)."""
    starting = True
    stopping = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if starting:
            raise _InterruptedError

    children: list[Child] = []
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Ignored while the children start (they inherit it, until they catch it themselves:
    # ``catch_early_sighup``), then passed on to them.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    fsync: AppendFsync = "always" if plan.strict else "everysec"
    redis = EmbeddedRedis(plan.root / "redis", aof=True, appendfsync=fsync, die_with_parent=True)
    try:
        _start_stack(plan, redis, children)
        starting = False
        dev_env = DevEnv(plan.url, plan.keys, redis.url, plan.config_path)
        write_env_file(plan.env_file, dev_env)
        print(_banner(dev_env, plan), flush=True)
        code = _watch(children, lambda: stopping)
    except (ProcessStartError, EmbeddedRedisError, redis_py.RedisError) as exc:
        print(f"anygate dev did not start: {exc}\nstopping everything", file=sys.stderr)
        code = 1
    except _InterruptedError:
        print("interrupted before the stack was ready; stopping everything", file=sys.stderr)
        code = 1
    finally:
        starting = False
        stop_all(children, timeout=35.0)
        redis.stop()
    return code


def _watch(children: list[Child], stopping: Callable[[], bool]) -> int:
    """Until ``stopping()``: 0; or 1 as soon as a child exits."""
    while not stopping():
        dead = first_exit(children)
        if dead:
            code = dead.popen.wait()
            print(f"{dead.name} exited with code {code}; stopping", file=sys.stderr)
            return 1
        time.sleep(0.2)
    return 0
