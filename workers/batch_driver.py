"""The control plane's batch driver: expand, wind down, finalise — resumable at every step.

Each tick (every second, from arq's cron) takes every active batch whose lock it can get and
moves it on as far as a time budget allows:

- **expand**: one chunk of the input file at a time (chunks hold whole lines), enqueued as
  ``batch``-class jobs in one pipelined burst, then the cursor (``chunk``, ``line_base``), the
  chunk's job ids and its rejected lines are committed in one transaction. A crash between the
  enqueue and the commit repeats the chunk: each line's idempotency key maps it to the job it
  already has, so no line runs twice and none is lost.
- **wind down** (cancel, or the completion window's end): cancel every job of the batch, and
  account the lines never expanded as cancelled or expired, with an error-file line each.
- **finalise**, once every line has ended (``n_done`` — counted by the job scripts themselves —
  reaches ``total``): write the output and error files in OpenAI's format, roll usage up, set
  the final status, and hand a webhook to the delivery queue.

The lock (``block:<id>``, a few seconds, renewed per chunk and per page of a wind-down or of the
result files, and only while it is still ours) lets several control processes and overlapping
ticks run without driving one batch twice; a dead one's lock lapses and another takes over. The
wind-down keeps a cursor (``wound``: jobs cancelled so far) and stops at the tick's time budget
like the expansion, so a large batch's wind-down is spread over ticks instead of outliving its
lock: ticks start every second, and each one that found the lock lapsed used to start the whole
wind-down (and the finalisation after it) again beside the first.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import WatchError

from anygate.broker import Broker, Enqueued, new_job_id
from anygate.broker.batch_store import Batch, BatchStore
from anygate.broker.connection import awaited
from anygate.broker.errors import AnygateError
from anygate.broker.file_store import FileStore, FileWriter
from anygate.broker.keys import MOVED
from anygate.broker.redis_link import is_outage
from anygate.broker.routing import Step
from anygate.broker.tenant_store import TenantStore
from anygate.config import AnygateConfig
from anygate.core.parking import Parking, parking
from anygate.core.planning import Planner
from anygate.telemetry import count_execution
from anygate.workers.batch_lines_to_jobs import (
    BatchContext,
    Rejected,
    idempotency_key,
    line_to_job,
)
from anygate.workers.batch_retention import release_lines

log = structlog.get_logger(__name__)

LOCK_S = 5
TICK_BUDGET_S = 4.0
PAGE = 500

WebhookSink = Callable[[Batch], Awaitable[None]]


class LockLostError(Exception):
    """Another control process took this batch over (this one held its lock too long): stop
    driving it this tick; nothing was committed."""


def split_lines(chunk: bytes, first_line: int) -> list[tuple[int, bytes]]:
    """Numbered non-empty lines of a chunk of whole lines (CRLF or LF)."""
    parts = chunk.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [(first_line + i, p.rstrip(b"\r")) for i, p in enumerate(parts) if p.strip()]


def line_count(chunk: bytes) -> int:
    return chunk.count(b"\n") + (0 if chunk.endswith(b"\n") or not chunk else 1)


class BatchDriver:
    def __init__(
        self,
        config: AnygateConfig,
        redis: Redis,
        broker: Broker,
        planner: Planner,
        on_webhook: WebhookSink | None = None,
    ) -> None:
        self._config = config
        self._redis = redis
        self._broker = broker
        self._k = broker.keys
        self._batches = BatchStore(redis, broker.keys)
        self._files = FileStore(redis, broker.keys, config.files)
        self._tenants = TenantStore(redis, broker.keys)
        self._planner = planner
        self._on_webhook = on_webhook
        self._owner = secrets.token_hex(8)

    async def tick(self) -> int:
        """Drive every active batch this process can lock; how many it drove."""
        await awaited(self._redis.set(self._k.control_ticked, "1", ex=60))
        driven = 0
        for batch_id in await self._batches.active_ids():
            lock = self._k.batch_lock(batch_id)
            if not await awaited(self._redis.set(lock, self._owner, nx=True, ex=LOCK_S)):
                continue
            try:
                await self._drive(batch_id, time.monotonic() + TICK_BUDGET_S)
                driven += 1
            except LockLostError:
                log.info("batch taken over by another tick; left to it", batch_id=batch_id)
            except Exception as exc:
                if is_outage(exc):
                    raise  # not this batch's fault: the control plane waits for Redis
                log.exception("batch tick failed; the next tick retries", batch_id=batch_id)
            finally:
                if await awaited(self._redis.get(lock)) == self._owner:
                    await awaited(self._redis.delete(lock))
        return driven

    async def _drive(self, batch_id: str, deadline: float) -> None:
        batch = await self._batches.load(batch_id)
        if batch is None or batch.ended:
            await awaited(self._redis.srem(self._k.active_batches, batch_id))
            return
        ending = batch.h.get("ending") or ("cancelled" if batch.status == "cancelling" else "")
        if not ending and time.time() >= batch.number("expires_at"):
            ending = "expired"
        if ending and batch.h.get("ending") != ending:
            await self._batches.set(batch_id, ending=ending)
        if not ending:
            while batch.h.get("expanded_all") != "1" and time.monotonic() < deadline:
                await self._expand_chunk(batch)
                await self._hold(batch_id)
                reloaded = await self._batches.load(batch_id)
                if reloaded is None:
                    return
                batch = reloaded
                if batch.status == "cancelling":
                    break  # the next tick winds it down
        elif batch.h.get("wound_down") != "1" and not await self._wind_down(
            batch, ending, deadline
        ):
            return  # the time budget ran out: the next tick goes on from the cursor
        batch = await self._batches.load(batch_id) or batch
        if batch.h.get("expanded_all") == "1" and batch.done >= batch.total:
            await self._finalize(batch)

    async def _hold(self, batch_id: str) -> None:
        """Extend the batch's lock if it is still ours; else ``LockLostError``. A blind EXPIRE
        would extend another process's lock, and let this one go on as if it held it."""
        lock = self._k.batch_lock(batch_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(lock)
            if await pipe.get(lock) != self._owner:
                raise LockLostError(batch_id)
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.expire(lock, LOCK_S)
            try:
                await pipe.execute()
            except WatchError:
                raise LockLostError(batch_id) from None

    # --- expansion ------------------------------------------------------------------------

    async def _context(self, batch: Batch) -> BatchContext | None:
        tenant = await self._tenants.get_tenant(batch.tenant)
        if tenant is None:
            return None
        window_s = batch.number("expires_at") - batch.number("created_at")
        return BatchContext(
            batch_id=batch.id,
            tenant=batch.tenant,
            tenant_weight=tenant.weight,
            # a batch is one submission: its lines do not count against max_queued
            quotas=tenant.quotas.model_copy(update={"max_queued": None}),
            endpoint=batch.h["endpoint"],
            keep_s=window_s + self._config.retention.result_ttl_s,
            window_end_ms=int(batch.number("expires_at") * 1000),
            provider_batches=tenant.provider_batches,
        )

    def _chooser(self, ctx: BatchContext) -> Callable[[Step], Parking]:
        """Whether a line waits for a provider batch: the batch's window is its deadline."""
        now_ms = int(time.time() * 1000)

        def choose(first: Step) -> Parking:
            place = parking(
                self._config,
                first,
                ctx.endpoint,
                deadline_ms=ctx.window_end_ms,
                opted_in=ctx.provider_batches,
                client_key=False,
                now_ms=now_ms,
            )
            count_execution(place.choice.execution, place.choice.because)
            return place

        return choose

    async def _expand_chunk(self, batch: Batch) -> None:
        file_id = batch.h["input_file_id"]
        index, line_base = batch.number("chunk"), batch.number("line_base") or 1
        chunk = await self._files.chunk(file_id, index)
        ctx = await self._context(batch)
        if chunk is None or ctx is None:
            await self._fail(batch, "input file or tenant is gone" if ctx else "tenant deleted")
            return
        bad = {b.line: b.reason for b in await self._files.bad_lines(file_id)}
        lines = split_lines(chunk, line_base)
        choose = self._chooser(ctx)
        outcomes = [
            await line_to_job(ctx, n, raw, self._planner, bad, choose=choose) for n, raw in lines
        ]
        enqueued = await asyncio.gather(
            *(self._enqueue(o) for o in outcomes if not isinstance(o, Rejected)),
            return_exceptions=False,
        )
        job_ids: list[str] = []
        rejects: list[Rejected] = [o for o in outcomes if isinstance(o, Rejected)]
        it = iter(enqueued)
        for (n, _raw), outcome in zip(lines, outcomes, strict=True):
            if isinstance(outcome, Rejected):
                continue
            result = next(it)
            if isinstance(result, Rejected):
                rejects.append(Rejected(n, outcome.custom_id, result.code, result.message))
            else:
                job_ids.append(result.job_id)
        last = index + 1 >= await self._files.chunk_count(file_id)
        lock = self._k.batch_lock(batch.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            # Commit only while this process still holds the batch's lock: a chunk that took
            # longer than the lock lasts may have been expanded again by another tick, whose
            # commit then is the one that counts (its jobs are these, by idempotency key; its
            # rejects must not be counted twice).
            await pipe.watch(lock)
            if await pipe.get(lock) != self._owner:
                raise LockLostError(batch.id)
            pipe.multi()  # type: ignore[no-untyped-call]
            key = self._k.batch(batch.id)
            if job_ids:
                pipe.rpush(self._k.batch_jobs(batch.id), *job_ids)
            self._add_rejects(pipe, batch.id, rejects)
            pipe.hset(
                key,
                mapping={
                    "chunk": index + 1,
                    "line_base": line_base + line_count(chunk),
                    "expanded": batch.number("expanded") + len(lines),
                },
            )
            if batch.status == "validating":
                pipe.hset(
                    key, mapping={"status": "in_progress", "in_progress_at": int(time.time())}
                )
            if last:
                pipe.hset(key, "expanded_all", "1")
            try:
                await pipe.execute()
            except WatchError:
                raise LockLostError(batch.id) from None

    def _add_rejects(self, pipe: Any, batch_id: str, rejects: list[Rejected]) -> None:
        if not rejects:
            return
        pipe.rpush(
            self._k.batch_rejects(batch_id), *(orjson.dumps(r.error_line()) for r in rejects)
        )
        pipe.hincrby(self._k.batch(batch_id), "n_failed", len(rejects))
        pipe.hincrby(self._k.batch(batch_id), "n_done", len(rejects))

    async def _enqueue(self, job: Any) -> Enqueued | Rejected:
        try:
            return await self._broker.enqueue(
                job, new_job_id(self._broker.keys.shard_of_pool(job.pool))
            )
        except AnygateError as exc:  # a spent budget: this line cannot run
            return Rejected(0, job.custom_id, exc.code or "refused", exc.message)

    async def _fail(self, batch: Batch, why: str) -> None:
        errors = [{"code": "batch_failed", "message": why, "param": None, "line": None}]
        await self._batches.set(batch.id, errors=orjson.dumps(errors).decode())
        await self._batches.transition(batch.id, "failed")

    # --- winding down ---------------------------------------------------------------------

    async def _wind_down(self, batch: Batch, ending: str, deadline: float) -> bool:
        """Cancel what runs or waits, a page at a time from the cursor ``wound``; account what
        was never expanded. False when the time budget ran out first (the next tick resumes;
        a page cancelled twice after a crash is harmless: a cancel of an ended job is a no-op).
        """
        reason = f"batch_{ending}"
        key, done = self._k.batch_jobs(batch.id), batch.number("wound")
        while job_ids := await awaited(self._redis.lrange(key, done, done + PAGE - 1)):
            await asyncio.gather(
                *(self._broker.cancel(batch.tenant, j, reason=reason) for j in job_ids)
            )
            done += len(job_ids)
            await self._hold(batch.id)
            await self._batches.set(batch.id, wound=done)
            if time.monotonic() >= deadline:
                return False
        if batch.h.get("expanded_all") != "1":
            await self._account_unexpanded(batch, ending, reason)
        await self._batches.set(batch.id, wound_down=1)
        return True

    async def _account_unexpanded(self, batch: Batch, ending: str, reason: str) -> None:
        file_id = batch.h["input_file_id"]
        index, line_base = batch.number("chunk"), batch.number("line_base") or 1
        ids: list[str] = []
        rejects: list[Rejected] = []
        while (chunk := await self._files.chunk(file_id, index)) is not None:
            for n, raw in split_lines(chunk, line_base):
                # a chunk cut short by a crash may have jobs already: cancel and keep them
                found = await self._broker.idempotent_job(
                    batch.tenant, idempotency_key(batch.id, n)
                )
                if found:
                    await self._broker.cancel(batch.tenant, found, reason=reason)
                    ids.append(found)
                    continue
                custom_id = _custom_id(raw)
                message = f"the batch was {ending} before this request was sent"
                rejects.append(Rejected(n, custom_id, reason, message))
            line_base += line_count(chunk)
            index += 1
        async with self._redis.pipeline(transaction=True) as pipe:
            if ids:
                pipe.rpush(self._k.batch_jobs(batch.id), *ids)
            self._add_rejects(pipe, batch.id, rejects)
            pipe.hset(self._k.batch(batch.id), mapping={"chunk": index, "expanded_all": "1"})
            await pipe.execute()

    async def _pages(self, batch_id: str) -> list[list[str]]:
        key = self._k.batch_jobs(batch_id)
        total = await awaited(self._redis.llen(key))
        pages = []
        for start in range(0, total, PAGE):
            pages.append(await awaited(self._redis.lrange(key, start, start + PAGE - 1)))
        return pages

    # --- finalisation ---------------------------------------------------------------------

    async def _finalize(self, batch: Batch) -> None:
        """Stream the output and error files page by page (a 50,000-line batch's results are
        never all in memory), then set the final status."""
        await self._batches.transition(batch.id, "finalizing")
        out = self._files.writer(batch.tenant, "batch_output")
        err = self._files.writer(batch.tenant, "batch_output")
        pages = await self._pages(batch.id)  # every line has ended: the list no longer changes
        try:
            usage, n_out, n_err = await self._write_results(batch, pages, out, err)
            rejected = await awaited(self._redis.lrange(self._k.batch_rejects(batch.id), 0, -1))
            for r in rejected:
                await err.write((r if isinstance(r, bytes) else r.encode()) + b"\n")
            n_err += len(rejected)
            fields: dict[str, str | int] = {"usage": orjson.dumps(usage).decode()}
            if n_out:
                fields["output_file_id"] = (await out.commit(f"{batch.id}_output.jsonl")).id
            else:
                await out.abort()
            if n_err:
                fields["error_file_id"] = (await err.commit(f"{batch.id}_error.jsonl")).id
            else:
                await err.abort()
        except BaseException:
            await asyncio.shield(asyncio.gather(out.abort(), err.abort()))
            raise
        await self._batches.set(batch.id, **fields)
        final = batch.h.get("ending") or ("completed" if pages else "failed")
        if final == "failed" and rejected:
            errs = [
                {
                    "code": e["error"]["code"],
                    "message": e["error"]["message"],
                    "param": None,
                    "line": None,
                }
                for e in (orjson.loads(r) for r in rejected[:100])
            ]
            await self._batches.set(batch.id, errors=orjson.dumps(errs).decode())
        await self._batches.transition(batch.id, final)
        await release_lines(self._redis, self._k, pages, self._config.retention.result_ttl_s)
        log.info(
            "batch finalised",
            batch_id=batch.id,
            status=final,
            lines=batch.total,
            output_lines=n_out,
            error_lines=n_err,
        )
        if self._on_webhook is not None and batch.h.get("webhook_url"):
            await self._on_webhook(await self._batches.load(batch.id) or batch)

    async def _write_results(
        self, batch: Batch, pages: list[list[str]], out: FileWriter, err: FileWriter
    ) -> tuple[dict[str, int], int, int]:
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        n_out = n_err = 0
        for job_ids in pages:
            await self._hold(batch.id)  # a 50,000-line file takes longer than the lock lasts
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    pipe.hmget(
                        self._k.for_job(job_id).job(job_id),
                        ["status", "result", "error", "custom_id", "usage", "moved_to"],
                    )
                rows = await pipe.execute()
            for n, row in enumerate(rows):
                if row[0] == MOVED:  # handed off to another shard: read it there
                    job_id = job_ids[n]
                    rows[n] = await awaited(
                        self._redis.hmget(
                            self._k.on(row[5]).job(job_id),
                            ["status", "result", "error", "custom_id", "usage", "moved_to"],
                        )
                    )
            for job_id, (status, result, error, custom_id, used, _) in zip(
                job_ids, rows, strict=True
            ):
                line, ok = _output_line(job_id, status, result, error, custom_id)
                await (out if ok else err).write(orjson.dumps(line) + b"\n")
                n_out, n_err = (n_out + 1, n_err) if ok else (n_out, n_err + 1)
                if used:
                    u = orjson.loads(used)
                    usage["input_tokens"] += int(u.get("prompt_tokens") or 0)
                    usage["output_tokens"] += int(u.get("completion_tokens") or 0)
                    usage["total_tokens"] += int(u.get("total_tokens") or 0)
        return usage, n_out, n_err


def _custom_id(raw: bytes) -> str | None:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = item.get("custom_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _output_line(
    job_id: str, status: str | None, result: str | None, error: str | None, custom_id: str | None
) -> tuple[dict[str, Any], bool]:
    """OpenAI's batch output line; True when it belongs in the output (not the error) file."""
    line_id = "batch_req_" + job_id.removeprefix("job_")
    if status == "succeeded" and result:
        body = orjson.loads(result)
        response = {"status_code": 200, "request_id": job_id, "body": body}
        return {"id": line_id, "custom_id": custom_id, "response": response, "error": None}, True
    err = orjson.loads(error) if error else None
    if status is None:
        err = {
            "code": "record_expired",
            "message": "the job's record expired before the batch was finalised",
        }
    if status in {"cancelled", "expired"} or status is None:
        code = (err or {}).get("code") or status
        message = (err or {}).get("message") or f"the request was {status}"
        return {
            "id": line_id,
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }, False
    upstream = (err or {}).get("upstream_status") or 500
    response = {"status_code": upstream, "request_id": job_id, "body": {"error": err}}
    return {"id": line_id, "custom_id": custom_id, "response": response, "error": None}, False
