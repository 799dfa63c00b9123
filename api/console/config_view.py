"""The Config page's pure part (docs/console.md#config): the effective configuration as a tree
with every secret masked, and checking a pasted configuration with the server's own validation
(``config.loader.parse_config``) without saving or resolving anything.

What is masked: every secret reference (``env:``/``file:``: which variable or file holds a key
says where to look for it), every string in a field whose name says it is a secret (keys,
tokens, passwords, credentials, key hashes), and the password in any URL (``redis://:pw@host``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from anygate.config import AnygateConfig, SecretRef
from anygate.config.loader import ConfigError, parse_config

MASK = "••••••"
MAX_PASTE_BYTES = 256 * 1024
"""A pasted configuration larger than this is refused before it is parsed."""
SUMMARY_NAMES = 20
"""Names listed per kind in a valid configuration's summary; the count says how many more."""

_SECRET_NAME = re.compile(r"(key|secret|password|passwd|token|credential|sha256)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``redis://user:pw@host`` → ``redis://user:••••••@host``; other text as it is."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def masked(value: Any, name: str = "") -> Any:
    """``value`` as plain YAML-ready data, secrets replaced by ``MASK``; ``name`` is the field
    (or map key) it sits under, whose name may say it is a secret."""
    if isinstance(value, SecretRef | SecretStr):
        return MASK
    if isinstance(value, BaseModel):
        return {f: masked(getattr(value, f), f) for f in type(value).model_fields}
    if isinstance(value, Mapping):
        return {
            str(k): masked(v, name if _SECRET_NAME.search(name) else str(k))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(v, name) for v in value]
    if isinstance(value, enum.Enum):
        return masked(value.value, name)
    if isinstance(value, str):
        return MASK if _SECRET_NAME.search(name) else mask_url(value)
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return mask_url(str(value))


def masked_yaml(config: AnygateConfig) -> str:
    return yaml.safe_dump(masked(config), sort_keys=False, allow_unicode=True, width=100)


# --- checking a pasted configuration --------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without aliases: a few hundred bytes of nested aliases expand to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted in a pasted configuration", mark
            )
        return super().compose_node(parent, index)


@dataclass(frozen=True, slots=True)
class Summary:
    providers: list[tuple[str, str]]
    """(name, kind)."""
    models: list[str]
    tenants: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    """How many of each there are (the lists stop at ``SUMMARY_NAMES``)."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    summary: Summary | None
    """Set when the configuration is valid."""
    problems: list[tuple[str, str]]
    """(field path, message) when it is not."""

    @property
    def valid(self) -> bool:
        return self.summary is not None


def summary_of(config: AnygateConfig) -> Summary:
    providers = [(n, str(p.kind.value)) for n, p in sorted(config.providers.items())]
    models = sorted(config.models)
    tenants = sorted(t.id for t in config.tenants)
    return Summary(
        providers=providers[:SUMMARY_NAMES],
        models=models[:SUMMARY_NAMES],
        tenants=tenants[:SUMMARY_NAMES],
        counts={"providers": len(providers), "models": len(models), "tenants": len(tenants)},
    )


def check_pasted(text: str) -> CheckResult:
    """Validate as the server does at start (environment overrides aside). Secret references
    are checked for their form only, never resolved: nothing here reads a variable or a file
    that holds a secret. Raises nothing for bad input; the problems name their field."""
    if len(text.encode("utf-8")) > MAX_PASTE_BYTES:
        limit = f"{MAX_PASTE_BYTES // 1024} KiB"
        return CheckResult(None, [("(paste)", f"too large: at most {limit} is checked")])
    try:
        tree = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        return CheckResult(None, [("(yaml)", f"not valid YAML: {exc}")])
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        return CheckResult(None, [("(root)", "expected a mapping at the top level")])
    try:
        config = parse_config(tree, "pasted")
    except ConfigError as exc:
        return CheckResult(None, exc.problems)
    return CheckResult(summary_of(config), [])
