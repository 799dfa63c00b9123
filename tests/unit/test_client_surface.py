"""``Client`` and ``AsyncClient`` offer the same methods with the same parameters, and
docs/client.md describes every one of them."""

from __future__ import annotations

import inspect
from pathlib import Path

from anygate.client import AsyncClient, Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
OWN = {"Client": {"close"}, "AsyncClient": {"aclose"}}
"""How each one is closed: the only difference."""


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_") and name not in OWN[cls.__name__]
    }


def _shape(signature: inspect.Signature) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults (annotations differ: ``Iterator`` against ``AsyncIterator``)."""
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    sync, asynchronous = _methods(Client), _methods(AsyncClient)
    assert sorted(sync) == sorted(asynchronous)
    for name, signature in sync.items():
        assert _shape(signature) == _shape(asynchronous[name]), name
    assert _shape(inspect.signature(Client)) == _shape(inspect.signature(AsyncClient))


def test_the_iterating_methods_are_iterators_in_both() -> None:
    for name in ("list", "stream", "stream_text", "list_files", "list_batches", "batch_results"):
        assert inspect.isgeneratorfunction(getattr(Client, name)), name
        assert inspect.isasyncgenfunction(getattr(AsyncClient, name)), name


def test_every_method_is_in_the_reference() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in _methods(AsyncClient) if f"`{name}`" not in text]
    assert not missing, f"docs/client.md does not describe {missing}"
