"""The base every configuration section shares: strict (an unknown key is an error, so a typo
never falls back to a default in production) and frozen (a process's configuration is one
value, passed down, never changed in place)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
