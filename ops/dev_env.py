"""``<data-dir>/dev.env``: what a shell, the ``anygate`` CLI and the tests need to reach a running
``anygate dev`` (docs/operations.md#one-machine-anygate-dev).

Its lines are ``export NAME=value`` so that ``source .anygate/dev.env`` works; the names are an
interface (the CLI reads them), so they never change. The file also keeps the dev keys across
restarts: they are read back from it at the next start (``load_or_create_keys``). It is written
only once the stack is ready, in one step (a temp file renamed over it), 0600 from its first
byte, so a reader never sees half a file or a file naming a stack that is not up yet.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from anygate.broker.tenants import mint_key
from anygate.ops.env_file import parse_env_file

URL = "ANYGATE_URL"
KEY = "ANYGATE_KEY"
ADMIN_KEY = "ANYGATE_ADMIN_KEY"
REDIS_URL = "ANYGATE_REDIS_URL"
CONFIG = "ANYGATE_CONFIG"


@dataclass(frozen=True)
class DevKeys:
    tenant_key: str
    admin_key: str


@dataclass(frozen=True)
class DevEnv:
    """Everything ``dev.env`` says, in its order."""

    url: str
    keys: DevKeys
    redis_url: str
    config_path: Path

    def lines(self) -> list[tuple[str, str]]:
        return [
            (URL, self.url),
            (KEY, self.keys.tenant_key),
            (ADMIN_KEY, self.keys.admin_key),
            (REDIS_URL, self.redis_url),
            (CONFIG, str(self.config_path)),
        ]


def render_env_file(env: DevEnv) -> str:
    """``export NAME=value`` lines; a value is shell-quoted only when it needs it (a path with
    a space), so the usual file is plain ``NAME=value``."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.lines())


def read_env_file(env_file: Path) -> dict[str, str]:
    """``parse_env_file`` of the file; empty when there is none yet."""
    try:
        return parse_env_file(env_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def load_or_create_keys(env_file: Path) -> DevKeys:
    """Keys are made on first start and reused after, so a restart keeps clients working."""
    values = read_env_file(env_file)
    return DevKeys(values.get(KEY) or mint_key(), values.get(ADMIN_KEY) or mint_key())


def write_env_file(env_file: Path, env: DevEnv) -> None:
    """Replace ``env_file`` in one step: a reader sees the old file or the new one, whole."""
    temp = env_file.with_name(f".{env_file.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(render_env_file(env))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)  # O_CREAT's mode only counts for a new file
        os.replace(temp, env_file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
