"""The worker process of ``queuebench_driver.py``: ``noop_worker.py``'s real ``Worker`` whose
no-op provider call also stamps the harness's marker (``queuebench_protocol.Marker``).

    QB_N=20000 QB_DONE_FILE=/tmp/done.json python bench/queuebench_worker.py CONFIG CONCURRENCY

The marker is stamped inside the provider call, where every other queue of the comparison runs
its job body: the job's outcome is recorded after it, as theirs is. Logging is at WARNING, JSON,
as the harness sets every queue's worker: the two INFO lines a job logs would measure the logger.
"""

from __future__ import annotations

import sys

import uvloop
from noop_worker import RESULT, main
from queuebench_protocol import Marker

from anygate.broker import ClaimedJob
from anygate.ops.logging import configure_logging
from anygate.workers.adapters.base import Account, CallOutcome, ChunkSink


class MarkingAdapter:
    def __init__(self, marker: Marker) -> None:
        self._marker = marker

    async def call(
        self,
        job: ClaimedJob,
        upstream_model: str,
        on_chunk: ChunkSink,
        api_key: str | None = None,
        *,
        account: Account | None = None,
    ) -> CallOutcome:
        self._marker.mark()
        return RESULT

    async def aclose(self) -> None:
        return None


if __name__ == "__main__":
    configure_logging("warning", json=True)
    uvloop.run(main(sys.argv[1], int(sys.argv[2]), adapter=MarkingAdapter(Marker.from_env())))
