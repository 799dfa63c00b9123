"""HTTPS for ``anygate api`` (docs/tls.md): ``server.tls``, with the command's ``--tls-*`` flags
laid over it, checked at start and turned into uvicorn's own ssl options.

uvicorn builds the server's ``SSLContext`` itself from those options; a certificate it cannot
load would surface there as a bare ``ssl.SSLError`` traceback ("PEM lib"), and an encrypted key
without a password would make OpenSSL prompt for one on the terminal. So before uvicorn is
called, the same context is built here once, with a password callback that never prompts, and
each failure becomes a ``ConfigError`` naming the field at fault. The protocol floor is
Python's: a server context refuses anything older than TLS 1.2 (Python 3.10 and later).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Literal, TypedDict

from pydantic import ValidationError

from anygate.config import ConfigError, SecretResolutionError, TlsConfig, format_loc

FIELD = "server.tls"
SOURCE = "TLS settings"

CERT_REQS: dict[Literal["none", "optional", "required"], ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class UvicornSsl(TypedDict, total=False):
    """The keyword arguments of ``uvicorn.run`` that make it serve HTTPS (empty: plain HTTP)."""

    ssl_certfile: str
    ssl_keyfile: str
    ssl_keyfile_password: str | None
    ssl_ca_certs: str | None
    ssl_cert_reqs: int


def _error(field: str, message: str) -> ConfigError:
    return ConfigError([(f"{FIELD}.{field}", message)], SOURCE)


def with_flags(tls: TlsConfig | None, flags: Mapping[str, object | None]) -> TlsConfig | None:
    """``tls`` with every flag that was given (keyed by the ``TlsConfig`` field it sets)
    replacing the configured value, validated again as a whole: ``--tls-cert`` alone, on a
    config without ``server.tls``, is an error naming ``server.tls.key_file``."""
    given = {name: value for name, value in flags.items() if value is not None}
    if not given:
        return tls
    base = tls.model_dump() if tls is not None else {}
    try:
        return TlsConfig.model_validate({**base, **given})
    except ValidationError as exc:
        problems = [
            (
                format_loc(("server", "tls", *err["loc"])),
                str(err["msg"]).removeprefix("Value error, "),
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(problems, SOURCE) from None


def _password(tls: TlsConfig) -> str | None:
    if tls.key_password is None:
        return None
    try:
        return tls.key_password.resolve().get_secret_value()
    except SecretResolutionError as exc:
        raise _error("key_password", str(exc)) from None


def _load_chain(context: ssl.SSLContext, tls: TlsConfig, password: str | None) -> None:
    """Load the certificate and key as uvicorn will, but without ever prompting for a password,
    and say which field is wrong when it fails."""
    asked = False

    def give_password() -> str:
        nonlocal asked
        asked = True
        return password or ""

    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, give_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise _error(
                "key_file", f"{tls.key_file} is not the private key of {FIELD}.cert_file"
            ) from None
        if asked and not password:
            raise _error(
                "key_file", f"{tls.key_file} is encrypted: set {FIELD}.key_password"
            ) from None
        if asked:
            raise _error("key_password", f"does not decrypt {FIELD}.key_file") from None
        raise _error("key_file", f"no PEM private key in {tls.key_file}") from None


def _load_certificates(context: ssl.SSLContext, field: str, path: str) -> None:
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError:
        raise _error(field, f"no PEM certificate in {path}") from None


def server_ssl_options(tls: TlsConfig | None) -> UvicornSsl:
    """Check ``tls`` the way the server will use it and return uvicorn's options for it.
    Raises ``ConfigError`` naming the field (never a password) when a file is missing,
    unreadable, not what it should be, or the key does not match the certificate."""
    if tls is None:
        return {}
    problems = [(f"{FIELD}.{field}", message) for field, message in tls.file_problems()]
    if problems:
        raise ConfigError(problems, SOURCE)
    password = _password(tls)
    mode = tls.client_cert_mode
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _load_certificates(probe, "cert_file", tls.cert_file)
    _load_chain(probe, tls, password)
    ca_file = tls.client_ca_file if mode != "none" else None
    if ca_file is not None:
        _load_certificates(probe, "client_ca_file", ca_file)
    return {
        "ssl_certfile": tls.cert_file,
        "ssl_keyfile": tls.key_file,
        "ssl_keyfile_password": password,
        "ssl_ca_certs": ca_file,
        "ssl_cert_reqs": CERT_REQS[mode],
    }
