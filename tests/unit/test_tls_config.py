"""``server.tls`` (docs/tls.md): what the config model refuses, what ``anygate api`` checks at
start (``anygate.ops.tls``), and the uvicorn options it hands on; every error names the field.
Certificates are made here by a throw-away CA (trustme)."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from anygate.config import ConfigError, SecretRef, TlsConfig, load_config, parse_config
from anygate.ops.tls import CertificateReloader, server_ssl_options, with_flags

PASSWORD_ENV = "ANYGATE_TEST_UNIT_TLS_PASSWORD"


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths of: ca, cert, key, a key encrypted with "s3cret", another cert's key, garbage."""
    folder = tmp_path_factory.mktemp("pems")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "cert", "key", "enc", "other")}
    ca.cert_pem.write_to_path(paths["ca"])
    leaf.cert_chain_pems[0].write_to_path(paths["cert"])
    leaf.private_key_pem.write_to_path(paths["key"])
    ca.issue_cert("other.example").private_key_pem.write_to_path(paths["other"])
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    Path(paths["enc"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    paths["garbage"] = str(folder / "garbage.pem")
    Path(paths["garbage"]).write_text("not a certificate\n", encoding="utf-8")
    paths["folder"] = str(folder)
    return paths


def problems_of(tls: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"tls": tls}})
    return caught.value.problems


def start_problems(tls: TlsConfig) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        server_ssl_options(tls)
    return caught.value.problems


# --- the model ------------------------------------------------------------------------------


def test_no_tls_section_means_plain_http() -> None:
    config = parse_config({})
    assert config.server.tls is None
    assert server_ssl_options(config.server.tls) == {}


def test_a_certificate_without_its_key_names_key_file() -> None:
    assert problems_of({"cert_file": "/etc/tls/cert.pem"}) == [
        ("server.tls.key_file", "Field required")
    ]


def test_a_key_without_its_certificate_names_cert_file() -> None:
    assert problems_of({"key_file": "/etc/tls/key.pem"}) == [
        ("server.tls.cert_file", "Field required")
    ]


def test_an_empty_path_names_its_field() -> None:
    [(field, _message)] = problems_of({"cert_file": "", "key_file": "/k.pem"})
    assert field == "server.tls.cert_file"


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_asking_for_client_certificates_needs_a_client_ca(mode: str) -> None:
    [(field, message)] = problems_of({"cert_file": "/c", "key_file": "/k", "client_cert": mode})
    assert field == "server.tls"
    assert f"client_ca_file is required with client_cert: {mode}" in message


def test_an_unknown_client_cert_mode_names_the_field() -> None:
    [(field, _message)] = problems_of({"cert_file": "/c", "key_file": "/k", "client_cert": "yes"})
    assert field == "server.tls.client_cert"


def test_a_literal_key_password_is_refused() -> None:
    [(field, message)] = problems_of({"cert_file": "/c", "key_file": "/k", "key_password": "pw"})
    assert field == "server.tls.key_password"
    assert "secret reference" in message


def test_client_certificates_are_required_once_a_client_ca_is_given() -> None:
    tls = TlsConfig(cert_file="/c", key_file="/k", client_ca_file="/ca")
    assert tls.client_cert_mode == "required"
    assert TlsConfig(cert_file="/c", key_file="/k").client_cert_mode == "none"
    optional = TlsConfig(
        cert_file="/c", key_file="/k", client_ca_file="/ca", client_cert="optional"
    )
    assert optional.client_cert_mode == "optional"


def test_environment_overrides_reach_the_tls_section() -> None:
    config = load_config(
        path="",
        environ={
            "ANYGATE__SERVER__TLS__CERT_FILE": "/etc/tls/cert.pem",
            "ANYGATE__SERVER__TLS__KEY_FILE": "/etc/tls/key.pem",
        },
    )
    assert config.server.tls == TlsConfig(
        cert_file="/etc/tls/cert.pem", key_file="/etc/tls/key.pem"
    )


# --- the files, checked when the API starts -------------------------------------------------


def test_nonexistent_files_are_each_named(pems: dict[str, str]) -> None:
    tls = TlsConfig(
        cert_file="/nonexistent/cert.pem", key_file="/nonexistent/key.pem", client_ca_file="/no"
    )
    assert start_problems(tls) == [
        ("server.tls.cert_file", "no such file: /nonexistent/cert.pem"),
        ("server.tls.key_file", "no such file: /nonexistent/key.pem"),
        ("server.tls.client_ca_file", "no such file: /no"),
    ]


def test_a_folder_is_not_a_certificate(pems: dict[str, str]) -> None:
    tls = TlsConfig(cert_file=pems["folder"], key_file=pems["key"])
    assert start_problems(tls) == [
        ("server.tls.cert_file", f"not a regular file: {pems['folder']}")
    ]


def test_a_client_ca_is_not_read_when_client_certificates_are_off(pems: dict[str, str]) -> None:
    tls = TlsConfig(
        cert_file=pems["cert"], key_file=pems["key"], client_ca_file="/no", client_cert="none"
    )
    assert server_ssl_options(tls)["ssl_ca_certs"] is None


@pytest.mark.parametrize(
    ("files", "field", "message"),
    [
        ({"cert_file": "garbage"}, "cert_file", "no PEM certificate in {garbage}"),
        ({"cert_file": "key"}, "cert_file", "no PEM certificate in {key}"),
        ({"key_file": "garbage"}, "key_file", "no PEM private key in {garbage}"),
        (
            {"key_file": "other"},
            "key_file",
            "{other} is not the private key of server.tls.cert_file",
        ),
        ({"key_file": "enc"}, "key_file", "{enc} is encrypted: set server.tls.key_password"),
        ({"client_ca_file": "garbage"}, "client_ca_file", "no PEM certificate in {garbage}"),
    ],
)
def test_what_the_files_hold_is_checked(
    pems: dict[str, str], files: dict[str, str], field: str, message: str
) -> None:
    chosen = {"cert_file": pems["cert"], "key_file": pems["key"]}
    chosen.update({name: pems[pem] for name, pem in files.items()})
    assert start_problems(TlsConfig.model_validate(chosen)) == [
        (f"server.tls.{field}", message.format(**pems))
    ]


def test_a_wrong_key_password_is_named_and_never_shown(
    pems: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-password-value")
    tls = TlsConfig(
        cert_file=pems["cert"],
        key_file=pems["enc"],
        key_password=SecretRef.parse(f"env:{PASSWORD_ENV}"),
    )
    with pytest.raises(ConfigError) as caught:
        server_ssl_options(tls)
    assert caught.value.problems == [
        ("server.tls.key_password", "does not decrypt server.tls.key_file")
    ]
    assert "wrong-password-value" not in str(caught.value)


def test_an_unset_key_password_reference_is_named(
    pems: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    tls = TlsConfig(
        cert_file=pems["cert"],
        key_file=pems["enc"],
        key_password=SecretRef.parse(f"env:{PASSWORD_ENV}"),
    )
    assert start_problems(tls) == [
        ("server.tls.key_password", f"environment variable {PASSWORD_ENV} is not set")
    ]


# --- what uvicorn is given --------------------------------------------------------------------


def test_the_uvicorn_options_of_mutual_tls(
    pems: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    tls = TlsConfig(
        cert_file=pems["cert"],
        key_file=pems["enc"],
        key_password=SecretRef.parse(f"env:{PASSWORD_ENV}"),
        client_ca_file=pems["ca"],
    )
    assert server_ssl_options(tls) == {
        "ssl_certfile": pems["cert"],
        "ssl_keyfile": pems["enc"],
        "ssl_keyfile_password": "s3cret",
        "ssl_ca_certs": pems["ca"],
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
    }


@pytest.mark.parametrize(
    ("mode", "reqs"), [("optional", ssl.CERT_OPTIONAL), ("none", ssl.CERT_NONE)]
)
def test_the_client_cert_mode_becomes_uvicorns_cert_reqs(
    pems: dict[str, str], mode: str, reqs: ssl.VerifyMode
) -> None:
    tls = TlsConfig.model_validate(
        {
            "cert_file": pems["cert"],
            "key_file": pems["key"],
            "client_ca_file": pems["ca"],
            "client_cert": mode,
        }
    )
    assert server_ssl_options(tls)["ssl_cert_reqs"] == reqs


def test_the_server_context_refuses_anything_older_than_tls_1_2() -> None:
    """uvicorn builds its context as ``ssl.SSLContext(PROTOCOL_TLS_SERVER)``: the floor is
    Python's own, which docs/tls.md promises."""
    assert ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).minimum_version >= ssl.TLSVersion.TLSv1_2


# --- the command's flags --------------------------------------------------------------------


def test_flags_that_were_not_given_change_nothing() -> None:
    configured = TlsConfig(cert_file="/c", key_file="/k")
    assert with_flags(configured, {"cert_file": None, "client_cert": None}) is configured
    assert with_flags(None, {"cert_file": None}) is None


def test_flags_replace_configured_values() -> None:
    configured = TlsConfig(cert_file="/c", key_file="/k", key_password=SecretRef.parse("env:PW"))
    merged = with_flags(configured, {"key_file": "/other", "client_ca_file": "/ca"})
    assert merged == TlsConfig(
        cert_file="/c",
        key_file="/other",
        key_password=SecretRef.parse("env:PW"),
        client_ca_file="/ca",
    )


def test_a_certificate_flag_alone_names_the_missing_key() -> None:
    with pytest.raises(ConfigError) as caught:
        with_flags(None, {"cert_file": "/c", "key_file": None})
    assert caught.value.problems == [("server.tls.key_file", "Field required")]


def test_a_client_cert_flag_without_a_ca_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        with_flags(TlsConfig(cert_file="/c", key_file="/k"), {"client_cert": "required"})
    [(field, message)] = caught.value.problems
    assert field == "server.tls"
    assert "client_ca_file is required" in message


# --- renewed files ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def copied_pair(pems: dict[str, str], folder: Path) -> TlsConfig:
    for name in ("cert", "key"):
        shutil.copy(pems[name], folder / f"{name}.pem")
    return TlsConfig(
        cert_file=str(folder / "cert.pem"), key_file=str(folder / "key.pem"), reload_check_s=5
    )


def started(reloader: CertificateReloader, tls: TlsConfig) -> tuple[ssl.SSLContext, list[int]]:
    """The reloader as uvicorn calls it, with a factory that counts the contexts it builds."""
    built: list[int] = []

    def build() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        built.append(len(built))
        return context

    return reloader(MagicMock(), build), built


def hello(reloader: CertificateReloader, first: ssl.SSLContext) -> ssl.SSLContext:
    """What a new connection ends up with after the server-name callback ran."""
    connection = MagicMock()
    connection.context = first
    assert first.sni_callback is not None
    first.sni_callback(connection, None, first)
    context: ssl.SSLContext = connection.context
    return context


def renew(tls: TlsConfig, *, with_key: bool = True) -> None:
    """A new certificate (and, unless told otherwise, its key) written over the old."""
    other = trustme.CA().issue_cert("127.0.0.1")
    if with_key:
        other.private_key_pem.write_to_path(tls.key_file)
    other.cert_chain_pems[0].write_to_path(tls.cert_file)


def test_unchanged_files_keep_the_first_context(pems: dict[str, str], tmp_path: Path) -> None:
    tls = copied_pair(pems, tmp_path)
    reloader = CertificateReloader(tls, clock=FakeClock())
    first, built = started(reloader, tls)
    assert hello(reloader, first) is first
    assert built == [0]


def test_a_renewed_pair_reaches_new_connections_after_the_check_interval(
    pems: dict[str, str], tmp_path: Path
) -> None:
    tls = copied_pair(pems, tmp_path)
    clock = FakeClock()
    reloader = CertificateReloader(tls, clock=clock)
    first, built = started(reloader, tls)
    assert hello(reloader, first) is first  # looked at the files now: unchanged
    renew(tls)
    clock.now += 4.9
    assert hello(reloader, first) is first  # not looked at again within reload_check_s
    clock.now += 0.2
    fresh = hello(reloader, first)
    assert fresh is not first
    assert fresh is reloader.current
    assert len(built) == 2
    assert hello(reloader, first) is fresh


def test_a_renewal_that_does_not_load_keeps_the_previous_pair(
    pems: dict[str, str], tmp_path: Path
) -> None:
    tls = copied_pair(pems, tmp_path)
    reloader = CertificateReloader(tls, clock=FakeClock())
    first, built = started(reloader, tls)
    renew(tls, with_key=False)  # the certificate changed, its key not yet
    assert not reloader.check()
    assert reloader.current is first
    assert built == [0]
    renew(tls)  # now both
    assert reloader.check()
    assert reloader.current is not first


def test_a_zero_check_interval_never_looks_again(pems: dict[str, str], tmp_path: Path) -> None:
    tls = copied_pair(pems, tmp_path).model_copy(update={"reload_check_s": 0.0})
    first, _built = started(CertificateReloader(tls), tls)
    assert first.sni_callback is None
