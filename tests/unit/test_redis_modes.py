"""The ``redis`` section's connection modes (standalone, Sentinel), TLS and credentials: what
config accepts, and that each setting reaches the connection pool ``broker/connection.py``
builds (the live behaviour is tested against real servers in tests/integration/
test_redis_sentinel.py and test_redis_tls.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import BlockingConnectionPool, ConnectionPool

from anygate.broker.connection import (
    BlockingSentinelConnectionPool,
    CPackedConnection,
    CPackedSentinelConnection,
    CPackedSentinelSSLConnection,
    CPackedSSLConnection,
    FollowingSentinelConnectionPool,
    connection_pool,
    is_stale,
    redis_options,
)
from anygate.config import ConfigError, RedisConfig, parse_config

SENTINEL = {"master_name": "main", "nodes": ["10.0.0.1:26379", "[::1]:26380"]}


def problems(redis: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config({"redis": redis})
    return info.value.problems


def test_url_alone_still_means_one_server() -> None:
    config = RedisConfig(url="redis://cache:6380/2")
    assert config.mode == "standalone"
    pool = connection_pool(config, redis_options(config))
    assert isinstance(pool, BlockingConnectionPool)
    assert pool.connection_class is CPackedConnection
    assert pool.connection_kwargs["host"] == "cache"
    assert pool.connection_kwargs["port"] == 6380
    assert pool.connection_kwargs["db"] == 2


@pytest.mark.parametrize(
    ("redis", "path", "words"),
    [
        ({"mode": "sentinel"}, "redis", "sentinel"),
        ({"mode": "sentinel", "sentinel": SENTINEL, "url": "redis://x:1/0"}, "redis", "url"),
        ({"sentinel": SENTINEL}, "redis", "mode"),
        ({"tls": {}}, "redis", "rediss://"),
        ({"url": "http://x"}, "redis.url", "redis://"),
        (
            {"mode": "sentinel", "sentinel": {**SENTINEL, "tls": True}},
            "redis",
            "sentinel.tls needs tls",
        ),
        (
            {"mode": "sentinel", "sentinel": {**SENTINEL, "nodes": ["10.0.0.1"]}},
            "redis.sentinel.nodes[0]",
            "host:port",
        ),
        ({"mode": "sentinel", "sentinel": {**SENTINEL, "nodes": []}}, "redis.sentinel.nodes", ""),
        ({"mode": "sentinel", "sentinel": {"nodes": ["a:1"]}}, "redis.sentinel.master_name", ""),
        ({"password": "hunter2"}, "redis.password", "secret reference"),
        (
            {"mode": "sentinel", "sentinel": {**SENTINEL, "password": "hunter2"}},
            "redis.sentinel.password",
            "secret reference",
        ),
        ({"mode": "replicated"}, "redis.mode", ""),
        ({"min_replicas_acked": -1}, "redis.min_replicas_acked", ""),
        ({"mode": "cluster", "durability": "strict"}, "redis", "durability strict"),
    ],
)
def test_bad_settings_name_their_field(redis: dict[str, Any], path: str, words: str) -> None:
    found = problems(redis)
    assert any(p == path and words in message for p, message in found), found
    assert not any("hunter2" in message for _, message in found), "a secret in an error"


def test_tls_files_must_exist_and_a_client_cert_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    found = problems({"url": "rediss://x:1/0", "tls": {"ca_file": str(tmp_path / "nope.pem")}})
    assert found[0][0] == "redis.tls.ca_file"
    assert "not readable" in found[0][1]
    found = problems({"url": "rediss://x:1/0", "tls": {"cert_file": str(cert)}})
    assert found == [("redis.tls", "cert_file and key_file go together: set both or neither")]


def test_replicas_to_ack_defaults_to_one_under_sentinel_in_strict_mode_only() -> None:
    sentinel = {"mode": "sentinel", "sentinel": SENTINEL}
    assert RedisConfig.model_validate(sentinel).replicas_to_ack() == 0
    assert RedisConfig.model_validate({**sentinel, "durability": "strict"}).replicas_to_ack() == 1
    assert RedisConfig(durability="strict").replicas_to_ack() == 0
    assert RedisConfig(durability="strict", min_replicas_acked=2).replicas_to_ack() == 2
    assert RedisConfig(min_replicas_acked=2).replicas_to_ack() == 0, "standard mode never waits"


def _tls_files(tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("ca_file", "cert_file", "key_file"):
        path = tmp_path / f"{name}.pem"
        path.write_text("not read before a connection opens")
        files[name] = str(path)
    return files


def test_tls_settings_and_credentials_reach_a_standalone_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_PW", "s3cret")
    files = _tls_files(tmp_path)
    config = RedisConfig.model_validate(
        {
            "url": "rediss://old:pw@redis.internal:6380/0",
            "username": "gateway",
            "password": "env:REDIS_PW",
            "tls": {**files, "check_hostname": False},
        }
    )
    pool = connection_pool(config, redis_options(config))
    kwargs = pool.connection_kwargs
    assert pool.connection_class is CPackedSSLConnection
    assert (kwargs["username"], kwargs["password"]) == ("gateway", "s3cret")
    assert kwargs["ssl_ca_certs"] == files["ca_file"]
    assert kwargs["ssl_certfile"] == files["cert_file"]
    assert kwargs["ssl_keyfile"] == files["key_file"]
    assert kwargs["ssl_check_hostname"] is False
    assert kwargs["ssl_cert_reqs"] == "required"
    connection = pool.make_connection()
    assert connection.ssl_context.ca_certs == files["ca_file"]  # type: ignore[attr-defined]
    assert "s3cret" not in repr(config)


def test_plain_rediss_verifies_the_server_by_default() -> None:
    config = RedisConfig(url="rediss://redis.example.com:6380/0")
    kwargs = connection_pool(config, redis_options(config)).connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_check_hostname"] is True


def test_sentinel_mode_builds_a_sentinel_pool_with_both_sides_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_PW", "data-secret")
    monkeypatch.setenv("SENTINEL_PW", "sentinel-secret")
    files = _tls_files(tmp_path)
    config = RedisConfig.model_validate(
        {
            "mode": "sentinel",
            "password": "env:DATA_PW",
            "tls": files,
            "sentinel": {
                **SENTINEL,
                "db": 3,
                "username": "watcher",
                "password": "env:SENTINEL_PW",
                "tls": True,
            },
        }
    )
    pool = connection_pool(config, redis_options(config))
    assert isinstance(pool, BlockingSentinelConnectionPool)
    assert pool.service_name == "main"
    assert pool.is_master
    assert pool.connection_class is CPackedSentinelSSLConnection
    assert pool.connection_kwargs["db"] == 3
    assert pool.connection_kwargs["password"] == "data-secret"
    assert pool.connection_kwargs["ssl_ca_certs"] == files["ca_file"]
    sentinels = pool.sentinel_manager.sentinels
    addresses = [
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in sentinels
    ]
    assert addresses == [("10.0.0.1", 26379), ("::1", 26380)]
    for sentinel in sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("watcher", "sentinel-secret")
        assert kwargs["ssl_ca_certs"] == files["ca_file"]
    arq = connection_pool(config, redis_options(config), blocking=False)
    assert type(arq) is FollowingSentinelConnectionPool


def test_sentinel_without_tls_uses_plain_connections() -> None:
    config = RedisConfig.model_validate({"mode": "sentinel", "sentinel": SENTINEL})
    pool = connection_pool(config, redis_options(config))
    assert pool.connection_class is CPackedSentinelConnection
    assert (
        pool.connection_kwargs["password"] is None if "password" in pool.connection_kwargs else True
    )
    for sentinel in pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
        assert sentinel.connection_pool.connection_class.__name__ == "Connection"


def test_cluster_mode_refuses_a_tls_section_and_a_pool_of_it_is_the_seed_node() -> None:
    found = problems({"mode": "cluster", "url": "rediss://x:1/0", "tls": {}})
    assert found[0][0] == "redis"
    assert "tls is not supported with mode cluster" in found[0][1]
    config = RedisConfig(mode="cluster", url="redis://seed:7000/0")
    pool = connection_pool(config, redis_options(config), blocking=False)
    assert type(pool) is ConnectionPool
    assert (pool.connection_kwargs["host"], pool.connection_kwargs["port"]) == ("seed", 7000)


class _Connection:
    def __init__(self, host: str, port: int, connected: bool = True) -> None:
        self.host, self.port, self.is_connected = host, port, connected


def test_a_connection_to_a_former_master_is_stale() -> None:
    config = RedisConfig.model_validate({"mode": "sentinel", "sentinel": SENTINEL})
    pool = connection_pool(config, redis_options(config))
    assert not is_stale(pool, _Connection("10.0.0.5", 6379)), "master not looked up yet"
    pool.master_address = ("10.0.0.6", 6379)  # type: ignore[attr-defined]
    assert is_stale(pool, _Connection("10.0.0.5", 6379))
    assert not is_stale(pool, _Connection("10.0.0.6", 6379))
    assert not is_stale(pool, _Connection("10.0.0.5", 6379, connected=False))
    plain = ConnectionPool()
    assert not is_stale(plain, _Connection("10.0.0.5", 6379))
    assert not is_stale(None, _Connection("10.0.0.5", 6379)), "a cluster client has no pool"
