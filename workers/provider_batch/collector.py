"""The control plane's provider-batch collector: parked jobs into provider batches, and each
batch followed until every job it held is answered or sent live (docs/provider-batches.md).

Each tick (every second, from arq's cron), for each parked queue:

- **too late**: parked jobs whose cutoff is nearer than a batch could use go live;
- **collect**: once ``collect_s`` has passed since the queue was first seen waiting (or
  ``max_lines`` wait), up to ``max_lines`` jobs are taken into a new batch (its record written
  in the same step) and sent to the provider; nothing is taken from a paused pool (as its
  workers claim nothing), though its jobs still go live at their cutoff;

and for each batch, every ``poll_s``:

- **follow**: read its state; once it has ended, record each answer (``finish-5.lua``, the
  discounted cost), fail the lines it refused for good, and send the rest live;
- **cut off**: at its cutoff (its most urgent job's deadline less ``live_reserve_s``) cancel it,
  then treat what it ran as above; if the provider has not confirmed the cancel within
  ``cancel_wait_s``, send what it holds live anyway.

Every step is fenced by the job's attempt, so a tick that dies half-way, or two control
processes, never end a job twice: a repeated step finds the jobs already done and changes
nothing. The locks (``pblock:``) only keep two processes from calling the provider twice for
the same thing.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import structlog

from anygate.broker import Broker
from anygate.broker.errors import UpstreamError
from anygate.broker.provider_batches import BatchRecord, ProviderBatchStore
from anygate.broker.script_calls.finish import FinishArgs
from anygate.broker.script_calls.provider_batch import TakenJob
from anygate.config import AnygateConfig
from anygate.telemetry import count_provider_batch
from anygate.telemetry.metrics import ProviderBatchJobOutcome, ProviderBatchOutcome
from anygate.workers.pricing import cost_usd
from anygate.workers.provider_batch.lines import BatchRequest, LineResult, LineState
from anygate.workers.provider_batch.queues import BatchQueue, batch_queues, client_for
from anygate.workers.provider_batch.remote import BatchClient, RemoteBatch, RemoteState

log = structlog.get_logger(__name__)

LOCK_MS = 120_000
"""A collect or a follow holds its lock this long at most (an upload of 50,000 lines)."""
HTTP_TIMEOUT_S = 60.0

_ENDED: dict[RemoteState, tuple[ProviderBatchOutcome, str]] = {
    RemoteState.DONE: ("completed", "provider_batch_no_answer"),
    RemoteState.EXPIRED: ("expired", "provider_batch_expired"),
    RemoteState.FAILED: ("failed", "provider_batch_failed"),
    RemoteState.CANCELLED: ("cut_off", "provider_batch_cut_off"),
}
"""A batch's end: its metric outcome, and the reason its unanswered jobs go live."""

ClientFactory = Callable[[BatchQueue, httpx.AsyncClient], BatchClient]


class Collector:
    def __init__(
        self,
        config: AnygateConfig,
        broker: Broker,
        *,
        clients: ClientFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._store: ProviderBatchStore = broker.provider_batches
        self._clients = clients or self._client
        self._clock = clock
        self._waiting_since: dict[tuple[str, str], int] = {}
        """When each queue was first seen with jobs waiting (this process's view)."""
        self._polled: dict[str, int] = {}
        """When each batch was last read from its provider."""

    def _client(self, queue: BatchQueue, http: httpx.AsyncClient) -> BatchClient:
        assert queue.step is not None
        return client_for(self._config, queue.step, http)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def tick(self) -> int:
        """Jobs moved (taken, answered, or sent live) in this tick."""
        pools = set(self._config.providers)
        registered = {pool: await self._store.queues(pool) for pool in pools}
        queues = batch_queues(self._config, registered)
        by_name = {(q.pool, q.name): q for q in queues}
        moved = 0
        http = _LazyHttp()
        try:
            for queue in queues:
                moved += await self._send_late(queue)
                if queue.step is not None:
                    moved += await self._collect(queue, http)
            for pool in sorted({q.pool for q in queues}):
                for record in await self._store.active(pool):
                    moved += await self._follow(record, by_name.get((pool, record.queue)), http)
        finally:
            await http.aclose()
        return moved

    # --- parked jobs --------------------------------------------------------------------------

    def _min_cutoff_ms(self, now_ms: int) -> int:
        """A batch is worth sending for a job whose cutoff leaves two polls at least."""
        return now_ms + int(2 * self._config.provider_batches.poll_s * 1000)

    async def _send_late(self, queue: BatchQueue) -> int:
        """Parked jobs too late for a batch, or in a queue that takes batches no more."""
        now = self._now_ms()
        before = self._min_cutoff_ms(now) if queue.step is not None else float("inf")
        late = await self._store.overdue(queue.pool, queue.name, before, 1000)
        if not late:
            return 0
        reason = "cutoff" if queue.step is not None else "provider_batch_unavailable"
        sent = await self._store.release(
            queue.pool, queue.name, [(job_id, None) for job_id in late], reason=reason
        )
        return sum(sent)

    async def _collect(self, queue: BatchQueue, http: _LazyHttp) -> int:
        settings = self._config.provider_batches
        waiting = await self._store.parked(queue.pool, queue.name)
        key = (queue.pool, queue.name)
        if not waiting or await self._store.paused(queue.pool):
            self._waiting_since.pop(key, None)
            return 0
        now = self._now_ms()
        since = self._waiting_since.setdefault(key, now)
        if waiting < settings.max_lines and now - since < settings.collect_s * 1000:
            return 0
        token = await self._store.lock(queue.pool, f"q:{queue.name}", LOCK_MS)
        if token is None:
            return 0
        try:
            batch_id = "pb_" + secrets.token_hex(12)
            taken = await self._store.take(
                queue.pool,
                queue.name,
                batch_id,
                max_jobs=settings.max_lines,
                min_cutoff_ms=self._min_cutoff_ms(now),
            )
            self._waiting_since.pop(key, None)
            if taken:
                cutoff = min(j.cutoff_ms for j in taken)
                record = BatchRecord(
                    batch_id, queue.pool, queue.name, "taken", now, cutoff, len(taken)
                )
                await self._submit(record, queue, taken, self._clients(queue, http()))
            return len(taken)
        finally:
            await self._store.unlock(queue.pool, f"q:{queue.name}", token)

    async def _submit(
        self, record: BatchRecord, queue: BatchQueue, taken: list[TakenJob], client: BatchClient
    ) -> None:
        assert queue.step is not None
        requests: list[BatchRequest] = []
        sent: list[tuple[str, int]] = []
        unfit: list[tuple[str, int]] = []
        for job in taken:
            request = BatchRequest(job.id, queue.endpoint, job.body, queue.step.deployment.model)
            fits = client.unfit(request) is None
            if fits:
                requests.append(request)
            (sent if fits else unfit).append((job.id, job.attempt))
        if unfit:
            await self._store.release(
                record.pool, record.queue, unfit, batch_id=record.id, reason="provider_batch_unfit"
            )
        if not requests:
            await self._store.forget(record)
            return
        try:
            remote = await client.submit(
                queue.step.deployment.model, queue.endpoint, requests, record.id
            )
        except UpstreamError as exc:
            log.warning(
                "provider batch not accepted; its jobs go live",
                batch=record.id,
                pool=record.pool,
                jobs=len(requests),
                error=exc.message,
            )
            await self._give_up(record, sent, "not_started", "provider_batch_not_started")
            return
        await self._store.submitted(record, remote.id)
        log.info(
            "provider batch sent",
            batch=record.id,
            remote=remote.id,
            pool=record.pool,
            jobs=len(requests),
            cutoff_ms=record.cutoff_ms,
        )

    # --- batches ------------------------------------------------------------------------------

    async def _follow(self, record: BatchRecord, queue: BatchQueue | None, http: _LazyHttp) -> int:
        """Move one batch on, under its lock (two processes never act on one batch)."""
        settings = self._config.provider_batches
        now = self._now_ms()
        if record.state == "taken" and now - record.created_ms < settings.submit_wait_s * 1000:
            return 0  # its collector is sending it
        recent = now - self._polled.get(record.id, 0) < settings.poll_s * 1000
        if record.state != "taken" and recent and now < record.cutoff_ms:
            return 0
        token = await self._store.lock(record.pool, f"b:{record.id}", LOCK_MS)
        if token is None:
            return 0
        try:
            self._polled[record.id] = now
            found = await self._store.current(record)
            if found is None or found.state != record.state:
                return 0  # another process got there first; the next tick sees what it did
            if record.state == "taken":  # its control process died before the provider had it
                held = list((await self._store.held(record)).items())
                return await self._give_up(
                    record, held, "not_started", "provider_batch_not_started"
                )
            if queue is None or queue.step is None:  # its deployment left the configuration
                held = list((await self._store.held(record)).items())
                return await self._give_up(record, held, "cut_off", "provider_batch_unavailable")
            return await self._advance(record, queue, self._clients(queue, http()), now)
        finally:
            await self._store.unlock(record.pool, f"b:{record.id}", token)

    async def _advance(
        self, record: BatchRecord, queue: BatchQueue, client: BatchClient, now: int
    ) -> int:
        settings = self._config.provider_batches
        overdue = now >= record.cutoff_ms + settings.cancel_wait_s * 1000
        try:
            remote = await client.get(record.remote_id)
            if not remote.state.ended and now >= record.cutoff_ms and record.state == "submitted":
                log.info("provider batch cut off", batch=record.id, remote=record.remote_id)
                remote = await client.cancel(record.remote_id)
                await self._store.cancelling(record)
            if remote.state.ended:
                return await self._conclude(record, queue, client, remote)
        except UpstreamError as exc:
            log.warning(
                "provider batch unreadable",
                batch=record.id,
                remote=record.remote_id,
                error=exc.message,
            )
        if overdue:
            log.warning(
                "provider batch did not confirm its cancel; its jobs go live",
                batch=record.id,
                remote=record.remote_id,
            )
            held = list((await self._store.held(record)).items())
            return await self._give_up(record, held, "cut_off", "provider_batch_cut_off")
        return 0

    async def _conclude(
        self, record: BatchRecord, queue: BatchQueue, client: BatchClient, remote: RemoteBatch
    ) -> int:
        """The batch has ended: its answers recorded, its refusals failed, the rest sent live."""
        assert queue.step is not None
        held = await self._store.held(record)
        back = await client.results(remote, list(held))
        if back.strays:
            log.warning(
                "provider batch answered lines it was not asked", batch=record.id, n=back.strays
            )
        outcome, reason = _ENDED[remote.state]
        models = await self._store.models(record.pool, list(held))
        finishes, live, saved = [], [], 0.0
        fates: dict[ProviderBatchJobOutcome, int] = {"answered": 0, "failed": 0, "live": 0}
        for job_id, result in back.results.items():
            if result.state is LineState.NOT_RUN:
                live.append((job_id, held[job_id]))
                continue
            args, job_saved = self._finish_args(
                record, queue, result, attempt=held[job_id], models=models
            )
            finishes.append(args)
            saved += job_saved
            fates["answered" if result.state is LineState.DONE else "failed"] += 1
        recorded = await self._store.finish(record.pool, finishes)
        errors = [r for r in recorded if isinstance(r, BaseException)]
        if errors:
            raise errors[0]  # a script error: the next follow repeats what did not take
        sent = await self._store.release(
            record.pool, record.queue, live, batch_id=record.id, reason=reason
        )
        fates["live"] = sum(sent)
        await self._store.forget(record)
        self._polled.pop(record.id, None)
        count_provider_batch(record.pool, outcome, fates, saved)
        log.info("provider batch done", batch=record.id, remote=remote.id, outcome=outcome, **fates)
        with contextlib.suppress(UpstreamError):
            await client.forget(remote)
        return sum(fates.values())

    def _finish_args(
        self,
        record: BatchRecord,
        queue: BatchQueue,
        result: LineResult,
        *,
        attempt: int,
        models: dict[str, str],
    ) -> tuple[FinishArgs, float]:
        """The finish of one answered or refused line, and what its discount saved."""
        assert queue.step is not None
        dep = queue.step.deployment
        job_id = result.job_id
        common: dict[str, Any] = {
            "model": models.get(job_id, dep.model),
            "ttl_s": self._config.retention.result_ttl_s,
        }
        prefix = self._store.prefix(record.pool)
        if result.state is LineState.DONE and result.outcome is not None:
            usage = result.outcome.usage
            charged = cost_usd(usage, dep, price_ratio=dep.batch_price_ratio)
            listed = cost_usd(usage, dep)
            args = FinishArgs.outcome(
                prefix,
                job_id,
                attempt,
                **common,
                succeeded=True,
                result=result.outcome.result,
                usage=usage,
                cost_usd=charged,
            )
            return args, (listed or 0.0) - (charged or 0.0)
        assert result.error is not None
        history = {
            "attempt": attempt,
            "step": 0,
            "provider": record.pool,
            "model": dep.model,
            "outcome": "fail",
            "execution": "provider_batch",
            "error": result.error.to_attempt_error(),
        }
        args = FinishArgs.outcome(
            prefix,
            job_id,
            attempt,
            **common,
            succeeded=False,
            error=result.error.to_job_error(),
            history_entry=history,
        )
        return args, 0.0

    async def _give_up(
        self,
        record: BatchRecord,
        held: Sequence[tuple[str, int]],
        outcome: ProviderBatchOutcome,
        reason: str,
    ) -> int:
        """Every job the batch still holds goes live; the batch is forgotten."""
        sent = await self._store.release(
            record.pool, record.queue, held, batch_id=record.id, reason=reason
        )
        await self._store.forget(record)
        self._polled.pop(record.id, None)
        count_provider_batch(record.pool, outcome, {"live": sum(sent)}, 0.0)
        return sum(sent)


class _LazyHttp:
    """The tick's HTTP client, made only when a provider is called: most ticks call none, and
    a client's TLS context costs milliseconds to make."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    def __call__(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
