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
        self._http.delete("/_mock/faults").raise_for_status()
        self._http.delete("/_mock/requests").raise_for_status()
        self.settings(**DEFAULT_SETTINGS)

    def settings(self, **changes: Any) -> None:
        self._http.post("/_mock/settings", json=changes).raise_for_status()

    def fault(self, **rule: Any) -> None:
        self._http.post("/_mock/faults", json=[rule]).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._http.get("/_mock/requests").json()["data"]
        return data
