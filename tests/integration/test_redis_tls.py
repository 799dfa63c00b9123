"""Redis over TLS (``rediss://`` with ``redis.tls``): the gateway's clients verify the server
against the configured CA and present a client certificate when the server requires one
(docs/high-availability.md). A real redis-server with ``--tls-port`` and certificates made by
``trustme``, both started here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme
from redis.exceptions import ConnectionError as RedisConnectionError

from anygate.broker import create_redis
from anygate.config import RedisConfig
from anygate.ops.embedded_redis import find_redis_server
from tests.support import redis_sentinel as sentinel_support
from tests.support.configs import config_tree
from tests.support.jobs import chat_job, submit
from tests.support.mock import MockControl
from tests.support.processes import free_port
from tests.support.stack import Stack


@dataclass
class TLSFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path

    def section(self, *, client_cert: bool = True, **extra: Any) -> dict[str, Any]:
        tls: dict[str, Any] = {"ca_file": str(self.ca), **extra}
        if client_cert:
            tls.update(cert_file=str(self.client_cert), key_file=str(self.client_key))
        return tls


def _tls_files(root: Path, *server_names: str) -> TLSFiles:
    ca = trustme.CA()
    server = ca.issue_cert(*server_names)
    client = ca.issue_cert("anygate-client")
    paths = {name: root / f"{name}.pem" for name in ("ca", "scert", "skey", "ccert", "ckey", "o")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    server.cert_chain_pems[0].write_to_path(str(paths["scert"]))
    server.private_key_pem.write_to_path(str(paths["skey"]))
    client.cert_chain_pems[0].write_to_path(str(paths["ccert"]))
    client.private_key_pem.write_to_path(str(paths["ckey"]))
    trustme.CA().cert_pem.write_to_path(str(paths["o"]))
    return TLSFiles(
        paths["ca"], paths["scert"], paths["skey"], paths["ccert"], paths["ckey"], paths["o"]
    )


@contextlib.contextmanager
def _tls_redis(root: Path, files: TLSFiles) -> Iterator[int]:
    """A redis-server listening only on a TLS port, requiring client certificates."""
    port = free_port()
    args = [
        find_redis_server(),
        "--bind", "127.0.0.1",
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(files.server_cert),
        "--tls-key-file", str(files.server_key),
        "--tls-ca-cert-file", str(files.ca),
        "--tls-auth-clients", "yes",
        "--dir", str(root),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--logfile", str(root / "redis.log"),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        probe = redis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=str(files.ca),
            ssl_certfile=str(files.client_cert),
            ssl_keyfile=str(files.client_key),
            socket_timeout=1,
        )
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                log = (root / "redis.log").read_text(errors="replace")[-800:]
                pytest.fail(f"redis-server with TLS exited:\n{log}")
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the TLS redis-server did not answer"
                time.sleep(0.05)
        probe.close()
        yield port
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, TLSFiles]]:
    root = tmp_path_factory.mktemp("tls")
    files = _tls_files(root, "127.0.0.1", "localhost")
    with _tls_redis(root, files) as port:
        yield port, files


def _config(port: int, tls: dict[str, Any] | None, host: str = "127.0.0.1") -> RedisConfig:
    return RedisConfig(url=f"rediss://{host}:{port}/0", tls=tls)  # type: ignore[arg-type]


async def test_the_broker_client_talks_tls_with_the_configured_ca_and_client_cert(
    tls_server: tuple[int, TLSFiles],
) -> None:
    port, files = tls_server
    client = create_redis(_config(port, files.section()))
    try:
        await client.set("tls-probe", "through TLS")
        assert await client.get("tls-probe") == "through TLS"
        assert await client.config_get("port") == {"port": "0"}, "TLS is its only port"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("case", "error"),
    [
        # the server requires a client certificate: it resets the connection without one
        ("no client certificate", r"reset by peer|closed|EOF|CERTIFICATE_REQUIRED"),
        ("another CA", "CERTIFICATE_VERIFY_FAILED"),
        ("the system CAs", "CERTIFICATE_VERIFY_FAILED"),
    ],
)
async def test_a_wrong_tls_setting_is_refused(
    tls_server: tuple[int, TLSFiles], case: str, error: str
) -> None:
    port, files = tls_server
    tls: dict[str, Any] | None = {
        "no client certificate": files.section(client_cert=False),
        "another CA": {**files.section(), "ca_file": str(files.other_ca)},
        "the system CAs": None,
    }[case]
    client = create_redis(_config(port, tls))
    try:
        with pytest.raises(RedisConnectionError, match=error):
            await client.ping()
    finally:
        await client.aclose()


async def test_host_name_is_checked_unless_turned_off(tmp_path: Path) -> None:
    """A certificate that names another host is refused by default, and accepted (its CA still
    checked) with ``check_hostname: false``."""
    files = _tls_files(tmp_path, "redis.internal")
    with _tls_redis(tmp_path, files) as port:
        strict = create_redis(_config(port, files.section()))
        try:
            with pytest.raises(RedisConnectionError, match=r"(?i)hostname|match|certificate"):
                await strict.ping()
        finally:
            await strict.aclose()
        relaxed = create_redis(_config(port, files.section(check_hostname=False)))
        try:
            assert await relaxed.ping()
        finally:
            await relaxed.aclose()


class _TLSStack(Stack):
    """A stack whose own admin client speaks TLS too (``Stack`` opens one on ``redis.url``)."""

    def __init__(self, tmp_path: Path, tree: dict[str, Any], port: int, files: TLSFiles) -> None:
        super().__init__(tmp_path, tree)
        self._redis.close()
        self._redis = redis.Redis(
            host="127.0.0.1",
            port=port,
            ssl=True,
            ssl_ca_certs=str(files.ca),
            ssl_certfile=str(files.client_cert),
            ssl_keyfile=str(files.client_key),
            decode_responses=True,
        )


async def test_a_job_runs_end_to_end_over_tls(
    tls_server: tuple[int, TLSFiles], tmp_path: Path, mock: MockControl, namespace: str
) -> None:
    port, files = tls_server
    tree = config_tree(f"rediss://127.0.0.1:{port}/0", namespace, mock_root=mock.url)
    tree["redis"]["tls"] = files.section()
    stack = _TLSStack(tmp_path, tree, port, files)
    try:
        stack.start_api()
        stack.start_worker()
        async with stack.client() as client:
            job = await submit(client, chat_job("over TLS"))
            done = await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
            assert done.json()["status"] == "succeeded", done.text
            chat = await client.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tls"}]},
            )
            assert chat.status_code == 200, chat.text
    finally:
        stack.stop()
    stack.check_logs()


async def test_sentinel_over_tls_follows_a_failover(
    tmp_path: Path, mock: MockControl, namespace: str
) -> None:
    """Data nodes, replication and sentinels all on TLS only, client certificates required:
    the gateway (``redis.tls`` + ``redis.sentinel.tls``) runs a job, follows a ``kill -9`` of
    the master and runs one more on the promoted replica."""
    files = _tls_files(tmp_path, "127.0.0.1", "localhost")
    node_tls = sentinel_support.TLSFiles(files.ca, files.server_cert, files.server_key)
    with sentinel_support.sentinel_set(tmp_path / "redis", replicas=1, tls=node_tls) as nodes:
        tree = config_tree("redis://unused", namespace, mock_root=mock.url)
        tree["redis"] = nodes.redis_section(namespace, tls=files.section())
        stack = sentinel_support.SentinelStack(tmp_path, tree, nodes)
        try:
            stack.start_api()
            stack.start_worker()
            async with stack.client() as client:
                job = await submit(client, chat_job("before"))
                done = await client.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
                assert done.json()["status"] == "succeeded", done.text
                old = nodes.master
                assert old is not None
                old.kill()
                await asyncio.to_thread(nodes.wait_for_new_master, old.port, 30.0)
                deadline = time.monotonic() + 20
                while (
                    response := await client.post("/v1/jobs", json=chat_job("after"))
                ).status_code != 202:
                    assert response.status_code == 503, response.text
                    assert time.monotonic() < deadline, "no submit accepted after the failover"
                    await asyncio.sleep(0.2)
                job_id = response.json()["id"]
                while (
                    after := await client.get(f"/v1/jobs/{job_id}", params={"wait": 5})
                ).status_code != 200 or after.json()["status"] in {"queued", "running"}:
                    assert after.status_code in {200, 503}, after.text
                    assert time.monotonic() < deadline, f"the job did not end: {after.text}"
                    await asyncio.sleep(0.2)
                assert after.json()["status"] == "succeeded", after.text
        finally:
            stack.stop()
        stack.check_logs()
