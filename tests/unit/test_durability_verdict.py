"""Which servers strict durability runs on, and what the refusal tells the operator to set."""

from __future__ import annotations

import pytest

from anygate.broker.durability import ServerPersistence, judge
from anygate.config import RedisConfig


def _server(
    *, appendonly: str = "yes", appendfsync: str = "always", version: str = "7.0.15", io: int = 1
) -> ServerPersistence:
    return ServerPersistence(version, appendonly, appendfsync, io)


class TestJudge:
    def test_standard_mode_runs_on_anything(self) -> None:
        verdict = judge("standard", None, assume_always=False)
        assert verdict.ok
        assert verdict.summary == "standard"

    def test_strict_runs_on_appendonly_with_fsync_always(self) -> None:
        verdict = judge("strict", _server(), assume_always=False)
        assert verdict.ok
        assert not verdict.problem
        assert "appendfsync always" in verdict.summary

    @pytest.mark.parametrize("fsync", ["everysec", "no"])
    def test_strict_refuses_a_server_that_fsyncs_later(self, fsync: str) -> None:
        verdict = judge("strict", _server(appendfsync=fsync), assume_always=False)
        assert not verdict.ok
        assert f"appendfsync {fsync}" in verdict.problem
        assert "appendfsync always" in verdict.problem, "says what to set"
        assert "redis.durability: standard" in verdict.problem, "and the way out"

    def test_strict_refuses_a_server_that_skips_fsync_during_rewrites(self) -> None:
        """``no-appendfsync-on-rewrite yes`` answers unsynced writes while a child runs."""
        server = ServerPersistence("7.0.15", "yes", "always", 1, no_fsync_on_rewrite="yes")
        verdict = judge("strict", server, assume_always=False)
        assert not verdict.ok
        assert "no-appendfsync-on-rewrite yes" in verdict.problem
        assert "no-appendfsync-on-rewrite no" in verdict.problem

    def test_strict_refuses_a_server_without_aof(self) -> None:
        verdict = judge("strict", _server(appendonly="no"), assume_always=False)
        assert not verdict.ok
        assert "appendonly no" in verdict.problem
        assert "appendonly yes" in verdict.problem

    def test_strict_refuses_when_config_get_is_denied(self) -> None:
        verdict = judge("strict", None, assume_always=False)
        assert not verdict.ok
        assert "CONFIG GET" in verdict.problem
        assert "redis.assume_appendfsync_always: true" in verdict.problem

    def test_the_override_runs_unverified_with_a_warning(self) -> None:
        verdict = judge("strict", None, assume_always=True)
        assert verdict.ok
        assert "unverified" in verdict.summary
        assert "cannot be checked" in verdict.problem, "the warning a process logs"

    def test_the_override_does_not_hide_a_server_that_answers_wrongly(self) -> None:
        verdict = judge("strict", _server(appendfsync="everysec"), assume_always=True)
        assert not verdict.ok

    def test_redis_6_2_with_io_threads_is_refused(self) -> None:
        """Before 7.0 threaded I/O wrote replies without the write barrier (redis#9678)."""
        verdict = judge("strict", _server(version="6.2.14", io=4), assume_always=False)
        assert not verdict.ok
        assert "io-threads 4" in verdict.problem
        assert judge("strict", _server(version="6.2.14"), assume_always=False).ok
        assert judge("strict", _server(version="7.0.15", io=4), assume_always=False).ok


def test_version_parsing_tolerates_suffixes() -> None:
    assert _server(version="7.2.4").version_tuple() == (7, 2, 4)
    assert _server(version="6.2.14-rc1").version_tuple() == (6, 2, 14)
    assert _server(version="255.255.255").version_tuple() >= (7, 0, 0)


def test_the_config_defaults_to_standard_and_refuses_unknown_modes() -> None:
    assert RedisConfig().durability == "standard"
    assert RedisConfig(durability="strict").durability == "strict"
    with pytest.raises(ValueError, match="durability"):
        RedisConfig(durability="paranoid")  # type: ignore[arg-type]
