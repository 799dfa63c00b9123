"""Keys, scopes, revocation and secrets at rest, without a network (issue 6).

The tenant store runs on fakeredis here (pure logic: records, the cache's rules); the
end-to-end tests run the same paths on a real Redis across processes.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.requests import Request

from anygate.api import auth as auth_module
from anygate.api.auth import Authenticator
from anygate.broker import Broker, KeySpace
from anygate.broker.client_keys import ClientKeyBox, ClientKeyError
from anygate.broker.errors import AuthenticationError, PermissionDeniedError
from anygate.broker.tenant_store import TenantStore
from anygate.broker.tenants import KEY_PREFIX, key_digest, mint_key, new_key_record
from anygate.config import AnygateConfig, TenantSettings, parse_config
from anygate.core import redaction
from anygate.core.redaction import MASK, redact_event, scrub

SERVER_KEY = b"s" * 32


async def _turns(n: int = 5) -> None:
    """Let the tasks just started (and the lookups they start) run up to their first wait."""
    for _ in range(n):
        await asyncio.sleep(0)


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "headers": raw, "query_string": b"", "method": "GET"})


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Authenticator, TenantStore, AnygateConfig]]:
    redis = fakeredis.aioredis.FakeRedis(decode_responses=True)
    config = parse_config({"redis": {"namespace": "unit"}})
    store = TenantStore(redis, KeySpace("unit"))
    yield Authenticator(config, store, Broker(redis, config)), store, config
    await redis.aclose()


def test_minted_keys_are_recognisable_long_and_stored_only_as_a_hash() -> None:
    key = mint_key()
    assert key.startswith(KEY_PREFIX)
    assert len(base64.urlsafe_b64decode(key.removeprefix(KEY_PREFIX) + "=")) == 32
    record, shown = new_key_record("acme")
    assert record.digest == key_digest(shown)
    assert shown not in record.model_dump_json()
    assert "digest" not in record.to_api()
    assert len(record.hint.replace("…", "")) <= 11


async def test_a_key_works_until_revoked_and_the_announcement_empties_the_cache(
    setup: tuple[Authenticator, TenantStore, AnygateConfig],
) -> None:
    auth, store, _config = setup
    await store.create_tenant("acme", TenantSettings(weight=3))
    record, key = await store.create_key("acme", scopes=("jobs",))
    tenant = await auth.tenant(_request({"authorization": f"Bearer {key}"}), "jobs")
    assert (tenant.id, tenant.weight, tenant.key_id) == ("acme", 3, record.id)
    with pytest.raises(PermissionDeniedError, match="'inference' scope"):
        await auth.tenant(_request({"authorization": f"Bearer {key}"}), "inference")
    await store.revoke_key(record.id)
    auth.forget("key " + record.id)  # what the auth channel delivers
    with pytest.raises(AuthenticationError):
        await auth.tenant(_request({"authorization": f"Bearer {key}"}), "jobs")


async def test_a_replica_that_missed_the_announcement_is_stale_for_at_most_the_ttl(
    setup: tuple[Authenticator, TenantStore, AnygateConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth, store, _config = setup
    await store.create_tenant("acme", TenantSettings())
    record, key = await store.create_key("acme")
    clock = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: clock[0])
    request = _request({"authorization": f"Bearer {key}"})
    await auth.tenant(request, "jobs")
    await store.revoke_key(record.id)  # no forget(): the message was lost
    clock[0] += auth_module.CACHE_TTL_S / 2
    await auth.tenant(request, "jobs")  # still cached, within the bound
    clock[0] += auth_module.CACHE_TTL_S
    with pytest.raises(AuthenticationError):
        await auth.tenant(request, "jobs")


async def test_requests_arriving_together_share_one_lookup_and_a_revocation_starts_anew(
    setup: tuple[Authenticator, TenantStore, AnygateConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lapsed entry under load: one lookup serves every request then arriving. One that
    started before a revocation's announcement serves nobody after it, and is not cached."""
    auth, store, _config = setup
    await store.create_tenant("acme", TenantSettings())
    record, key = await store.create_key("acme")
    reads = 0
    release = asyncio.Event()
    find_key = store.find_key

    async def slow_find_key(digest: str) -> Any:
        nonlocal reads
        reads += 1
        await release.wait()
        return await find_key(digest)

    monkeypatch.setattr(store, "find_key", slow_find_key)
    request = _request({"authorization": f"Bearer {key}"})
    together = [asyncio.create_task(auth.tenant(request, "jobs")) for _ in range(20)]
    await _turns()
    assert reads == 1
    release.set()
    assert {t.id for t in await asyncio.gather(*together)} == {"acme"}
    assert reads == 1

    auth.forget()  # an entry lapses; a lookup starts, then the key is revoked and announced
    release.clear()
    before = asyncio.create_task(auth.tenant(request, "jobs"))
    await _turns()
    await store.revoke_key(record.id)
    auth.forget("key " + record.id)
    after = asyncio.create_task(auth.tenant(request, "jobs"))
    await _turns()
    assert reads == 3, "the request after the announcement did not join the older lookup"
    release.set()
    await asyncio.gather(before, return_exceptions=True)
    with pytest.raises(AuthenticationError):
        await after
    with pytest.raises(AuthenticationError):
        await auth.tenant(request, "jobs")  # nothing stale was cached by the older lookup


async def test_a_caller_leaving_does_not_cancel_the_lookup_of_the_others(
    setup: tuple[Authenticator, TenantStore, AnygateConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    auth, store, _config = setup
    await store.create_tenant("acme", TenantSettings())
    _record, key = await store.create_key("acme")
    release = asyncio.Event()
    find_key = store.find_key

    async def slow_find_key(digest: str) -> Any:
        await release.wait()
        return await find_key(digest)

    monkeypatch.setattr(store, "find_key", slow_find_key)
    request = _request({"authorization": f"Bearer {key}"})
    leaving = asyncio.create_task(auth.tenant(request, "jobs"))
    staying = asyncio.create_task(auth.tenant(request, "jobs"))
    await _turns()
    leaving.cancel()
    release.set()
    assert (await staying).id == "acme"
    assert leaving.cancelled()


async def test_disabled_and_deleted_tenants_and_operator_keys(
    setup: tuple[Authenticator, TenantStore, AnygateConfig],
) -> None:
    auth, store, _config = setup
    await store.create_tenant("acme", TenantSettings())
    _record, key = await store.create_key("acme")
    request = _request({"authorization": f"Bearer {key}"})
    await store.update_tenant("acme", {"disabled": True})
    auth.forget()
    with pytest.raises(PermissionDeniedError, match="disabled"):
        await auth.tenant(request, "jobs")
    with pytest.raises(PermissionDeniedError, match="admin key"):
        await auth.admin(request)
    await store.delete_tenant("acme")
    auth.forget()
    with pytest.raises(AuthenticationError):
        await auth.tenant(request, "jobs")
    with pytest.raises(Exception, match="never reused"):
        await store.create_tenant("acme", TenantSettings())
    _op, op_key = await store.create_key(None, scopes=("admin",))
    op_request = _request({"authorization": f"Bearer {op_key}"})
    assert (await auth.admin(op_request)).startswith("key_")
    with pytest.raises(PermissionDeniedError, match="operator key"):
        await auth.tenant(op_request, "jobs")


async def test_config_tenants_are_seeded_once_and_admin_changes_survive_a_restart(
    setup: tuple[Authenticator, TenantStore, AnygateConfig],
) -> None:
    _auth, store, _config = setup
    config = parse_config(
        {
            "redis": {"namespace": "unit"},
            "tenants": [
                {"id": "acme", "weight": 2, "api_key_sha256": [key_digest("sk-config-key-000000")]}
            ],
        }
    )
    await store.seed(config)
    await store.update_tenant("acme", {"weight": 9})
    await store.revoke_key(f"key_cfg_{key_digest('sk-config-key-000000')[:16]}")
    await store.seed(config)  # a restart with the same file
    tenant = await store.get_tenant("acme")
    assert tenant is not None
    assert tenant.weight == 9
    found = await store.find_key(key_digest("sk-config-key-000000"))
    assert found is not None
    assert found.revoked_at is not None, "a revoked config key stays revoked"


def test_client_keys_are_sealed_to_their_job() -> None:
    box = ClientKeyBox(SERVER_KEY)
    sealed = box.seal(SecretStr("sk-client-secret-123"), "job_a")
    assert "sk-client-secret-123" not in sealed
    assert box.open(sealed, "job_a") == "sk-client-secret-123"
    with pytest.raises(ClientKeyError) as other_job:
        box.open(sealed, "job_b")
    assert "sk-client" not in str(other_job.value)
    with pytest.raises(ClientKeyError):
        ClientKeyBox(b"t" * 32).open(sealed, "job_a")
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ClientKeyError):
        box.open(tampered, "job_a")
    assert box.seal(SecretStr("x" * 10), "j") != box.seal(SecretStr("x" * 10), "j"), "fresh nonce"


def test_log_redaction_masks_keys_wherever_they_hide() -> None:
    line = (
        "Incorrect API key provided: sk-proj-abcdefghijklmnop1234, ag-"
        + "x" * 43
        + " Bearer eyJhbGciOi.x.y ?key=AIzaSyD-abcdefghijklmnopqrstuvwxyz012345&alt=sse"
    )
    cleaned = scrub(line)
    for secret in ("sk-proj-abc", "ag-xxxx", "eyJhbGciOi", "AIzaSyD"):
        assert secret not in cleaned
    event = redact_event(
        None, "info", {"event": "call", "headers": {"Authorization": "Bearer q"}, "api_key": "z"}
    )
    assert event["headers"] == {"Authorization": MASK}
    assert event["api_key"] == MASK
    assert scrub("job_123 finished in 3 ms") == "job_123 finished in 3 ms"


def test_a_providers_refusal_never_tells_the_client_about_the_gateways_key() -> None:
    from anygate.workers.adapters.http import error_for_status  # noqa: PLC0415

    body = (
        b'{"error": {"message": "Incorrect API key provided: sk-proj-********************abcd.'
        b' You can find your API key at https://platform.openai.com/account/api-keys.",'
        b' "type": "invalid_request_error", "code": "invalid_api_key"}}'
    )
    refused = error_for_status(401, body, {})
    assert "sk-" not in refused.message
    assert "abcd" not in refused.message
    assert refused.code == "invalid_api_key"
    echoed = error_for_status(400, b'{"error": {"message": "bad key sk-abcdefghijklmnop"}}', {})
    assert "sk-abcdefghijklmnop" not in echoed.message


def test_the_cli_prints_a_usable_encryption_key() -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from anygate.broker.client_keys import parse_encryption_key  # noqa: PLC0415
    from anygate.ops.cli import main  # noqa: PLC0415

    result = CliRunner().invoke(main, ["keys", "new-encryption-key"])
    assert result.exit_code == 0
    assert len(parse_encryption_key(result.output.strip())) == 32


@given(
    st.lists(
        st.sampled_from(
            [
                *("ag-", "sk-", "AIza", "aiZA", "Bearer ", "BEARER\t", "key=", "?", "&"),
                *("x" * 12, "abcdefghij0123456789", "_", "-", "İ", " ", '"', "ß"),
            ]
        ),
        max_size=12,
    ).map("".join)
)
def test_the_quick_check_before_scrubbing_never_skips_a_match(text: str) -> None:
    """``scrub`` runs its regex only on text holding one of the literals every alternative
    needs: the same answer as always running it."""
    assert scrub(text) == redaction._PATTERNS.sub(MASK, text)
