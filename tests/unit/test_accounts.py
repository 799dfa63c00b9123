"""Accounts per deployment, Azure OpenAI and Vertex AI: config validation (every error names
its setting), deployment keys and the plan's wire format, and the targets' URLs and headers
(docs/operations.md#accounts); pure, no Redis and no network."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.requests import Request

from anygate.api.auth import Tenant
from anygate.api.provider_keys import client_provider_key
from anygate.broker import ClaimedJob
from anygate.broker.errors import UpstreamRateLimitedError, UpstreamTransientError
from anygate.broker.job_log import deployment_of
from anygate.broker.routing import (
    RouteSelector,
    decode_plan,
    deployment_key,
    encode_plan,
    plan,
    step_from_wire,
)
from anygate.config import (
    AnygateConfig,
    ConfigError,
    Deployment,
    Priority,
    ProviderKind,
    TenantQuotas,
    parse_config,
)
from anygate.config.secrets import SecretRef
from anygate.workers.adapters import Account
from anygate.workers.adapters.auth import KeyHeader, RotatingBearer, json_headers
from anygate.workers.adapters.google_token import REFRESH_MARGIN_S, ServiceAccountToken
from anygate.workers.adapters.http import error_for_status
from anygate.workers.adapters.targets import gemini_targets, openai_targets, vertex_root

CHAT = "/v1/chat/completions"
AZURE = {
    "kind": "azure_openai",
    "base_url": "https://contoso.openai.azure.com",
    "api_version": "2024-10-21",
    "api_key": "env:AZ_KEY",
}
VERTEX = {
    "kind": "vertex",
    "project": "my-project-1",
    "location": "europe-west4",
    "credentials_file": "/nonexistent/sa.json",
}


def tree(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": {"azure": dict(AZURE), "openai": {"kind": "openai"}},
        "models": {
            "fast": {
                "strategy": "ordered",
                "deployments": [
                    {"provider": "azure", "model": "gpt-4o", "account": "a"},
                    {
                        "provider": "azure",
                        "model": "gpt-4o",
                        "account": "b",
                        "base_url": "https://fabrikam.openai.azure.com",
                        "api_key": "env:AZ_KEY_B",
                    },
                ],
            }
        },
    }
    base.update(overrides)
    return base


def problems(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.problems


def only_problem(raw: dict[str, Any]) -> tuple[str, str]:
    found = problems(raw)
    assert len(found) == 1, found
    return found[0]


class TestAccountConfig:
    def test_two_accounts_of_one_model_are_accepted(self) -> None:
        config = parse_config(tree())
        a, b = config.models["fast"].deployments
        assert (a.account, b.account) == ("a", "b")
        assert b.api_key == SecretRef("env", "AZ_KEY_B")

    def test_an_own_key_without_an_account_names_the_account(self) -> None:
        raw = tree()
        del raw["models"]["fast"]["deployments"][1]["account"]
        path, message = only_problem(raw)
        assert path == "models.fast.deployments[1].account"
        assert "required" in message

    def test_a_base_url_without_an_account_names_the_account(self) -> None:
        raw = tree()
        raw["models"]["fast"]["deployments"][0] = {
            "provider": "openai",
            "model": "gpt-4o",
            "base_url": "https://eu.example.com/v1",
        }
        assert only_problem(raw)[0] == "models.fast.deployments[0].account"

    def test_a_duplicate_account_names_the_second_one(self) -> None:
        raw = tree()
        raw["models"]["fast"]["deployments"][1]["account"] = "a"
        path, message = only_problem(raw)
        assert path == "(root)"
        assert message.startswith("models.fast.deployments[1].account: 'a' is already")

    def test_one_account_listed_by_two_aliases_is_one_deployment(self) -> None:
        raw = tree()
        dep = dict(raw["models"]["fast"]["deployments"][1])
        raw["models"]["other"] = {"deployments": [dep]}
        parse_config(raw)  # same account, same key and URL: fine
        raw["models"]["other"]["deployments"][0]["api_key"] = "env:SOMETHING_ELSE"
        assert "models.other.deployments[0].account" in only_problem(raw)[1]

    def test_a_deployment_base_url_must_be_http(self) -> None:
        raw = tree()
        raw["models"]["fast"]["deployments"][1]["base_url"] = "ftp://example.com"
        assert only_problem(raw)[0] == "models.fast.deployments[1].base_url"

    def test_account_names_are_short_labels(self) -> None:
        raw = tree()
        raw["models"]["fast"]["deployments"][0]["account"] = "a|b"
        assert only_problem(raw)[0] == "models.fast.deployments[0].account"


class TestAzureConfig:
    def test_api_version_is_required(self) -> None:
        raw = tree()
        del raw["providers"]["azure"]["api_version"]
        path, message = only_problem(raw)
        assert path == "providers.azure.api_version"
        assert "2024-10-21" in message

    def test_the_endpoint_is_required(self) -> None:
        raw = tree()
        del raw["providers"]["azure"]["base_url"]
        assert only_problem(raw)[0] == "providers.azure.base_url"

    def test_both_kinds_of_auth_are_refused(self) -> None:
        raw = tree()
        raw["providers"]["azure"]["azure_ad_token"] = "file:/run/token"
        path, message = only_problem(raw)
        assert path == "providers.azure"
        assert message.startswith("api_key, azure_ad_token: ")
        assert "exactly one" in message

    def test_neither_kind_of_auth_is_refused(self) -> None:
        raw = tree()
        del raw["providers"]["azure"]["api_key"]
        assert "exactly one" in only_problem(raw)[1]

    def test_an_azure_setting_on_another_kind_is_named(self) -> None:
        raw = tree()
        raw["providers"]["openai"]["api_version"] = "2024-10-21"
        path, message = only_problem(raw)
        assert path == "providers.openai.api_version"
        assert "not a setting of kind openai" in message


class TestVertexConfig:
    def test_a_complete_vertex_provider(self) -> None:
        config = parse_config(tree(providers={"vertex": VERTEX}, models={}))
        provider = config.providers["vertex"]
        assert provider.kind.speaks_gemini
        assert provider.resolved_base_url() == "https://europe-west4-aiplatform.googleapis.com"

    def test_global_has_no_region_in_the_host(self) -> None:
        config = parse_config(tree(providers={"v": {**VERTEX, "location": "global"}}, models={}))
        assert config.providers["v"].resolved_base_url() == "https://aiplatform.googleapis.com"

    @pytest.mark.parametrize("field", ["project", "location"])
    def test_project_and_location_are_required(self, field: str) -> None:
        provider = {k: v for k, v in VERTEX.items() if k != field}
        path, _ = only_problem(tree(providers={"v": provider}, models={}))
        assert path == f"providers.v.{field}"

    def test_exactly_one_credential(self) -> None:
        provider = {**VERTEX, "credentials": "env:SA_JSON"}
        path, message = only_problem(tree(providers={"v": provider}, models={}))
        assert path == "providers.v"
        assert message.startswith("credentials_file, credentials: ")

    def test_an_api_key_is_refused(self) -> None:
        provider = {**VERTEX, "api_key": "env:K"}
        assert only_problem(tree(providers={"v": provider}, models={}))[0] == "providers.v.api_key"

    def test_an_embedding_route_on_vertex_is_refused(self) -> None:
        models = {"emb": {"kind": "embedding", "deployments": [{"provider": "v", "model": "e"}]}}
        path, message = only_problem(tree(providers={"v": VERTEX}, models=models))
        assert "models.emb.deployments[0].provider" in message
        assert "chat only" in message
        assert path == "(root)"

    def test_a_vertex_deployment_takes_no_key_of_its_own(self) -> None:
        dep = {"provider": "v", "model": "m", "account": "x", "api_key": "env:K"}
        models = {"chat": {"deployments": [dep]}}
        assert (
            "models.chat.deployments[0].api_key"
            in only_problem(tree(providers={"v": VERTEX}, models=models))[1]
        )


def _config() -> AnygateConfig:
    return parse_config(tree())


class TestKeysAndWire:
    def test_deployment_key_carries_the_account_only_when_set(self) -> None:
        a, b = _config().models["fast"].deployments
        assert deployment_key(a) == "azure:gpt-4o@a"
        assert deployment_key(b) == "azure:gpt-4o@b"
        assert deployment_key(Deployment(provider="o", model="gpt-4o")) == "o:gpt-4o"

    def test_a_plan_round_trips_each_account(self) -> None:
        config = _config()
        steps = plan(config, CHAT, "fast", RouteSelector(), {})
        raw = encode_plan(steps, alias="fast")
        assert raw == "fast|azure|gpt-4o|a;fast|azure|gpt-4o|b"
        back = [step_from_wire(config, wire) for wire in decode_plan(raw)]
        assert [s.deployment.account for s in back if s] == ["a", "b"]

    def test_a_three_element_plan_still_decodes(self) -> None:
        config = parse_config(
            {
                "providers": {"o": {"kind": "openai"}},
                "models": {"m": {"deployments": [{"provider": "o", "model": "x|y"}]}},
            }
        )
        assert decode_plan("m|o|gpt-4o;m|o|x|y") == [["m", "o", "gpt-4o"], ["m", "o", "x", "y"]]
        # a model with a '|' whose tail is not an account name stays the model
        assert decode_plan("m|o|a|b c") == [["m", "o", "a|b c"]]
        step = step_from_wire(config, ["m", "o", "gpt-4o"])
        assert step is None  # not configured: no match, no crash
        dep = config.models["m"].deployments[0]
        assert step_from_wire(config, ["m", "o", "x|y"]) is not None
        assert dep.account is None

    def test_an_account_step_does_not_match_the_accountless_deployment(self) -> None:
        config = _config()
        assert step_from_wire(config, ["fast", "azure", "gpt-4o"]) is None
        assert step_from_wire(config, ["fast", "azure", "gpt-4o", "c"]) is None

    def test_the_job_log_names_the_account(self) -> None:
        job = ClaimedJob(
            id="job_x",
            attempt=1,
            tenant="t",
            endpoint=CHAT,
            model="fast",
            body=b"{}",
            priority=Priority.STANDARD,
            stream=False,
            plan="fast|azure|gpt-4o|a;fast|azure|gpt-4o|b",
            step=1,
        )
        assert deployment_of(job, "azure", _config()) == "azure:gpt-4o@b"


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


class TestTargets:
    def test_azure_urls_and_api_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AZ_KEY", "az-key-1")
        monkeypatch.setenv("AZ_KEY_B", "az-key-2")
        config = _config()
        targets = openai_targets(config.providers["azure"])
        default = targets.of(None)
        assert default.url(CHAT, "gpt-4o") == (
            "https://contoso.openai.azure.com/openai/deployments/gpt-4o/chat/completions"
            "?api-version=2024-10-21"
        )
        assert default.url("/v1/embeddings", "my emb") == (
            "https://contoso.openai.azure.com/openai/deployments/my%20emb/embeddings"
            "?api-version=2024-10-21"
        )
        assert _run(json_headers(default.auth, None)) == {
            "content-type": "application/json",
            "api-key": "az-key-1",
        }
        b = config.models["fast"].deployments[1]
        account = Account.of(b)
        assert account is not None
        own = targets.of(account)
        assert own.url(CHAT, "gpt-4o").startswith("https://fabrikam.openai.azure.com/openai/")
        assert _run(own.auth.headers()) == {"api-key": "az-key-2"}
        assert targets.of(account) is own  # made once
        # BYOK: the client's key replaces the gateway's, in Azure's header
        assert _run(json_headers(own.auth, "client-key")) == {
            "content-type": "application/json",
            "api-key": "client-key",
        }

    def test_an_account_without_its_own_key_uses_the_providers(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OAI", "sk-provider")
        provider = parse_config(
            {"providers": {"o": {"kind": "openai", "api_key": "env:OAI"}}}
        ).providers["o"]
        targets = openai_targets(provider)
        eu = targets.of(Account("eu", base_url="https://eu.example.com/v1/"))
        assert eu.url(CHAT, "m") == "https://eu.example.com/v1/chat/completions"
        assert _run(eu.auth.headers()) == {"authorization": "Bearer sk-provider"}

    def test_gemini_account_key_header(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("G2", "gk-2")
        provider = parse_config({"providers": {"g": {"kind": "gemini"}}}).providers["g"]
        targets = gemini_targets(provider)
        assert targets.of(None).url("gemini-2.5-flash", "generateContent") == (
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
        )
        own = targets.of(Account("two", api_key=SecretRef("env", "G2")))
        assert _run(own.auth.headers()) == {"x-goog-api-key": "gk-2"}

    def test_vertex_urls(self) -> None:
        root = vertex_root("https://us-central1-aiplatform.googleapis.com", "p-1", "us-central1")
        assert root == (
            "https://us-central1-aiplatform.googleapis.com/v1/projects/p-1/locations/us-central1"
            "/publishers/google"
        )

    def test_provider_kinds_map_to_families(self) -> None:
        assert ProviderKind.VERTEX.speaks_gemini
        assert not ProviderKind.AZURE_OPENAI.speaks_gemini


class TestRotatingBearer:
    def test_a_token_file_is_read_again_when_it_changes(self, tmp_path: Path) -> None:
        token = tmp_path / "token"
        token.write_text("tok-1\n")
        auth = RotatingBearer(SecretRef("file", str(token)), KeyHeader("api-key", None))
        assert _run(auth.headers()) == {"authorization": "Bearer tok-1"}
        token.write_text("tok-2-longer\n")
        assert _run(auth.headers()) == {"authorization": "Bearer tok-2-longer"}
        assert auth.client_headers("ck") == {"api-key": "ck"}

    def test_a_same_size_rewrite_is_seen_by_its_mtime(self, tmp_path: Path) -> None:
        token = tmp_path / "token"
        token.write_text("tok-1")
        auth = RotatingBearer(SecretRef("file", str(token)), KeyHeader("api-key", None))
        _run(auth.headers())
        token.write_text("tok-2")
        stat = token.stat()
        os.utime(token, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        assert _run(auth.headers()) == {"authorization": "Bearer tok-2"}

    def test_a_briefly_missing_file_keeps_the_last_token(self, tmp_path: Path) -> None:
        token = tmp_path / "token"
        token.write_text("tok-1")
        auth = RotatingBearer(SecretRef("file", str(token)), KeyHeader("api-key", None))
        _run(auth.headers())
        token.unlink()
        assert _run(auth.headers()) == {"authorization": "Bearer tok-1"}

    def test_no_token_at_all_is_a_transient_error_without_a_value(self, tmp_path: Path) -> None:
        auth = RotatingBearer(SecretRef("file", str(tmp_path / "none")), KeyHeader("api-key", None))
        with pytest.raises(UpstreamTransientError) as caught:
            _run(auth.headers())
        assert caught.value.code == "credentials_unavailable"


class _FakeSource:
    """Stands for google-auth's credentials: each refresh takes a while and a new token."""

    def __init__(self, lifetime: dt.timedelta) -> None:
        self.token: str | None = None
        self.expiry: dt.datetime | None = None
        self.calls = 0
        self._lifetime = lifetime

    def refresh(self, _request: Any) -> None:
        import time  # noqa: PLC0415

        time.sleep(0.05)  # in a thread: the event loop must not wait on it
        self.calls += 1
        self.token = f"token-{self.calls}"
        self.expiry = dt.datetime.now(dt.UTC).replace(tzinfo=None) + self._lifetime


class TestServiceAccountToken:
    def test_concurrent_calls_share_one_refresh_and_reuse_the_token(self) -> None:
        source = _FakeSource(dt.timedelta(hours=1))
        auth = ServiceAccountToken(source)

        async def main() -> list[Any]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                for _ in range(3):
                    await asyncio.sleep(0.01)
                    ticks += 1

            got = await asyncio.gather(*(auth.headers() for _ in range(10)), ticker())
            assert ticks == 3, "the loop ran while the refresh was in its thread"
            got.append(await auth.headers())
            return got[:10] + got[11:]

        results = _run(main())
        assert source.calls == 1
        assert all(r == {"authorization": "Bearer token-1"} for r in results)

    def test_a_token_close_to_expiry_is_refreshed(self) -> None:
        source = _FakeSource(dt.timedelta(seconds=REFRESH_MARGIN_S + 60))
        now = [dt.datetime.now(dt.UTC).replace(tzinfo=None)]
        auth = ServiceAccountToken(source, now=lambda: now[0])
        assert _run(auth.headers()) == {"authorization": "Bearer token-1"}
        now[0] += dt.timedelta(seconds=30)
        assert _run(auth.headers()) == {"authorization": "Bearer token-1"}
        now[0] += dt.timedelta(seconds=60)  # within the margin now
        assert _run(auth.headers()) == {"authorization": "Bearer token-2"}
        assert source.calls == 2

    def test_a_client_key_is_a_bearer_token(self) -> None:
        auth = ServiceAccountToken(_FakeSource(dt.timedelta(hours=1)))
        assert auth.client_headers("ya29.client") == {"authorization": "Bearer ya29.client"}


def test_static_key_header_without_a_key_sends_nothing() -> None:
    assert _run(KeyHeader("api-key", None).headers()) == {}
    assert _run(KeyHeader("api-key", SecretStr("k")).headers()) == {"api-key": "k"}


class TestClientKeysOnAzureAndVertex:
    """BYOK: an OpenAI key is no Azure key and a Gemini API key no Vertex token, so a native
    header's key never reaches those kinds; an explicit provider key does."""

    @staticmethod
    def _request(headers: dict[str, str]) -> Any:

        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        return Request(
            {"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}
        )

    @staticmethod
    def _steps() -> tuple[AnygateConfig, list[Any]]:
        config = parse_config(
            {
                "providers": {"azure": dict(AZURE), "openai": {"kind": "openai"}},
                "models": {
                    "m": {
                        "deployments": [
                            {"provider": "azure", "model": "gpt-4o"},
                            {"provider": "openai", "model": "gpt-4o"},
                        ]
                    }
                },
            }
        )
        return config, plan(config, CHAT, "m", RouteSelector(), {})

    def test_an_explicit_key_keeps_the_azure_steps_only(self) -> None:
        config, steps = self._steps()
        tenant = Tenant("t", 1, TenantQuotas(), "hybrid", "k")
        request = self._request({"x-anygate-provider-key": "azure-client-key-1"})
        key, usable = client_provider_key(request, tenant, steps, config)
        assert key is not None
        assert [s.provider for s in usable] == ["azure"]
        native = self._request(
            {"x-anygate-api-key": "gw", "authorization": "Bearer sk-openai-client-key"}
        )
        key, usable = client_provider_key(native, tenant, steps, config)
        assert [s.provider for s in usable] == ["openai"], "an OpenAI key never goes to Azure"


def test_azures_retry_after_ms_is_honoured() -> None:
    error = error_for_status(429, b"{}", {"retry-after-ms": "2500", "retry-after": "1"})
    assert isinstance(error, UpstreamRateLimitedError)
    assert error.retry_after == 2.5, "the longer of the two waits"
    unreadable = error_for_status(429, b"{}", {"retry-after-ms": "soon"})
    assert isinstance(unreadable, UpstreamRateLimitedError)
    assert unreadable.retry_after is None
