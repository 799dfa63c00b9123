"""``Client``: the operations of ``_jobs``, ``_stream`` and ``_batches`` carried out with
``httpx.Client`` and ``time.sleep`` (docs/client.md); every method as ``AsyncClient``'s."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import httpx

from anygate.client import _batches as batches
from anygate.client import _jobs as jobs
from anygate.client._answer import AnswerText
from anygate.client._calls import UploadSource, request_arguments
from anygate.client._models import Batch, BatchResult, FileObject, Job, JobEvent, TextDelta
from anygate.client._protocol import (
    Close,
    Effect,
    Emit,
    NextLine,
    NextSSE,
    Op,
    Opened,
    ReadBody,
    Send,
    Sleep,
    Stepper,
)
from anygate.client._settings import Settings
from anygate.client._stream import stream_events

T = TypeVar("T")

_pause = time.sleep
"""How a ``Sleep`` effect waits (a test may record the pauses instead)."""


class Client:
    """``with Client("http://127.0.0.1:8080", "ag-…") as ag: ...``

    ``base_url``/``api_key`` default to ``$ANYGATE_URL``/``$ANYGATE_KEY``. ``verify``: True,
    False, a CA bundle path, or an ``ssl.SSLContext`` (a private CA, mutual TLS: docs/tls.md).
    ``max_retries``: tries after the first for a 429/503 or a failed connection
    (docs/client.md#retries). ``transport``: an httpx transport to send through (tests)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        verify: ssl.SSLContext | str | bool = True,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = Settings.resolve(
            base_url, api_key, timeout=timeout, verify=verify, max_retries=max_retries
        )
        self._policy = self._settings.policy
        self._http = httpx.Client(**self._settings.http_options(), transport=transport)

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the transport: carries out what an operation asks (``_protocol.py``) ----------------

    def _perform(self, effect: Effect, opened: list[Opened]) -> Any:
        if isinstance(effect, Send):
            with request_arguments(effect.call, self._settings.timeout) as arguments:
                request = self._http.build_request(**arguments)
                response = self._http.send(request, stream=effect.stream)
            if not effect.stream:
                return response
            opened.append(Opened(response))
            return opened[-1]
        if isinstance(effect, Sleep):
            _pause(effect.seconds)
            return None
        if isinstance(effect, NextSSE):
            if effect.stream.reader is None:
                from httpx_sse import EventSource  # noqa: PLC0415 - only streams need it

                effect.stream.reader = EventSource(effect.stream.response).iter_sse()
            return next(effect.stream.reader, None)
        if isinstance(effect, NextLine):
            if effect.stream.reader is None:
                effect.stream.reader = effect.stream.response.iter_lines()
            return next(effect.stream.reader, None)
        if isinstance(effect, ReadBody):
            return effect.stream.response.read()
        if isinstance(effect, Close):
            opened.remove(effect.stream)
            self._release(effect.stream)
            return None
        raise TypeError(f"not an effect: {effect!r}")

    @staticmethod
    def _release(stream: Opened) -> None:
        """Close the reader (a generator over the body), then the response."""
        reader, stream.reader = stream.reader, None
        if reader is not None:
            reader.close()
        stream.response.close()

    def _drive(self, stepper: Stepper[Any]) -> Generator[Any, None, None]:
        opened: list[Opened] = []
        try:
            effect = stepper.advance()
            while effect is not None:
                if isinstance(effect, Emit):
                    yield effect.item
                    effect = stepper.advance()
                    continue
                try:
                    value = self._perform(effect, opened)
                except httpx.TransportError as exc:
                    effect = stepper.advance(error=exc)
                else:
                    effect = stepper.advance(value)
        finally:
            stepper.op.close()
            for stream in opened:
                self._release(stream)

    def _run(self, op: Op[T]) -> T:
        stepper = Stepper(op)
        with contextlib.closing(self._drive(stepper)) as items:
            for item in items:
                raise TypeError(f"this operation hands on no items, got {item!r}")
        return cast("T", stepper.result)

    def _iterate(self, op: Op[None]) -> Generator[Any, None, None]:
        """The items ``op`` hands on (``yield from`` it: closing the caller closes it)."""
        return self._drive(Stepper(op))

    # -- jobs ------------------------------------------------------------------------------

    def submit(
        self,
        endpoint: str,
        body: Mapping[str, Any],
        *,
        priority: str | None = None,
        metadata: Mapping[str, str] | None = None,
        deadline: float | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job (``endpoint``: ``/v1/chat/completions`` or ``/v1/embeddings``). Without
        an ``idempotency_key`` one is made, so a retried submit never makes two jobs."""
        call = jobs.submit_call(
            endpoint,
            body,
            priority=priority,
            metadata=metadata,
            deadline=deadline,
            webhook_url=webhook_url,
            idempotency_key=idempotency_key,
        )
        return self._run(jobs.submit(call, self._policy))

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        """The job; ``wait``: long-poll up to that many seconds (at most 60) for its end."""
        return self._run(jobs.get(job_id, self._policy, wait=wait))

    def wait(self, job_id: str, *, timeout: float | None = None, poll_s: float = 30.0) -> Job:
        """Long-poll until the job ends; ``WaitTimeoutError`` (``.job``: its last state) when
        ``timeout`` seconds pass first."""
        return self._run(jobs.wait(job_id, self._policy, timeout=timeout, poll_s=poll_s))

    def cancel(self, job_id: str) -> Job:
        return self._run(jobs.cancel(job_id, self._policy))

    def list(
        self, *, status: str | None = None, page_size: int = 20, limit: int | None = None
    ) -> Generator[Job, None, None]:
        """The tenant's jobs, newest first, page after page; at most ``limit``."""
        op = jobs.list_jobs(self._policy, status=status, page_size=page_size, limit=limit)
        yield from self._iterate(op)

    def stream(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> Generator[JobEvent, None, None]:
        """The job's events until a terminal one, each once and in order, across dropped
        connections (resumed with ``Last-Event-ID``)."""
        yield from self._iterate(stream_events(job_id, self._policy, last_event_id=last_event_id))

    def stream_text(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> Generator[TextDelta, None, None]:
        """A chat job's answer as it streams; a delta with ``restart`` set means: discard the
        text so far (a new attempt began)."""
        answer = AnswerText()
        with contextlib.closing(self.stream(job_id, last_event_id=last_event_id)) as events:
            for event in events:
                delta = answer.feed(event)
                if delta is not None:
                    yield delta

    def chat(
        self,
        model: str,
        messages: jobs.Messages,
        *,
        priority: str | None = "interactive",
        metadata: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **body_options: Any,
    ) -> Job:
        """Submit a chat completion (a str is one user message) and wait for it; ``.text`` of
        the answer is the assistant's text."""
        call = jobs.submit_call(
            "/v1/chat/completions",
            jobs.chat_body(model, messages, body_options),
            priority=priority,
            metadata=metadata,
            deadline=None,
            webhook_url=None,
            idempotency_key=None,
        )
        return self._run(jobs.submit_and_wait(call, self._policy, timeout=timeout, poll_s=30.0))

    # -- files and batches -----------------------------------------------------------------

    def upload_file(
        self, source: UploadSource, *, purpose: str = "batch", filename: str | None = None
    ) -> FileObject:
        """Upload a path, bytes, or an iterable of request dicts (written as JSONL)."""
        return self._run(
            batches.upload_file(source, self._policy, purpose=purpose, filename=filename)
        )

    def file_content(self, file_id: str) -> bytes:
        return self._run(batches.file_content(file_id, self._policy))

    def delete_file(self, file_id: str) -> bool:
        return self._run(batches.delete_file(file_id, self._policy))

    def list_files(
        self, *, purpose: str | None = None, page_size: int = 100, limit: int | None = None
    ) -> Generator[FileObject, None, None]:
        """The tenant's files, newest first, page after page."""
        op = batches.list_files(self._policy, purpose=purpose, page_size=page_size, limit=limit)
        yield from self._iterate(op)

    def create_batch(
        self,
        input_file_id: str,
        *,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        webhook_url: str | None = None,
    ) -> Batch:
        return self._run(
            batches.create_batch(
                input_file_id,
                self._policy,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=metadata,
                webhook_url=webhook_url,
            )
        )

    def submit_batch(
        self,
        requests: UploadSource,
        *,
        endpoint: str = "/v1/chat/completions",
        completion_window: str = "24h",
        metadata: Mapping[str, str] | None = None,
        webhook_url: str | None = None,
        filename: str | None = None,
    ) -> Batch:
        """``upload_file`` then ``create_batch``."""
        return self._run(
            batches.submit_batch(
                requests,
                self._policy,
                filename=filename,
                endpoint=endpoint,
                completion_window=completion_window,
                metadata=metadata,
                webhook_url=webhook_url,
            )
        )

    def get_batch(self, batch_id: str) -> Batch:
        return self._run(batches.get_batch(batch_id, self._policy))

    def cancel_batch(self, batch_id: str) -> Batch:
        return self._run(batches.cancel_batch(batch_id, self._policy))

    def list_batches(
        self, *, page_size: int = 20, limit: int | None = None
    ) -> Generator[Batch, None, None]:
        """The tenant's batches, newest first, page after page."""
        op = batches.list_batches(self._policy, page_size=page_size, limit=limit)
        yield from self._iterate(op)

    def wait_batch(
        self,
        batch_id: str,
        *,
        progress: batches.Progress | None = None,
        poll_s: float = 1.0,
        timeout: float | None = None,
    ) -> Batch:
        """Poll until the batch ends, calling ``progress(batch)`` on each poll."""
        return self._run(
            batches.wait_batch(
                batch_id, self._policy, progress=progress, poll_s=poll_s, timeout=timeout
            )
        )

    def batch_results(self, batch: Batch | str) -> Generator[BatchResult, None, None]:
        """The output file's lines, then the error file's, parsed."""
        yield from self._iterate(batches.batch_results(batch, self._policy))
