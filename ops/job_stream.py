"""A job's event stream drawn as it arrives: ``anygate submit --stream`` (the answer's tokens)
and ``anygate jobs watch`` (state changes too).

A ``retry`` event voids the text of earlier attempts (docs/api.md#job-events-sse). On a
terminal the view is a ``rich.live`` region redrawn in place, so a restart simply clears the
text shown; the finished answer is printed whole when the stream ends. Written to a pipe or a
file, text cannot be taken back: tokens are written as they arrive, and a restart starts a new
line with a notice on stderr (``--wait`` prints the final answer alone; ``--json`` the events).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from anygate.client import AnswerText, JobEvent
from anygate.ops.job_view import TailText, event_line


def event_time(event: JobEvent) -> str:
    """When the event was logged: its stream id's milliseconds, as local time."""
    try:
        ms = int(event.id.partition("-")[0])
    except ValueError:
        return "--:--:--"
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000))


class StreamView:
    """Feed it events (``show``); it draws them, and keeps the answer and the terminal event."""

    def __init__(self, out: Console, err: Console, *, states: bool) -> None:
        self.out = out
        self.err = err
        self.states = states
        """Show state changes (``jobs watch``), not only the text and its restarts."""
        self.answer = AnswerText()
        self.lines: list[Text] = []
        self.terminal: JobEvent | None = None
        self._live: Live | None = None
        self._mid_line = False
        """Plain output: text was written since the last newline."""

    def __enter__(self) -> StreamView:
        if self.out.is_terminal:
            self._live = Live(
                self._frame(),
                console=self.out,
                refresh_per_second=12,
                vertical_overflow="visible",
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._frame(whole=True), refresh=True)
            self._live.stop()
        elif self._mid_line:
            self.out.file.write("\n")
            self.out.file.flush()

    def _frame(self, *, whole: bool = False) -> RenderableType:
        text: RenderableType = (
            Text(self.answer.text) if whole else TailText(self.answer.text, len(self.lines))
        )
        return Group(*self.lines, text) if self.lines else text

    def show(self, events: Iterable[JobEvent]) -> JobEvent | None:
        """Draw every event until the terminal one, which is returned (None: the stream ended
        without one)."""
        for event in events:
            self._one(event)
            if event.terminal:
                self.terminal = event
                break
        return self.terminal

    def _one(self, event: JobEvent) -> None:
        delta = self.answer.feed(event)
        line = event_line(event)
        wanted = line is not None and (self.states or event.type == "retry")
        if self._live is not None:
            if wanted:
                self.lines.append(Text.assemble((f"{event_time(event)}  ", "dim"), line or ""))
            self._live.update(self._frame())
            return
        if wanted:
            self._plain_line(f"{event_time(event)}  {line}", to_err=not self.states)
        if delta is not None:
            if delta.restart and self._mid_line:
                self._newline()
            self.out.file.write(delta.text)
            self.out.file.flush()
            self._mid_line = bool(delta.text) and not delta.text.endswith("\n")

    def _newline(self) -> None:
        self.out.file.write("\n")
        self.out.file.flush()
        self._mid_line = False

    def _plain_line(self, line: str, *, to_err: bool) -> None:
        if self._mid_line:
            self._newline()
        target = self.err if to_err else self.out
        target.file.write(line + "\n")
        target.file.flush()
