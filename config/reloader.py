"""Reload a process's config on SIGHUP, and on a change of its file when asked
(docs/operations.md#reloading-configuration).

One ``ConfigReloader`` per process. A reload reads the file again (with the same environment
overrides), validates it, asks ``plan_reload`` what changed and whether all of it may change
live, and only then hands the new config to the process's ``apply``, which builds every object
it derives from it and swaps them in at once (or raises, keeping the old set). Whatever goes
wrong, the process keeps serving with the config it had: a refused reload is an operator's
mistake to fix, so it is logged at warning, one line per field at fault, never at error.

Signals that arrive while a reload runs are folded into one more reload after it; file events
are debounced by ``watchfiles`` (an editor's write-and-rename is one change), so a reload never
runs twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Literal

import structlog
from watchfiles import awatch

from anygate.config.loader import CONFIG_PATH_ENV, ConfigError, load_config
from anygate.config.model import AnygateConfig
from anygate.config.reload import ConfigState, Problem, ReloadPlan, plan_reload

log = structlog.get_logger(__name__)

Outcome = Literal["applied", "refused", "unchanged"]
Apply = Callable[[AnygateConfig, ReloadPlan], Awaitable[None]]
"""Build everything derived from the new config, then swap it in; raise to refuse."""
Check = Callable[[AnygateConfig], list[Problem]]
"""What only this process refuses (a worker's own pool gone)."""
Observe = Callable[[Outcome | None, ConfigState], None]
"""Told of each outcome (None: the state at start), to keep the process's metrics."""

DEBOUNCE_MS = 400

_EARLY_SIGHUP = threading.Event()


def catch_early_sighup() -> None:
    """Call first thing in a process that will reload: a SIGHUP that arrives before its
    reloader runs (while it starts) is remembered and acted on once it does, instead of ending
    the process, which is what SIGHUP does by default."""
    signal.signal(signal.SIGHUP, lambda _signum, _frame: _EARLY_SIGHUP.set())


class ReloadRefusedError(Exception):
    """Raised by an ``apply`` that cannot build the new set: the fields at fault."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


class ConfigReloader:
    def __init__(
        self,
        state: ConfigState,
        apply: Apply,
        *,
        process: str,
        check: Check | None = None,
        observe: Observe | None = None,
        watch: bool = False,
        environ: Mapping[str, str] | None = None,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        self.state = state
        self._apply = apply
        self._process = process
        self._check = check
        self._observe = observe
        self._environ = os.environ if environ is None else environ
        self._path = self._environ.get(CONFIG_PATH_ENV) or None
        self._target = Path(self._path).absolute() if self._path else None
        self._watch = watch
        self._debounce_ms = debounce_ms
        self._wanted = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        if watch and self._path is None:
            raise ValueError(f"--watch-config needs a config file (${CONFIG_PATH_ENV})")

    def start(self) -> None:
        """Install the SIGHUP handler (and the file watch) on the running loop."""
        if _EARLY_SIGHUP.is_set():
            _EARLY_SIGHUP.clear()
            self.request()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request)
        except (RuntimeError, ValueError):  # not the main thread: an app embedded in a test
            log.warning("config reload on SIGHUP unavailable: not the main thread")
        self._tasks.append(asyncio.create_task(self._serve(), name="config-reload"))
        if self._watch:
            self._tasks.append(asyncio.create_task(self._watch_file(), name="config-watch"))
        if self._observe is not None:
            self._observe(None, self.state)
        log.info(
            "config loaded",
            process=self._process,
            hash=self.state.hash,
            generation=self.state.generation,
            reload="SIGHUP" + (f", on change of {self._path}" if self._watch else ""),
        )

    async def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(RuntimeError, ValueError):  # loop closing: nothing to remove
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def request(self) -> None:
        """Ask for a reload (SIGHUP, a file change): runs after the current one, if any."""
        self._wanted.set()

    async def _serve(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.reload()

    async def _watch_file(self) -> None:
        assert self._target is not None
        target = self._target
        # Editors replace the file (write, rename); Kubernetes swaps a ``..data`` symlink.
        names = {target.name, "..data"}
        async for _changes in awatch(
            target.parent,
            watch_filter=lambda _change, path: Path(path).name in names,
            debounce=self._debounce_ms,
            step=50,
            recursive=False,
            stop_event=self._stopping,
        ):
            self.request()

    async def reload(self) -> Outcome:
        """One reload, start to end; the outcome is logged and observed."""
        try:
            new = load_config(self._path, self._environ)
        except ConfigError as exc:
            return self._refuse([Problem(path, msg) for path, msg in exc.problems])
        plan = plan_reload(self.state.config, new)
        if plan.unchanged:
            log.info(
                "config reload: nothing changed",
                process=self._process,
                hash=self.state.hash,
                generation=self.state.generation,
            )
            return "unchanged"
        problems = list(plan.restart_required)
        if self._check is not None:
            problems += self._check(new)
        if problems:
            return self._refuse(problems)
        try:
            await self._apply(new, plan)
        except ReloadRefusedError as exc:
            return self._refuse(exc.problems)
        except Exception as exc:  # a build step failed: the old set keeps serving
            return self._refuse([Problem("(build)", f"{type(exc).__name__}: {exc}")])
        self.state.advance(new)
        log.info(
            "config reloaded",
            process=self._process,
            hash=self.state.hash,
            generation=self.state.generation,
            sections=list(plan.sections),
            changed=plan.changed_fields(),
        )
        if self._observe is not None:
            self._observe("applied", self.state)
        return "applied"

    def _refuse(self, problems: list[Problem]) -> Outcome:
        for problem in problems:
            log.warning(
                "config reload refused",
                process=self._process,
                field=problem.field,
                problem=problem.message,
                source=self._path or "defaults",
            )
        log.warning(
            "config reload refused: still serving the previous config",
            process=self._process,
            hash=self.state.hash,
            generation=self.state.generation,
            problems=len(problems),
        )
        if self._observe is not None:
            self._observe("refused", self.state)
        return "refused"
