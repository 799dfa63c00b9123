"""The whole anygate stack as one peerbench target: Redis, one worker, the API on ``--port``.

    python bench/peer_target.py --port 18010 --upstream http://127.0.0.1:18000/v1

peerbench starts this in a process group of its own, measures that group's CPU and stops it
with SIGTERM to the group (SIGKILL 10 s later). So the worker and the API stay in our group
(their CPU is counted as the gateway's), while the embedded Redis runs in its own session (as
``EmbeddedRedis`` starts it) and its CPU is *not* in peerbench's gateway column. On SIGTERM we
stop the children by pid, then Redis, well inside peerbench's 10 s, so nothing is left behind.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import click
from stack import ANYGATE, KEY, TENANT, child_env, wait_registered, write_config

from anygate.api.auth import hash_key
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import Child

MODEL = "gpt-4o-mini"  # what peerbench's configs/body_*.json ask for
POOL = "openai"
NAMESPACE = "peer"


class _StopSignalError(Exception):
    pass


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _StopSignalError(signum)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 4
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=2)


@click.command()
@click.option("--port", type=int, required=True, help="API port (peerbench's target url).")
@click.option("--upstream", required=True, help="OpenAI base url of peerbench's mock.")
@click.option("--concurrency", type=int, default=64, show_default=True)
def main(port: int, upstream: str, concurrency: int) -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    children: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="anygate-peer-") as tmp:
        redis_server = EmbeddedRedis(Path(tmp) / "redis", aof=True)
        try:
            redis_server.start()
            tree = {
                "redis": {"url": redis_server.url, "namespace": NAMESPACE},
                "providers": {
                    POOL: {"kind": "openai", "base_url": upstream, "api_key": "env:BENCH_MOCK_KEY"}
                },
                "models": {MODEL: {"deployments": [{"provider": POOL, "model": MODEL}]}},
                "tenants": [{"id": TENANT, "api_key_sha256": [hash_key(KEY)]}],
            }
            env = child_env(write_config(Path(tmp) / "anygate.yaml", tree))
            worker = [
                *ANYGATE,
                "worker",
                "--pool",
                POOL,
                "--concurrency",
                str(concurrency),
                "--shutdown-grace",
                "2",
            ]
            children.append(subprocess.Popen(worker, env=env, stdin=subprocess.DEVNULL))
            # In our own process group (see above): watched, never stopped, by the toolkit.
            proc = Child("worker", children[-1])
            wait_registered(redis_server.url, NAMESPACE, POOL, proc)
            api = [*ANYGATE, "api", "--port", str(port)]
            children.append(subprocess.Popen(api, env=env, stdin=subprocess.DEVNULL))
            print(f"anygate peer target: api :{port}, redis {redis_server.url}", flush=True)
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            print("anygate peer target: a child exited; stopping", file=sys.stderr, flush=True)
            sys.exit(1)
        except _StopSignalError:
            pass
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _stop(children)
            redis_server.stop()


if __name__ == "__main__":
    main()
