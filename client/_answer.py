"""Folding a chat job's events into its answer's text (docs/api.md#job-events-sse)."""

from __future__ import annotations

from anygate.client._models import JobEvent, TextDelta


class AnswerText:
    """Folds a chat job's events into its answer's text, as the job API asks: a ``retry`` event
    voids what earlier attempts sent, so chunks of two attempts are never joined."""

    def __init__(self) -> None:
        self.text = ""
        self._restart = False

    def feed(self, event: JobEvent) -> TextDelta | None:
        """The text this event adds (None when it adds none)."""
        if event.type == "retry":
            self.text, self._restart = "", bool(self.text) or self._restart
            return None
        if event.type != "chunk":
            return None
        piece = "".join(
            choice.get("delta", {}).get("content") or ""
            for choice in event.data.get("choices") or []
            if isinstance(choice, dict) and choice.get("index", 0) == 0
        )
        if not piece and not self._restart:
            return None
        delta = TextDelta(piece, restart=self._restart)
        self.text += piece
        self._restart = False
        return delta
