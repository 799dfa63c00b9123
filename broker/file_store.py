"""Files on Redis (OpenAI's Files API): line-aligned chunks, metadata written last.

Redis is the only stateful component, so a file lives there, but never as one value: a
200 MB string would be read, copied and sent in one piece by every reader. Instead

- ``fdata:<id>`` is a list of chunks of about ``files.chunk_bytes``, each holding whole lines,
  so a reader (``GET …/content``, the batch expansion via ``lines``) takes one chunk at a time
  with ``LINDEX`` and never holds the file;
- ``file:<id>`` is the metadata hash (tenant, purpose, filename, bytes, created_at, status,
  lines, chunks, expires_at). It is written, with the expiry of every key of the file, in one
  MULTI only after every chunk is stored and the lines were checked: a file without its hash
  does not exist for anyone, so a half-written upload is never visible;
- ``fbad:<id>`` holds a batch file's identifiable but invalid lines (JSON list of
  ``BadLine``), which the batch writes straight to its error file;
- ``tfiles:<tenant>`` scores the tenant's file ids by creation ms, for listing with a cursor.
  An entry whose hash has expired is removed lazily, by the listing that meets it.

While an upload is in progress its chunks carry a short expiry (``UPLOAD_IDLE_TTL_S``, renewed
with every push): a failed upload deletes them at once, and if even that is impossible (Redis
gone, the process killed) they still disappear on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson
import structlog
from redis.asyncio import Redis
from redis.client import NEVER_DECODE
from redis.exceptions import RedisError

from anygate.broker.batch_lines import (
    BadLine,
    BatchLineChecker,
    LineChunker,
    chunk_lines,
    is_blank,
    line_count,
    nonblank_lines,
    strip_bom,
)
from anygate.broker.connection import awaited
from anygate.broker.errors import InvalidRequestError, NotFoundError, PayloadTooLargeError
from anygate.broker.ids import new_file_id
from anygate.broker.keys import KeySpace
from anygate.config import FilesConfig

log = structlog.get_logger(__name__)

UPLOAD_IDLE_TTL_S = 3600
"""Expiry of an unfinished upload's chunks, renewed by every push."""
VALIDATED_PURPOSE = "batch"
"""Uploads of this purpose are checked line by line and held to ``files.max_*``; files the
gateway writes itself (``batch_output``) are not."""
_LIST_PAGE = 500
_RAW = {NEVER_DECODE: True}
"""The shared client decodes replies to ``str``; file bytes are read undecoded."""

Order = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    tenant: str
    purpose: str
    filename: str
    bytes: int
    created_at: int
    """Unix seconds, as OpenAI reports it."""
    status: str
    lines: int
    """Non-blank lines: for a batch file, its requests."""
    chunks: int
    expires_at: int

    def to_api(self) -> dict[str, Any]:
        """OpenAI's ``FileObject``."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "expires_at": self.expires_at,
            "status_details": None,
        }

    def to_hash(self) -> dict[str, str | int]:
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_hash(cls, file_id: str, h: dict[str, str]) -> FileRecord:
        values: dict[str, Any] = {n: int(h[n]) if n in _NUMBERS else h[n] for n in _FIELDS}
        return cls(id=file_id, **values)


_FIELDS = (
    "tenant",
    "purpose",
    "filename",
    "bytes",
    "created_at",
    "status",
    "lines",
    "chunks",
    "expires_at",
)
_NUMBERS = frozenset({"bytes", "created_at", "lines", "chunks", "expires_at"})
_Records = list[FileRecord]
_BadLines = list[BadLine]


class FileGoneError(NotFoundError):
    """The file disappeared (deleted, expired) while it was being read."""

    default_code = "file_not_found"


class FileWriter:
    """One file being written: chunks are pushed as they fill, nothing is visible until
    ``commit``, and ``abort`` removes what was pushed. Not reusable."""

    def __init__(
        self,
        redis: Redis,
        keys: KeySpace,
        config: FilesConfig,
        tenant: str,
        purpose: str,
        *,
        max_line_bytes: int | None = None,
    ) -> None:
        self.file_id = new_file_id()
        self.tenant = tenant
        self.purpose = purpose
        self.bytes = 0
        self.lines = 0
        self.chunks = 0
        self._redis = redis
        self._keys = keys
        self._config = config
        validated = purpose == VALIDATED_PURPOSE
        self._checker = BatchLineChecker(config.max_lines) if validated else None
        self._max_bytes = config.max_bytes if validated else None
        self._max_line = max(max_line_bytes, config.chunk_bytes) if max_line_bytes else None
        self._chunker = LineChunker(config.chunk_bytes)
        self._doomed = False
        self._touched = False
        self._closed = False
        self._committed = False

    async def write(self, data: bytes) -> None:
        """Take the next bytes of the file. Raises at once when the file passes
        ``files.max_bytes`` (413) or ``files.max_lines`` (400)."""
        if self._closed:
            raise RuntimeError("file writer already closed")
        self.bytes += len(data)
        if self._max_bytes is not None and self.bytes > self._max_bytes:
            raise PayloadTooLargeError(
                f"file: larger than the {self._max_bytes}-byte limit for a file",
                param="file",
                code="file_too_large",
            )
        await self._store(self._chunker.feed(data))
        if self._checker is not None and self._max_line and self._chunker.pending > self._max_line:
            # Past the chunk size, what is buffered is one unfinished line: it alone would
            # be held in memory until its end, so it is bounded like any one request.
            raise InvalidRequestError(
                f"file: line {self._checker.next_line} is longer than {self._max_line} bytes, "
                "the limit for one request",
                param="file",
                code="line_too_long",
            )

    async def commit(self, filename: str, *, ttl_s: int | None = None) -> FileRecord:
        """Store the last chunk, refuse a batch file with unidentifiable lines (or none at
        all), then make the file exist: metadata, bad lines, index entry and expiries in one
        MULTI. On any error the caller must ``abort``."""
        if self._closed:
            raise RuntimeError("file writer already closed")
        tail = self._chunker.finish()
        await self._store([tail] if tail else [])
        if self._checker is not None:
            refusal = self._checker.refusal()
            if refusal is not None:
                raise refusal
        now = time.time()
        created = int(now)
        record = FileRecord(
            id=self.file_id,
            tenant=self.tenant,
            purpose=self.purpose,
            filename=filename,
            bytes=self.bytes,
            created_at=created,
            status="processed",
            lines=self.lines,
            chunks=self.chunks,
            expires_at=created + (ttl_s or self._config.ttl_s),
        )
        k = self._keys
        bad = self._checker.bad if self._checker is not None else []
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(k.file(self.file_id), mapping=record.to_hash())
            pipe.expireat(k.file(self.file_id), record.expires_at)
            if self.chunks:
                pipe.expireat(k.file_data(self.file_id), record.expires_at)
            if bad:
                pipe.set(
                    k.file_bad_lines(self.file_id),
                    orjson.dumps([b.to_json() for b in bad]),
                    exat=record.expires_at,
                )
            pipe.zadd(k.tenant_files(self.tenant), {self.file_id: int(now * 1000)})
            await pipe.execute()
        self._closed = self._committed = True
        return record

    async def abort(self) -> None:
        """Forget the upload: delete what was pushed. Never raises (a Redis error is logged;
        the chunks' idle expiry removes them then). Does nothing after a commit."""
        self._closed = True
        if not self._committed:
            await self._discard()

    async def _store(self, chunks: list[bytes]) -> None:
        if not chunks:
            return
        for chunk in chunks:
            if self._checker is not None:
                self._checker.check_chunk(chunk)
        if self._checker is not None:
            self.lines = self._checker.requests
            if self._checker.fatal_count:
                # The upload will be refused: keep reading to name every bad line, but
                # store nothing more, and drop what is stored.
                if not self._doomed:
                    self._doomed = True
                    await self._discard()
                return
        else:
            self.lines += sum(map(nonblank_lines, chunks))
        key = self._keys.file_data(self.file_id)
        self._touched = True  # before the call: its reply may be lost after Redis applied it
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(key, *chunks)
            pipe.expire(key, UPLOAD_IDLE_TTL_S)
            await pipe.execute()
        self.chunks += len(chunks)

    async def _discard(self) -> None:
        if not self._touched:
            return
        k = self._keys
        try:
            await self._redis.delete(k.file_data(self.file_id), k.file_bad_lines(self.file_id))
        except RedisError as exc:
            log.warning("could not drop an unfinished upload", file=self.file_id, error=str(exc))
        self.chunks = 0
        self._touched = False


class FileStore:
    """Files of every tenant. Reads that take a tenant answer None for another tenant's file,
    exactly as for a missing one."""

    def __init__(self, redis: Redis, keys: KeySpace, config: FilesConfig) -> None:
        self._redis = redis
        self._keys = keys
        self._config = config

    def writer(self, tenant: str, purpose: str, *, max_line_bytes: int | None = None) -> FileWriter:
        """``max_line_bytes`` bounds one line of a checked upload (the API passes its request
        body limit: a longer line could never be run as a request)."""
        return FileWriter(
            self._redis, self._keys, self._config, tenant, purpose, max_line_bytes=max_line_bytes
        )

    async def put(
        self,
        tenant: str,
        purpose: str,
        filename: str,
        chunks: AsyncIterable[bytes],
        *,
        ttl_s: int | None = None,
    ) -> FileRecord:
        """Store a file from pieces of any size; on any error nothing is left behind."""
        writer = self.writer(tenant, purpose)
        try:
            async for piece in chunks:
                await writer.write(piece)
            return await writer.commit(filename, ttl_s=ttl_s)
        except BaseException:
            await asyncio.shield(writer.abort())
            raise

    async def get(self, tenant: str, file_id: str) -> FileRecord | None:
        h: dict[str, str] = await awaited(self._redis.hgetall(self._keys.file(file_id)))
        if not h or h.get("tenant") != tenant:
            return None
        return FileRecord.from_hash(file_id, h)

    async def list(
        self,
        tenant: str,
        *,
        purpose: str | None = None,
        limit: int = 10_000,
        after: str | None = None,
        order: Order = "desc",
    ) -> tuple[_Records, bool]:
        """One page, by creation time; ``has_more`` is exact. A cursor that is no longer in
        the index (deleted, expired, another tenant's) gives an empty page."""
        index = self._keys.tenant_files(tenant)
        desc = order == "desc"
        start = 0
        if after:
            rank = await awaited(
                self._redis.zrevrank(index, after) if desc else self._redis.zrank(index, after)
            )
            if rank is None:
                return [], False
            start = int(rank) + 1
        found: _Records = []
        gone: list[str] = []
        page = min(max(limit + 1, 50), _LIST_PAGE)
        while len(found) <= limit:
            stop = start + page - 1
            ids: list[str] = await (
                self._redis.zrevrange(index, start, stop)
                if desc
                else self._redis.zrange(index, start, stop)
            )
            if not ids:
                break
            start += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for file_id in ids:
                    pipe.hgetall(self._keys.file(file_id))
                hashes: list[dict[str, str]] = await pipe.execute()
            for file_id, h in zip(ids, hashes, strict=True):
                if not h:
                    gone.append(file_id)  # expired: its index entry goes too
                    continue
                record = FileRecord.from_hash(file_id, h)
                if purpose is None or record.purpose == purpose:
                    found.append(record)
        if gone:  # after the scan: removing earlier would shift the ranks it pages by
            await self._redis.zrem(index, *gone)
        return found[:limit], len(found) > limit

    async def chunk_count(self, file_id: str) -> int:
        """Chunks of a stored file; 0 for a missing one (or an empty file)."""
        count = await awaited(self._redis.hget(self._keys.file(file_id), "chunks"))
        return int(count) if count is not None else 0

    async def chunk(self, file_id: str, index: int) -> bytes | None:
        """Chunk ``index`` (0-based) of a file: whole lines. None past the end or when the
        file is gone. A reader that keeps its place as (chunk, first line number) can stop
        and resume anywhere without reading what it already had."""
        execute = cast("Callable[..., Awaitable[bytes | None]]", self._redis.execute_command)
        return await execute("LINDEX", self._keys.file_data(file_id), index, **_RAW)

    async def iter_chunks(self, file_id: str) -> AsyncIterator[bytes]:
        """The file's bytes, one stored chunk at a time. Raises ``FileGoneError`` if the file
        is missing, or disappears while being read (a truncated read is never silent)."""
        count = await awaited(self._redis.hget(self._keys.file(file_id), "chunks"))
        if count is None:
            raise _gone(file_id)
        for index in range(int(count)):
            chunk = await self.chunk(file_id, index)
            if chunk is None:
                raise _gone(file_id)
            yield chunk

    async def lines(self, file_id: str) -> AsyncIterator[tuple[int, bytes]]:
        """(line number, line without its ending) for every non-blank line, in order, read
        chunk by chunk: what a batch expands into jobs. Numbers are physical (1-based)."""
        number = 1
        async for chunk in self.iter_chunks(file_id):
            for n, raw in chunk_lines(chunk, number):
                line = strip_bom(raw, n)
                if not is_blank(line):
                    yield n, line
            number += line_count(chunk)

    async def bad_lines(self, file_id: str) -> _BadLines:
        """A batch file's identifiable but invalid lines, in line order (empty if none)."""
        raw = await self._redis.get(self._keys.file_bad_lines(file_id))
        if not raw:
            return []
        return [BadLine.from_json(item) for item in orjson.loads(raw)]

    async def delete(self, tenant: str, file_id: str) -> bool:
        """Delete the tenant's file; False if it has none of that id (or it was just deleted)."""
        if await self.get(tenant, file_id) is None:
            return False
        k = self._keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(k.file(file_id))
            pipe.delete(k.file_data(file_id), k.file_bad_lines(file_id))
            pipe.zrem(k.tenant_files(tenant), file_id)
            deleted, *_ = await pipe.execute()
        return bool(deleted)


def _gone(file_id: str) -> FileGoneError:
    return FileGoneError(f"No such File object: {file_id}", param="file_id")
