"""What a request is, before any transport sends it: method, path, query, body, and whether
sending it twice is harmless. Uploads are opened afresh for each try, so a retried upload sends
the whole file again."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

SPOOL_BYTES = 8 * 1024 * 1024
"""Requests serialised from an iterable stay in memory up to this size, then go to a temporary
file: a batch of any size is uploaded without holding it all."""

UploadSource = str | os.PathLike[str] | bytes | Iterable[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part: its name and how to open its bytes (once per try)."""

    filename: str
    open: Callable[[], IO[bytes]]
    content_type: str = "application/jsonl"


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request of the gateway's API. ``idempotent``: sending it twice has the effect of
    sending it once (every GET is), so a transport failure may be retried (``_retry.py``)."""

    method: str
    path: str
    params: Mapping[str, str | int | float] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    upload: Upload | None = None
    form: Mapping[str, str] | None = None
    read_timeout: float | None = None
    """A longer read timeout than the client's (a long-poll)."""
    idempotent_write: bool = False

    @property
    def idempotent(self) -> bool:
        return self.method == "GET" or self.idempotent_write


@contextlib.contextmanager
def request_arguments(call: Call, timeout: httpx.Timeout) -> Iterator[dict[str, Any]]:
    """Keyword arguments for ``build_request`` of either httpx client; an upload's file is open
    for the length of the block (send within it)."""
    arguments: dict[str, Any] = {
        "method": call.method,
        "url": call.path,
        "params": dict(call.params) if call.params else None,
        "headers": dict(call.headers),
    }
    if call.json is not None:
        arguments["json"] = call.json
    if call.read_timeout is not None:
        arguments["timeout"] = httpx.Timeout(
            timeout.connect, read=max(call.read_timeout, timeout.read or 0.0)
        )
    if call.upload is None:
        yield arguments
        return
    with call.upload.open() as stream:
        arguments["files"] = {"file": (call.upload.filename, stream, call.upload.content_type)}
        arguments["data"] = dict(call.form or {})
        yield arguments


def write_jsonl(requests: Iterable[Mapping[str, Any]], out: IO[bytes]) -> int:
    """Write each request as one JSON line, as they come (the iterable may be a generator);
    returns the number of lines. A line that is not a JSON object is a ``TypeError`` naming
    its index, before anything is sent."""
    count = 0
    for index, item in enumerate(requests):
        if not isinstance(item, Mapping):
            raise TypeError(
                f"requests[{index}]: expected a request object (dict), got {type(item).__name__}"
            )
        try:
            line = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"requests[{index}]: not JSON-serialisable ({exc})") from None
        out.write(line.encode())
        out.write(b"\n")
        count += 1
    return count


class SpooledJsonl:
    """Requests serialised once into a spooled temporary file; each try reads it from the start.
    Close it when the upload is done."""

    def __init__(self, requests: Iterable[Mapping[str, Any]]) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        try:
            self.lines = write_jsonl(requests, self._file)
        except BaseException:
            self._file.close()
            raise

    def open(self) -> IO[bytes]:
        """A view from the first byte that does not close the spool when it is closed."""
        self._file.seek(0)
        return io.BufferedReader(_Unclosed(self._file))

    def close(self) -> None:
        self._file.close()


class _Unclosed(io.RawIOBase):
    """Reads through to a file that stays open when this view is closed."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._inner.seek(offset, whence)

    def tell(self) -> int:
        return self._inner.tell()


def upload_of(source: UploadSource, filename: str | None) -> tuple[Upload, Callable[[], None]]:
    """The upload for a path, bytes, or an iterable of request dicts, and what to call when it
    is no longer needed."""
    if isinstance(source, bytes):
        data = source
        return Upload(filename or "batch.jsonl", lambda: io.BytesIO(data)), _nothing
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"source: no such file: {path}")
        return Upload(filename or path.name, lambda: path.open("rb")), _nothing
    if isinstance(source, Mapping):
        raise TypeError("source: expected an iterable of request dicts, got one dict")
    spool = SpooledJsonl(source)
    return Upload(filename or "requests.jsonl", spool.open), spool.close


def _nothing() -> None:
    return None
