"""Drive the mock provider's ``/_mock/`` control API from tests."""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_SETTINGS = {"latency_ms": 0, "chunk_count": 8, "chunk_delay_ms": 0}


class MockControl:
    def __init__(self, url: str) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=5)

    def close(self) -> None:
        self._http.close()

    def reset(self) -> None:
        """Start settings, no faults, an empty log and nothing charged to any rate limit."""
        self._http.post("/_mock/reset").raise_for_status()
        self.settings(**DEFAULT_SETTINGS)

    def settings(self, **changes: Any) -> None:
        self._http.post("/_mock/settings", json=changes).raise_for_status()

    def set_rate_limits(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        window_s: float = 60.0,
        *,
        per_model: bool = False,
    ) -> None:
        """Replace all rate limits at once (None: unlimited); what was charged still counts."""
        self.settings(
            rate_limit_rpm=rpm,
            rate_limit_tpm=tpm,
            rate_limit_window_s=window_s,
            rate_limit_per_model=per_model,
        )

    def fault(self, **rule: Any) -> None:
        self._http.post("/_mock/faults", json=[rule]).raise_for_status()

    def clear_faults(self) -> None:
        """End every fault rule now (the end of a storm)."""
        self._http.delete("/_mock/faults").raise_for_status()

    def batch_fault(self, **rule: Any) -> None:
        """A fault for the provider batches created from now on (``/_mock/batch_faults``)."""
        self._http.post("/_mock/batch_faults", json=[rule]).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._http.get("/_mock/requests").json()["data"]
        return data
