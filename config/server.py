"""The API's own server settings: its limits, its timeouts and its TLS (docs/operations.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from anygate.config.base import StrictModel
from anygate.config.secrets import SecretRef


class TlsConfig(StrictModel):
    """HTTPS on the API's own port (docs/tls.md): a certificate and its key, and optionally the
    CA whose client certificates are asked for (mutual TLS). Present means HTTPS; absent (the
    default) means plain HTTP, for running behind a TLS-terminating ingress.

    Only ``anygate api`` reads the files, so only it checks that they exist and hold what they
    should (``file_problems`` and the start-up check in ``anygate.ops.tls``): workers and the
    control plane share this file and need not carry the API's certificate."""

    cert_file: Annotated[str, Field(min_length=1)]
    """The server certificate, PEM, leaf first and any intermediates after it."""
    key_file: Annotated[str, Field(min_length=1)]
    """Its private key, PEM (encrypted or not)."""
    key_password: SecretRef | None = None
    """Where the password of an encrypted ``key_file`` lives (``env:NAME``, ``file:/path``)."""
    client_ca_file: Annotated[str, Field(min_length=1)] | None = None
    """The CA certificate(s), PEM, that client certificates must chain to. Given alone, every
    client must present one (``client_cert`` defaults to ``required``)."""
    client_cert: Literal["none", "optional", "required"] | None = None
    """Whether a client must present a certificate signed by ``client_ca_file``: ``required``
    (refused at the handshake without one), ``optional`` (one is checked when sent, none is
    fine) or ``none`` (never asked). Default: ``required`` with a ``client_ca_file``, else
    ``none``."""
    reload_check_s: Annotated[float, Field(ge=0, le=3600)] = 10.0
    """How often, at most, a new connection makes the API look at the files again: when one
    changed (a renewed certificate), new connections get the new files, while open ones go on
    with the old. 0: never; a restart loads them."""

    @property
    def client_cert_mode(self) -> Literal["none", "optional", "required"]:
        if self.client_cert is not None:
            return self.client_cert
        return "required" if self.client_ca_file is not None else "none"

    @model_validator(mode="after")
    def _client_ca_given(self) -> TlsConfig:
        if self.client_cert in ("optional", "required") and self.client_ca_file is None:
            raise ValueError(
                f"client_ca_file is required with client_cert: {self.client_cert} "
                "(the CA that client certificates must chain to)"
            )
        return self

    def file_problems(self) -> list[tuple[str, str]]:
        """``(field, problem)`` for each file that is missing, not a file or unreadable; what the
        files hold is checked by loading them (``anygate.ops.tls``)."""
        files = [("cert_file", self.cert_file), ("key_file", self.key_file)]
        if self.client_ca_file is not None and self.client_cert_mode != "none":
            files.append(("client_ca_file", self.client_ca_file))
        problems = []
        for field, name in files:
            path = Path(name)
            if not path.exists():
                problems.append((field, f"no such file: {path}"))
            elif not path.is_file():
                problems.append((field, f"not a regular file: {path}"))
            elif not os.access(path, os.R_OK):
                problems.append((field, f"not readable by this process: {path}"))
        return problems


class ConsoleConfig(StrictModel):
    """The operator's web console at ``/ui`` (docs/console.md): who may open it is whoever holds
    an admin key; these bound how long a session lasts."""

    enabled: bool = True
    idle_timeout_s: Annotated[float, Field(ge=1, le=86400)] = 1800.0
    """A session unused this long ends: the next page asks for the admin key again."""
    max_age_s: Annotated[float, Field(ge=1, le=7 * 86400)] = 12 * 3600.0
    """A session ends this long after its login, however busy."""
    secure_cookie: Literal["auto", "always", "never"] = "auto"
    """The cookie's ``Secure`` flag: ``auto`` sets it when the login came over HTTPS (the API's
    own TLS, or ``X-Forwarded-Proto: https`` from a proxy in front)."""
    login_attempts_per_minute: Annotated[int, Field(ge=1, le=10000)] = 10
    """Failed logins a client address may make in a minute before it is refused (429) until
    the minute ends: a guessed key costs a minute per ten tries."""


class ServerConfig(StrictModel):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    cors_origins: tuple[str, ...] = ()
    long_poll_max_s: Annotated[float, Field(gt=0, le=60)] = 60.0
    sync_timeout_s: Annotated[float, Field(gt=0)] = 600.0
    """How long a synchronous (OpenAI/Gemini-compatible) call waits without an event (the
    result, a chunk) before answering 504; the job goes on and can be fetched later."""
    cancel_on_disconnect: Literal["before_stream", "always", "never"] = "before_stream"
    """A synchronous caller that goes away cancels its job: only before anything was streamed to
    it (default, docs/queue-semantics.md), always, or never."""
    max_json_depth: Annotated[int, Field(ge=1, le=128)] = 64
    """Deepest nesting of objects and arrays a request body may have (the body itself is level
    1); deeper is a 400 ``json_too_deep`` before any validation. No real request nests more than
    a dozen levels, while every deep level costs recursion in validation and serialisation; the
    cap of 128 keeps a body well inside orjson's own 254-level limit when the gateway writes it
    back out (a deeper one would fail there, as a 500)."""
    max_header_count: Annotated[int, Field(ge=8, le=10_000)] = 100
    """More request headers than this is a 431 ``headers_too_large`` (clients send ~10-20)."""
    max_header_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    """Request headers totalling more (names plus values) is a 431 ``headers_too_large``. The
    HTTP parser (uvicorn's httptools) sets no limit of its own on header size."""
    max_url_bytes: Annotated[int, Field(ge=256, le=65_535)] = 8192
    """A longer URL (path and query, as sent) is a 414 ``url_too_long``. httptools refuses
    URLs over 65,535 bytes itself, with a bare 400, before the application sees them."""
    keepalive_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    """A stream (SSE job events, streamed chat on both surfaces) that has nothing to send for
    this long sends a keep-alive (an SSE comment, or whitespace where comments are not
    understood), so proxies with an idle timeout do not cut a caller who is waiting."""
    redis_wait_s: Annotated[float, Field(gt=0, le=60)] = 1.5
    """How long a request waits on Redis before it is answered 503 with ``Retry-After``: while
    Redis is away, requests fail fast instead of hanging (and at once once the outage is
    known)."""
    tls: TlsConfig | None = None
    """Serve HTTPS instead of HTTP (docs/tls.md); ``anygate api --tls-*`` flags override it."""
    console: ConsoleConfig = ConsoleConfig()
    """The operator's web console at ``/ui`` (docs/console.md)."""
