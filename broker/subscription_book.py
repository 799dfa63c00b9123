"""What one pub/sub connection is subscribed to, as Redis will see it: pure bookkeeping, no I/O.

Any number of in-process listeners share one subscription per channel. Joins and leaves are
only marked here (``touch``); the sender then asks for a ``plan`` once per event-loop turn and
sends one ``SUBSCRIBE`` of every channel that gained its first listener and one ``UNSUBSCRIBE``
of every channel that lost its last, whatever the number of waiters. So a waiter whose channel
is subscribed already costs no command to join, and none to leave until its channel is idle.

Redis confirms each channel of a ``SUBSCRIBE`` with one reply. A channel may be subscribed,
unsubscribed and subscribed again before the first reply arrives, so the book counts the
confirmations still due per channel: a channel is *live* (a listener joining it may read the
job's log at once and miss nothing) only when its last ``SUBSCRIBE`` was confirmed and no
``UNSUBSCRIBE`` followed it. Every reply Redis sends is read by the connection's reader; the
count makes sure none of them is taken for a confirmation it is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

CHUNK = 1000
"""Channels per command: one reply per channel either way, a smaller command is read sooner."""


class SubscriptionBook:
    def __init__(self) -> None:
        self._sent: set[str] = set()
        """Channels whose last command sent (or to be sent on connecting) was SUBSCRIBE."""
        self._due: dict[str, int] = {}
        """Confirmations of SUBSCRIBE still to come, per channel (absent: none)."""
        self._touched: set[str] = set()
        """Channels that gained or lost listeners since the last plan."""

    def touch(self, channel: str) -> None:
        """A channel gained its first listener or lost its last one."""
        self._touched.add(channel)

    @property
    def dirty(self) -> bool:
        return bool(self._touched)

    def live(self, channel: str) -> bool:
        """Subscribed and confirmed: a new listener of it needs no command and no wait."""
        return channel in self._sent and channel not in self._due

    @property
    def subscribed(self) -> frozenset[str]:
        return frozenset(self._sent)

    def plan(self, wanted: Callable[[str], bool]) -> tuple[list[str], list[str]]:
        """(channels to SUBSCRIBE, channels to UNSUBSCRIBE) for what changed since the last
        plan; ``wanted(channel)``: whether the channel has listeners now. Counted as sent:
        the caller sends both, or drops the connection (which subscribes everything sent
        again on connecting, see ``reconnected``)."""
        touched, self._touched = self._touched, set()
        subscribe = [c for c in touched if wanted(c) and c not in self._sent]
        unsubscribe = [c for c in touched if not wanted(c) and c in self._sent]
        for channel in subscribe:
            self._sent.add(channel)
            self._due[channel] = self._due.get(channel, 0) + 1
        self._sent.difference_update(unsubscribe)
        return subscribe, unsubscribe

    def confirmed(self, channel: str) -> bool:
        """Redis confirmed one SUBSCRIBE of ``channel``: True when that makes it live (the
        last confirmation due, and not unsubscribed since)."""
        due = self._due.get(channel, 0)
        if due > 1:
            self._due[channel] = due - 1
            return False
        self._due.pop(channel, None)
        return channel in self._sent

    def reconnected(self) -> list[str]:
        """A new connection: replies due on the old one never come. Returns every channel to
        subscribe on it, each with one confirmation due."""
        self._due = dict.fromkeys(self._sent, 1)
        return sorted(self._sent)


def chunked(channels: Iterable[str], size: int = CHUNK) -> list[list[str]]:
    items = list(channels)
    return [items[i : i + size] for i in range(0, len(items), size)]
