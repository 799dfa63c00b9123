"""HTTPS for ``anygate api`` (docs/tls.md): ``server.tls``, with the command's ``--tls-*`` flags
laid over it, checked at start and turned into uvicorn's own ssl options.

uvicorn builds the server's ``SSLContext`` itself from those options; a certificate it cannot
load would surface there as a bare ``ssl.SSLError`` traceback ("PEM lib"), and an encrypted key
without a password would make OpenSSL prompt for one on the terminal. So before uvicorn is
called, the same context is built here once, with a password callback that never prompts, and
each failure becomes a ``ConfigError`` naming the field at fault. The protocol floor is
Python's: a server context refuses anything older than TLS 1.2 (Python 3.10 and later).

A renewed certificate is picked up without a restart (``CertificateReloader``): uvicorn hands
its context to our factory, whose server-name callback, run at the start of each handshake,
looks at the files at most every ``reload_check_s`` and, when they changed and still check
out, moves that connection and every later one to a context built afresh by uvicorn's own
factory. Open connections keep the context they began with; nothing is mutated under them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal, TypedDict

import structlog
from pydantic import ValidationError

from anygate.config import ConfigError, SecretResolutionError, TlsConfig, format_loc
from anygate.config.secrets import FileStamp, file_stamp

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger(__name__)

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


def files_stamp(tls: TlsConfig) -> tuple[FileStamp, ...]:
    """What says that one of the files the server loads has changed."""
    paths = [tls.cert_file, tls.key_file]
    if tls.client_ca_file is not None and tls.client_cert_mode != "none":
        paths.append(tls.client_ca_file)
    return tuple(file_stamp(path) for path in paths)


class CertificateReloader:
    """uvicorn's ``ssl_context_factory`` for ``anygate api``: builds the context the usual way
    and, unless ``reload_check_s`` is 0, serves renewed files to new connections (see the
    module's docstring). A renewal that does not check out (a certificate written before its
    key, a wrong password) is logged as a warning and the previous files go on being served
    until the next change."""

    def __init__(self, tls: TlsConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._tls = tls
        self._clock = clock
        self._stamp = files_stamp(tls)
        self._next_check = 0.0
        self._config: uvicorn.Config | None = None
        self._build: Callable[[], ssl.SSLContext] | None = None
        self._current: ssl.SSLContext | None = None

    def __call__(
        self, config: uvicorn.Config, build: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        self._config, self._build = config, build
        context = build()
        self._current = context
        if self._tls.reload_check_s > 0:
            context.sni_callback = self._on_client_hello
        return context

    @property
    def current(self) -> ssl.SSLContext | None:
        """The context new connections get."""
        return self._current

    def _on_client_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _server_name: str | None, _ctx: object
    ) -> None:
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._tls.reload_check_s
            self.check()
        if self._current is not None and connection.context is not self._current:
            connection.context = self._current

    def check(self) -> bool:
        """Load the files again if they changed and check out; True when they were."""
        stamp = files_stamp(self._tls)
        if stamp == self._stamp or self._config is None or self._build is None:
            return False
        self._stamp = stamp
        try:
            options = server_ssl_options(self._tls)
            self._config.ssl_keyfile_password = options.get("ssl_keyfile_password")
            fresh = self._build()
        except (ConfigError, ssl.SSLError, OSError) as exc:
            log.warning(
                "tls files changed but do not load; serving the previous ones", problem=str(exc)
            )
            return False
        self._current = fresh
        log.info("tls files reloaded", cert_file=self._tls.cert_file)
        return True
