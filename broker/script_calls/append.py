"""``append-2.lua``: a running job's events, fenced by the attempt that owns it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from anygate.broker.keys import KeySpace
from anygate.broker.scripts import Arg, Scripts


@dataclass(frozen=True, slots=True)
class AppendKeys:
    job: str
    events: str

    @classmethod
    def of(cls, k: KeySpace, job_id: str) -> AppendKeys:
        return cls(k.job(job_id), k.events(job_id))

    def keys(self) -> list[str]:
        return [self.job, self.events]


@dataclass(frozen=True, slots=True)
class AppendArgs:
    prefix: str
    job_id: str
    attempt: int
    event_type: str
    first_seq: int
    """The first event's number in this attempt (from 1): a repeated call appends nothing twice."""
    data: Sequence[bytes | str]
    """One per event, in order."""

    def argv(self) -> list[Arg]:
        return [self.prefix, self.job_id, self.attempt, self.event_type, self.first_seq, *self.data]


def decode_append(reply: Any) -> int | None:
    """The number of events appended now, or None: the attempt no longer owns the job."""
    if reply is None or reply is False:
        return None
    return int(reply)


async def append(scripts: Scripts, keys: AppendKeys, args: AppendArgs) -> int | None:
    """Besides its keys, the script touches, under the prefix: ``n:<job>`` and
    ``reply:<instance>`` (published)."""
    return decode_append(await scripts.append.call(keys, args))
