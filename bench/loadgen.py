"""Load generators: wrk for rates and latency percentiles, a raw-socket client for first chunks.

wrk measures to the last byte only, so the time to the first SSE chunk comes from a minimal
HTTP/1.1 client on a plain socket. The same client times the direct and the gateway call, so its
own cost cancels out of the difference; being a few dozen lines of blocking socket code, that
cost is also small and steady, which keeps the noise of the difference low.
"""

from __future__ import annotations

import json
import re
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

WRK_SCRIPT = """\
local f = assert(io.open(os.getenv("WRK_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p99_us":%d}\\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50.0), latency:percentile(99.0)))
end
"""


def wrk(
    url: str, body: bytes, key: str, *, conns: int, seconds: float, threads: int, work: Path
) -> dict[str, Any]:
    """Closed-loop keep-alive load; rate, p50/p99 and every kind of error wrk counts."""
    script, body_file = work / "wrk_post.lua", work / f"wrk_body_{abs(hash(body))}.json"
    script.write_text(WRK_SCRIPT)
    body_file.write_bytes(body)
    command = [
        "wrk",
        f"-t{min(threads, conns)}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        "-H",
        f"Authorization: Bearer {key}",
        url,
    ]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        env={"WRK_BODY_FILE": str(body_file), "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    found = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.MULTILINE)
    if not found:
        raise RuntimeError(
            f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}"
        )
    data = json.loads(found.group(1))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "requests": data["requests"],
        "errors": data["errors"] + data["non2xx"],
    }


class RawClient:
    """One keep-alive HTTP/1.1 connection; ``post`` returns (ms to first ``data:``, ms to end)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.address = (host, port)
        self.key = key
        self.sock: socket.socket | None = None
        self.buf = bytearray()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf.clear()
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _fill(self, sock: socket.socket) -> None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection mid-response")
        self.buf += data

    def _until(self, sock: socket.socket, marker: bytes, start: int) -> int:
        while (at := self.buf.find(marker, start)) < 0:
            self._fill(sock)
        return at

    def post(self, path: str, body: bytes) -> tuple[float, float]:
        sock = self._connect()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.address[0]}:{self.address[1]}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        t0 = time.perf_counter()
        sock.sendall(head + body)
        end = self._until(sock, b"\r\n\r\n", 0)
        headers = bytes(self.buf[:end]).decode("latin-1").lower()
        if not headers.startswith("http/1.1 200"):
            raise RuntimeError(f"{path}: {headers.splitlines()[0]}")
        pos, first = end + 4, 0.0
        if "transfer-encoding: chunked" in headers:
            while True:
                line_end = self._until(sock, b"\r\n", pos)
                size = int(bytes(self.buf[pos:line_end]).split(b";")[0], 16)
                pos = line_end + 2
                while len(self.buf) < pos + size + 2:
                    self._fill(sock)
                if not first and b"data:" in self.buf[pos : pos + size]:
                    first = time.perf_counter()
                pos += size + 2
                if size == 0:
                    break
        else:
            found = re.search(r"content-length: *(\d+)", headers)
            if found is None:
                raise RuntimeError(f"{path}: neither chunked nor a content-length")
            length = int(found.group(1))
            while len(self.buf) < pos + length:
                self._fill(sock)
            first, pos = time.perf_counter(), pos + length
        done = time.perf_counter()
        first = first or done  # a body without any SSE event: its "first chunk" is its end
        del self.buf[:pos]
        if "connection: close" in headers:
            self.close()
        return (first - t0) * 1000, (done - t0) * 1000


def interleaved_sse(
    direct: tuple[str, int, str], gateway: tuple[str, int, str], body: bytes, key: str, samples: int
) -> dict[str, float]:
    """Alternate direct and gateway streamed calls one by one (c=1); medians of each.

    ``direct``/``gateway`` are (host, port, path). The first tenth of the samples warm up the
    connections and are dropped.
    """
    warm = max(5, samples // 10)
    ends = {"direct": direct, "gateway": gateway}
    clients = {name: RawClient(host, port, key) for name, (host, port, _) in ends.items()}
    paths = {name: path for name, (_, _, path) in ends.items()}
    times: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
    try:
        for i in range(samples + warm):
            order = ("direct", "gateway") if i % 2 else ("gateway", "direct")
            for name in order:
                result = clients[name].post(paths[name], body)
                if i >= warm:
                    times[name].append(result)
    finally:
        for client in clients.values():
            client.close()
    out: dict[str, float] = {}
    for name, pairs in times.items():
        out[f"{name}_ttfc_p50_ms"] = statistics.median(p[0] for p in pairs)
        out[f"{name}_total_p50_ms"] = statistics.median(p[1] for p in pairs)
    return out
