"""Secret references: configuration names *where* a secret lives, never the secret itself.

A literal key in a YAML file ends up in backups, diffs and error messages; an ``env:NAME`` or
``file:/path`` reference does not, and the resolved value is a ``SecretStr`` that prints
as ``**********``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import GetCoreSchemaHandler, SecretStr
from pydantic_core import CoreSchema, core_schema

FileStamp = tuple[int, int, int, int] | None
"""Device, inode, modification time (ns) and size of a file; None when it cannot be read."""


def file_stamp(path: str | os.PathLike[str]) -> FileStamp:
    """What says a file was replaced or rewritten (a renewed certificate, a rotated token)."""
    try:
        st = os.stat(path)  # follows symlinks: a Kubernetes secret swaps its ``..data`` link
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class SecretResolutionError(ValueError):
    """A reference that names nothing: the message names the reference, never a value."""


class SecretRef:
    """``env:NAME`` or ``file:/path/to/secret`` (trailing newline stripped).

    >>> SecretRef.parse("env:OPENAI_API_KEY")
    SecretRef('env:OPENAI_API_KEY')
    """

    __slots__ = ("scheme", "target")

    def __init__(self, scheme: str, target: str) -> None:
        self.scheme = scheme
        self.target = target

    @classmethod
    def parse(cls, raw: str) -> SecretRef:
        scheme, sep, target = raw.partition(":")
        if not sep or scheme not in {"env", "file"} or not target:
            raise ValueError(
                "expected a secret reference 'env:NAME' or 'file:/path', not a literal value"
            )
        return cls(scheme, target)

    def resolve(self) -> SecretStr:
        if self.scheme == "env":
            value = os.environ.get(self.target)
            if value is None:
                raise SecretResolutionError(f"environment variable {self.target} is not set")
            return SecretStr(value)
        try:
            return SecretStr(Path(self.target).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SecretResolutionError(
                f"secret file {self.target} unreadable: {exc.strerror}"
            ) from None

    def is_available(self) -> bool:
        try:
            return bool(self.resolve().get_secret_value())
        except SecretResolutionError:
            return False

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretRef) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        def validate(value: Any) -> SecretRef:
            if isinstance(value, SecretRef):
                return value
            if not isinstance(value, str):
                raise TypeError("expected a string 'env:NAME' or 'file:/path'")
            return cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )
