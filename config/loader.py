"""Load the configuration from YAML plus environment overrides, with errors that name the path.

Environment overrides use ``ANYGATE__<path>`` with ``__`` between levels, e.g.
``ANYGATE__SERVER__PORT=9000`` or ``ANYGATE__REDIS__URL=redis://…``; values are parsed as YAML
scalars so numbers and booleans keep their type. Keys are lower-cased; map keys that carry
upper-case letters (model aliases) are reached through the file instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from anygate.config.model import AnygateConfig

ENV_PREFIX = "ANYGATE__"
CONFIG_PATH_ENV = "ANYGATE_CONFIG"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists (path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str) -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"invalid configuration ({source}):\n{lines}")


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("models", "fast", "deployments", 1, "rpm")`` → ``models.fast.deployments[1].rpm``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _set_path(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def apply_env_overrides(tree: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if parts:
            _set_path(tree, parts, yaml.safe_load(raw) if raw else raw)
    return tree


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> AnygateConfig:
    """Read ``path`` (or ``$ANYGATE_CONFIG``; none means all defaults) and apply env overrides."""
    env = os.environ if environ is None else environ
    path = path if path is not None else env.get(CONFIG_PATH_ENV)
    tree: dict[str, Any] = {}
    source = "defaults"
    if path:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([("(file)", f"cannot read: {exc.strerror}")], source) from None
        except yaml.YAMLError as exc:
            raise ConfigError([("(file)", f"not valid YAML: {exc}")], source) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([("(root)", "expected a mapping at the top level")], source)
        tree = loaded or {}
    tree = apply_env_overrides(tree, env)
    return parse_config(tree, source)


_FIELD_FIRST = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


def _named_field(path: str, msg: str) -> tuple[str, str]:
    """A model's own check names the field it is about first (``api_version: required ...``):
    that field joins the path, so every problem names the exact setting
    (``providers.azure.api_version``)."""
    match = _FIELD_FIRST.match(msg)
    if match is None or path == "(root)":
        return path, msg
    return f"{path}.{match.group(1)}", match.group(2)


def parse_config(tree: Mapping[str, Any], source: str = "(inline)") -> AnygateConfig:
    try:
        return AnygateConfig.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(_named_field(format_loc(tuple(err["loc"])), msg))
        raise ConfigError(problems, source) from None
