"""OpenAI's Batch API format: the input file's JSONL lines, and the output and error files read
back into one ``LineResult`` per job.

The job id is the line's ``custom_id``, so a result can only ever reach the job it was asked
for; a line naming a job the batch does not hold, or a job twice, is ignored and counted (the
provider's bug must not finish another job, or one job twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from anygate.broker.errors import UpstreamTransientError
from anygate.workers.adapters.http import error_for_status
from anygate.workers.provider_batch.lines import (
    BatchRequest,
    LineResult,
    ReadBack,
    complete,
    done,
    not_run,
    refused,
    result_lines,
)

_LIVE_ONLY_FIELDS = ("stream", "stream_options")
"""A batch line is answered whole: fields that ask for a stream do not belong in it."""


def input_line(request: BatchRequest) -> bytes:
    body: dict[str, Any] = orjson.loads(request.body)
    for name in _LIVE_ONLY_FIELDS:
        body.pop(name, None)
    body["model"] = request.upstream_model
    line = {"custom_id": request.job_id, "method": "POST", "url": request.endpoint, "body": body}
    return orjson.dumps(line)


def input_file(requests: Iterable[BatchRequest]) -> bytes:
    """The JSONL upload (``purpose: batch``); every line ends with a newline."""
    return b"".join(input_line(r) + b"\n" for r in requests)


def _line_result(job_id: str, line: dict[str, Any]) -> LineResult:
    response = line.get("response")
    error = line.get("error")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        if status == 200 and isinstance(body, dict):
            return done(job_id, body)
        if isinstance(status, int):
            return refused(job_id, error_for_status(status, orjson.dumps(body), {}))
    if isinstance(error, dict):
        # No answer, only the batch's word (expired, cancelled, or a reason of its own): the
        # live call decides, with the retries and the verdict every live call gets.
        code = str(error.get("code") or "provider_batch_error")
        message = str(error.get("message") or "the provider's batch did not run this line")
        return not_run(job_id, UpstreamTransientError(message, code=code))
    return not_run(job_id, UpstreamTransientError("a batch result line without a response"))


def read_results(output: bytes, errors: bytes, job_ids: list[str]) -> ReadBack:
    """One result per job of the batch, from the output file then the error file."""
    wanted = set(job_ids)
    back = ReadBack()
    for data in (output, errors):
        for line in result_lines(data):
            job_id = line.get("custom_id")
            if not isinstance(job_id, str) or job_id not in wanted or job_id in back.results:
                back.strays += 1
                continue
            back.results[job_id] = _line_result(job_id, line)
    back.results = complete(back.results, job_ids)
    return back
