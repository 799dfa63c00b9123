"""Worker pools: one per provider, each claiming jobs only when it has a free slot."""

from anygate.workers.runner import run_worker
from anygate.workers.worker import Worker, WorkerSettings

__all__ = ["Worker", "WorkerSettings", "run_worker"]
