"""Small helpers every translator shares: typed field access, tool-call ids, media URLs.

Google's REST API accepts both ``lowerCamelCase`` and ``snake_case`` field names (proto3
JSON), and google-genai really does send a mix (``inlineData`` holding ``mime_type``), so a
Gemini object is read through ``Fields``, which folds both spellings into one while keeping the
client's spelling for error paths.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from anygate.core.translate.errors import invalid, untranslatable


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


class Fields:
    """One JSON object seen through camelCase keys; ``path(key)`` names a field as sent."""

    __slots__ = ("_names", "_values", "where")

    def __init__(self, value: Any, where: str, *, gemini: bool = False) -> None:
        if not isinstance(value, Mapping):
            raise invalid(where or "body", "must be a JSON object")
        self.where = where
        self._values: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        for key, item in value.items():
            name = camel(key) if gemini else key
            self._values[name] = item
            self._names[name] = key

    def __contains__(self, key: str) -> bool:
        return self._values.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def get(self, key: str) -> Any:
        """The value, with JSON ``null`` read as absent (clients send both for "not set")."""
        return self._values.get(key)

    def path(self, key: str) -> str:
        name = self._names.get(key, key)
        return f"{self.where}.{name}" if self.where else name

    def present(self) -> list[str]:
        return [key for key, value in self._values.items() if value is not None]

    def reject_unknown(self, known: frozenset[str], what: str) -> None:
        """Every field is either translated or refused: an unknown one is never dropped."""
        for key in self.present():
            if key not in known:
                raise untranslatable(self.path(key), f"{what} has no field like this to carry it")

    def obj(self, key: str, *, gemini: bool = False) -> Fields | None:
        value = self.get(key)
        return None if value is None else Fields(value, self.path(key), gemini=gemini)

    def array(self, key: str) -> list[Any] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise invalid(self.path(key), "must be an array")
        return value

    def string(self, key: str) -> str | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise invalid(self.path(key), "must be a string")
        return value

    def integer(self, key: str) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise invalid(self.path(key), "must be an integer")
            value = int(value)
        if not -(2**63) <= value < 2**63:
            raise invalid(self.path(key), "is out of range (a 64-bit integer)")
        return value

    def number(self, key: str) -> float | int | None:
        value = self.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise invalid(self.path(key), "must be a number")
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise invalid(self.path(key), "must be a boolean")
        return value


def dumps(value: Any) -> str:
    """Compact JSON, as OpenAI spells tool-call arguments."""
    return orjson.dumps(value).decode()


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, or None when it holds anything else."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def synthetic_call_id(*parts: object) -> str:
    """A stable id for a Gemini function call that came without one.

    Derived from where the call sits and what it says, so translating the same response twice
    (or streamed and unary) gives the same id, while two calls never share one.
    """
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode())
    return "call_" + digest.hexdigest()[:24]


def call_digest_args(args: Any) -> str:
    return orjson.dumps(args, option=orjson.OPT_SORT_KEYS).decode()


_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "jpe": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "svg": "image/svg+xml",
}
DEFAULT_IMAGE_TYPE = "image/jpeg"


def image_type_from_url(url: str) -> str:
    """The MIME type an image URL's extension implies, with a fixed table (no system files)."""
    path = url.split("#", 1)[0].split("?", 1)[0]
    last = path.rsplit("/", 1)[-1]
    _, dot, ext = last.rpartition(".")
    return _IMAGE_TYPES.get(ext.lower(), DEFAULT_IMAGE_TYPE) if dot else DEFAULT_IMAGE_TYPE


def parse_data_url(url: str, param: str) -> tuple[str, str]:
    """``data:<mime>;base64,<data>`` → (mime, base64 data); only base64 payloads carry over."""
    header, comma, data = url.removeprefix("data:").partition(",")
    mime, *options = header.split(";")
    if not comma or "base64" not in options:
        raise invalid(param, "a data URL must look like data:<mime type>;base64,<data>")
    if not mime:
        raise invalid(param, "a data URL must name its MIME type")
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(param, "the data URL's payload is not valid base64") from None
    return mime.lower(), data


def data_url(mime: str, data: str) -> str:
    return f"data:{mime};base64,{data}"


def is_http_url(url: str) -> bool:
    lower = url[:8].lower()
    return lower.startswith(("http://", "https://"))
