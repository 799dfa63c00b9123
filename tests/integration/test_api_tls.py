"""``anygate api`` serving HTTPS, and mutual TLS (docs/tls.md): real API processes with
certificates made at test time by a throw-away CA (trustme), a real worker and the mock
provider behind them, called with the official ``openai`` SDK, the job client and raw sockets.

One gateway (Redis namespace, worker) carries three API processes: ``https`` takes its TLS
settings from the config file (an encrypted key whose password is an ``env:`` reference),
``mtls`` adds ``--tls-client-ca`` on the command line (client certificates then required), and
``optional`` sets everything by flags with ``--tls-client-cert optional``; the renewal test
starts a fourth on certificate files of its own.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from openai import APIConnectionError, OpenAI

from anygate.client import AsyncClient
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import wait_until
from tests.support.configs import TENANT_KEYS, config_tree
from tests.support.processes import ManagedProcess, free_port
from tests.support.stack import ANYGATE, Stack

UNUSED_REDIS_URL = "redis://127.0.0.1:1/0"
"""Never reached: a bad TLS setting stops the API before it looks for Redis."""
PASSWORD_ENV = "ANYGATE_TEST_TLS_KEY_PASSWORD"
PASSWORD = "correct horse battery staple"
MESSAGES = [{"role": "user", "content": "Say hello over TLS"}]


@dataclass(frozen=True)
class Certs:
    """PEM files on disk, and the CA that signed them (to build client contexts)."""

    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path
    encrypted_key_file: Path
    other_key_file: Path
    client: trustme.LeafCert
    foreign_client: trustme.LeafCert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    server.private_key_pem.write_to_path(str(folder / "key.pem"))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    (folder / "key.enc.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    ca.issue_cert("other.example").private_key_pem.write_to_path(str(folder / "other.pem"))
    return Certs(
        ca=ca,
        ca_file=folder / "ca.pem",
        cert_file=folder / "cert.pem",
        key_file=folder / "key.pem",
        encrypted_key_file=folder / "key.enc.pem",
        other_key_file=folder / "other.pem",
        client=ca.issue_cert("client@example.com"),
        foreign_client=trustme.CA().issue_cert("intruder@example.com"),
    )


def client_context(certs: Certs, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client that trusts the test CA, presenting ``cert`` when given."""
    context = ssl.create_default_context()
    certs.ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


@dataclass(frozen=True)
class Gateway:
    stack: Stack
    https: str
    mtls: str
    optional: str


def start_tls_api(stack: Stack, flags: list[str], probe_context: ssl.SSLContext) -> str:
    """``anygate api`` with ``flags`` on a free port, up once ``/readyz`` answers over HTTPS."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc = ManagedProcess.start([*ANYGATE, "api", "--port", str(port), *flags], env=stack.env)
    stack.started.append(proc)
    stack.apis.append((proc, url))

    def ready() -> str | None:
        try:
            status = httpx.get(f"{url}/readyz", verify=probe_context, timeout=1.0).status_code
        except httpx.HTTPError as exc:
            return repr(exc)
        return None if status == 200 else f"status {status}"

    wait_until(ready, what=f"{url}/readyz", watch=[proc.child], timeout=20)
    return url


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: EmbeddedRedis,
    mock_server: str,
    certs: Certs,
) -> Iterator[Gateway]:
    tree = config_tree(
        redis_server.url,
        f"tls{os.getpid()}",
        mock_root=mock_server,
        server={
            "tls": {
                "cert_file": str(certs.cert_file),
                "key_file": str(certs.encrypted_key_file),
                "key_password": f"env:{PASSWORD_ENV}",
                "reload_check_s": 0.2,
            }
        },
    )
    stack = Stack(tmp_path_factory.mktemp("tls-stack"), tree, {PASSWORD_ENV: PASSWORD})
    trusting = client_context(certs)
    with_cert = client_context(certs, certs.client)
    try:
        stack.start_worker(pool="openai")
        gateway = Gateway(
            stack=stack,
            https=start_tls_api(stack, [], trusting),
            mtls=start_tls_api(stack, ["--tls-client-ca", str(certs.ca_file)], with_cert),
            optional=start_tls_api(
                stack,
                [
                    "--tls-cert",
                    str(certs.cert_file),
                    "--tls-key",
                    str(certs.key_file),
                    "--tls-client-ca",
                    str(certs.ca_file),
                    "--tls-client-cert",
                    "optional",
                ],
                trusting,
            ),
        )
        yield gateway
    except BaseException:
        stack.stop()
        raise
    stack.stop()
    stack.check_logs()


def sdk(url: str, context: ssl.SSLContext) -> OpenAI:
    return OpenAI(
        base_url=f"{url}/v1",
        api_key=TENANT_KEYS["acme"],
        max_retries=0,
        timeout=30,
        http_client=httpx.Client(verify=context),
    )


def test_the_openai_sdk_chats_over_https(gateway: Gateway, certs: Certs) -> None:
    with sdk(gateway.https, client_context(certs)) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    completion = raw.parse()
    assert raw.headers["x-anygate-job-id"].startswith("job_")
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"


def test_healthz_answers_over_https(gateway: Gateway, certs: Certs) -> None:
    """What a liveness probe with ``scheme: HTTPS`` asks."""
    with httpx.Client(verify=client_context(certs)) as http:
        response = http.get(f"{gateway.https}/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_the_certificate_names_localhost_too(gateway: Gateway, certs: Certs) -> None:
    url = gateway.https.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{url}/healthz", verify=client_context(certs)).status_code == 200


def test_plain_http_to_the_tls_port_gets_no_answer(gateway: Gateway) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(gateway.https.replace("https://", "http://") + "/healthz", timeout=5)


def test_a_client_that_does_not_trust_the_ca_is_refused(gateway: Gateway) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{gateway.https}/healthz", verify=ssl.create_default_context(), timeout=5)


def handshake(url: str, context: ssl.SSLContext) -> str:
    """A bare TLS handshake with the server at ``url``; returns the protocol it agreed on."""
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        return str(tls.version())


def legacy_client(certs: Certs) -> ssl.SSLContext:
    """A client that offers nothing newer than TLS 1.1 (and the old ciphers that needs)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    certs.ca.configure_trust(context)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_older_than_1_2_is_refused(gateway: Gateway, certs: Certs) -> None:
    """The refusal is the gateway's: the same client does complete a TLS 1.1 handshake with a
    server that allows it (else this OpenSSL cannot speak TLS 1.1 at all, and nothing is
    shown)."""
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.load_cert_chain(certs.cert_file, certs.key_file)
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.minimum_version = ssl.TLSVersion.TLSv1
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def serve_one() -> None:
            conn, _ = listener.accept()
            try:
                with permissive.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                conn.close()

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        try:
            legacy = handshake(
                f"https://127.0.0.1:{listener.getsockname()[1]}", legacy_client(certs)
            )
        except ssl.SSLError as exc:
            pytest.skip(f"this OpenSSL cannot negotiate TLS 1.1 at all: {exc}")
        finally:
            server.join(timeout=5)
    assert legacy == "TLSv1.1"
    with pytest.raises(ssl.SSLError):
        handshake(gateway.https, legacy_client(certs))
    assert handshake(gateway.https, client_context(certs)) == "TLSv1.3"


def test_without_a_client_certificate_mutual_tls_refuses_the_handshake(
    gateway: Gateway, certs: Certs
) -> None:
    # TLS 1.2: the server's refusal ends the handshake itself
    tls12 = client_context(certs)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(gateway.mtls, tls12)
    assert handshake(gateway.mtls, client_context(certs, certs.client)) == "TLSv1.3"
    # TLS 1.3: the client's half completes first; the server drops it before any answer
    for refused in (client_context(certs), client_context(certs, certs.foreign_client)):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{gateway.mtls}/healthz", verify=refused, timeout=5)
    with sdk(gateway.mtls, client_context(certs)) as client, pytest.raises(APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_with_a_client_certificate_mutual_tls_serves(gateway: Gateway, certs: Certs) -> None:
    with sdk(gateway.mtls, client_context(certs, certs.client)) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content


async def test_the_job_client_works_over_mutual_tls(gateway: Gateway, certs: Certs) -> None:
    context = client_context(certs, certs.client)
    async with AsyncClient(gateway.mtls, TENANT_KEYS["acme"], verify=context) as ag:
        job = await ag.submit(
            "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES}
        )
        done = await ag.wait(job.id, timeout=20, poll_s=5)
    assert done.status == "succeeded"
    assert done.text


def test_an_optional_client_certificate_is_checked_only_when_sent(
    gateway: Gateway, certs: Certs
) -> None:
    for accepted in (client_context(certs), client_context(certs, certs.client)):
        response = httpx.get(f"{gateway.optional}/healthz", verify=accepted, timeout=5)
        assert response.status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(
            f"{gateway.optional}/healthz",
            verify=client_context(certs, certs.foreign_client),
            timeout=5,
        )


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        (["--tls-cert", "{cert}"], {}, "server.tls.key_file: Field required"),
        (
            ["--tls-cert", "{cert}", "--tls-key", "{other_key}"],
            {},
            "server.tls.key_file: {other_key} is not the private key of server.tls.cert_file",
        ),
        (
            ["--tls-cert", "{cert}", "--tls-key", "{encrypted_key}"],
            {},
            "server.tls.key_file: {encrypted_key} is encrypted: set server.tls.key_password",
        ),
        (
            [
                "--tls-cert",
                "{cert}",
                "--tls-key",
                "{encrypted_key}",
                "--tls-key-password",
                f"env:{PASSWORD_ENV}",
            ],
            {PASSWORD_ENV: "hunter2-wrong"},
            "server.tls.key_password: does not decrypt server.tls.key_file",
        ),
    ],
    ids=["key-missing", "key-mismatch", "password-missing", "password-wrong"],
)
def test_bad_tls_settings_stop_the_api_at_start_naming_the_field(
    tmp_path: Path, certs: Certs, flags: list[str], env: dict[str, str], named: str
) -> None:
    paths = {
        "cert": str(certs.cert_file),
        "other_key": str(certs.other_key_file),
        "encrypted_key": str(certs.encrypted_key_file),
    }
    config = tmp_path / "anygate.yaml"
    config.write_text(f"redis: {{url: '{UNUSED_REDIS_URL}'}}\n", encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANYGATE")}
    port = str(free_port())
    done = subprocess.run(
        [*ANYGATE, "api", "--port", port, *(flag.format(**paths) for flag in flags)],
        env={**clean, "ANYGATE_CONFIG": str(config), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert named.format(**paths) in done.stderr
    assert "Traceback" not in done.stderr
    for value in env.values():
        assert value not in done.stderr + done.stdout


def served_serial(url: str, context: ssl.SSLContext) -> int:
    """The serial number of the certificate the server at ``url`` presents now."""
    host, port = url.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


def install(leaf: trustme.LeafCert, cert_file: Path, key_file: Path) -> None:
    """Write a renewed pair as a renewal tool does: each file replaced whole, key first."""
    for path, pem in ((key_file, leaf.private_key_pem), (cert_file, leaf.cert_chain_pems[0])):
        staging = path.with_suffix(".new")
        pem.write_to_path(str(staging))
        staging.replace(path)


def answers(url: str, context: ssl.SSLContext) -> bool:
    """Whether a client with ``context`` gets ``/healthz`` answered (TLS 1.3 refuses a client
    certificate after the client's half of the handshake, so only a request tells)."""
    try:
        return httpx.get(f"{url}/healthz", verify=context, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_renewed_certificates_and_client_cas_are_served_without_a_restart(
    gateway: Gateway, certs: Certs, tmp_path: Path
) -> None:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    client_ca_file = tmp_path / "clients-ca.pem"
    first = certs.ca.issue_cert("127.0.0.1")
    install(first, cert_file, key_file)
    certs.ca.cert_pem.write_to_path(str(client_ca_file))
    old_client = client_context(certs, certs.client)
    url = start_tls_api(
        gateway.stack,
        [
            *("--tls-cert", str(cert_file), "--tls-key", str(key_file)),
            *("--tls-client-ca", str(client_ca_file)),
        ],
        old_client,
    )
    assert served_serial(url, old_client) == serial_of(first)

    renewed = certs.ca.issue_cert("127.0.0.1")
    install(renewed, cert_file, key_file)
    wait_until(
        lambda: None if served_serial(url, old_client) == serial_of(renewed) else "the old one",
        what="the renewed certificate",
        timeout=10,
    )

    # the clients' CA replaced: certificates of the new one get in, those of the old no more
    clients_ca = trustme.CA()
    staging = client_ca_file.with_suffix(".new")
    clients_ca.cert_pem.write_to_path(str(staging))
    staging.replace(client_ca_file)
    new_client = client_context(certs, clients_ca.issue_cert("new-client@example.com"))
    wait_until(
        lambda: None if answers(url, new_client) else "refused",
        what="a client of the new CA answered",
        timeout=10,
    )
    assert not answers(url, old_client)

    # a renewal that does not load (here: no certificate at all) leaves the last good one
    cert_file.write_text("not a certificate\n", encoding="utf-8")
    time.sleep(0.5)  # more than reload_check_s: the next handshake looks at the files
    assert served_serial(url, new_client) == serial_of(renewed)
    assert answers(url, new_client)
    api = gateway.stack.apis[-1][0]
    assert "tls files changed but do not load" in api.log_tail(), api.log_tail()
