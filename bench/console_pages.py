"""What a console page costs to serve (docs/console.md#what-a-page-costs): each page's time to
answer and its size, beside the admin API's JSON of the same figures, in one run.

    python bench/console_pages.py            # 40 rounds (~1 min)
    python bench/console_pages.py --quick    # 8 rounds

One redis-server (AOF everysec), the mock provider, an API and a worker (concurrency 16). The
bench tenant runs ``--jobs`` chat jobs first, so its usage, its job list and the Overview have
something to show. Then, round after round, every page is fetched once, one request at a time
over one keep-alive connection (a browser's way), in an order that rotates from one round to
the next, so a slow patch of the shared machine hits every page alike. The peer is the admin
API, measured in the same rounds: ``GET /admin/queues`` (the Overview's figures as JSON) and
``GET /admin/tenants/{id}`` with ``GET /admin/usage`` (a tenant page's). Prints each page's
median and p95 in ms, its size, and its median as a ratio to ``/admin/queues``; also the time
to the Overview stream's first fragment. Writes ``bench/results/console-<day>[-HHMMSS].json``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
from report import results_path, write
from stack import KEY, MODEL, POOL, TENANT, Stack

from anygate.api.auth import hash_key
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import free_port

HERE = Path(__file__).resolve().parent
ADMIN_KEY = "sk-bench-admin-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def targets(job_id: str) -> dict[str, tuple[str, bool]]:
    """name → (path, is a console page); the admin API's JSON are the peers."""
    return {
        "overview": ("/ui/", True),
        "tenants": ("/ui/tenants", True),
        "tenant": (f"/ui/tenants/{TENANT}", True),
        "jobs (tenant)": (f"/ui/jobs?tenant={TENANT}", True),
        "job": (f"/ui/jobs/{job_id}", True),
        "batches": ("/ui/batches", True),
        "dead letters": (f"/ui/dead-letters?pool={POOL}", True),
        "config": ("/ui/config", True),
        "admin: queues": ("/admin/queues", False),
        "admin: tenant": (f"/admin/tenants/{TENANT}", False),
        "admin: usage": (f"/admin/usage?tenant={TENANT}", False),
    }


def run_jobs(url: str, count: int) -> str:
    """``count`` chat jobs submitted for the bench tenant; once the last has succeeded, its id."""
    headers = {"authorization": f"Bearer {KEY}"}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}]}
    job_id = ""
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for _ in range(count):
            job = client.post("/v1/jobs", json={"endpoint": "/v1/chat/completions", "body": body})
            job.raise_for_status()
            job_id = job.json()["id"]
        done = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
        if done["status"] != "succeeded":
            raise click.ClickException(f"the last bench job did not succeed: {done}")
    return job_id


def log_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/ui/login")
    token = CSRF.search(form.text)
    assert token, form.text[:300]
    answer = client.post(
        "/ui/login",
        data={"csrf": token.group(1), "key": ADMIN_KEY, "next": "/ui/"},
        headers={"origin": url},
    )
    if answer.status_code != 303:
        raise click.ClickException(f"console login failed: {answer.status_code}")
    return client


def first_fragment_ms(console: httpx.Client) -> float:
    started = time.perf_counter()
    with console.stream("GET", "/ui/overview/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: fragment"):
                return (time.perf_counter() - started) * 1000
    raise click.ClickException("the Overview stream sent no fragment")


def measure(url: str, rounds: int, job_id: str) -> dict[str, dict[str, Any]]:
    pages = targets(job_id)
    samples: dict[str, list[float]] = {name: [] for name in pages}
    sizes: dict[str, int] = {}
    admin_headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    with (
        contextlib.closing(log_in(url)) as console,
        httpx.Client(base_url=url, headers=admin_headers) as admin,
    ):
        names = list(pages)
        for n in range(rounds + 1):  # round 0 warms up and is not counted
            shift = n % len(names)
            for name in names[shift:] + names[:shift]:
                path, is_page = pages[name]
                client = console if is_page else admin
                started = time.perf_counter()
                answer = client.get(path, headers={"accept": "text/html"} if is_page else {})
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise click.ClickException(f"{path}: {answer.status_code}")
                if n:
                    samples[name].append(elapsed)
                sizes[name] = len(answer.content)
        fragment = [first_fragment_ms(console) for _ in range(max(3, rounds // 8))]
    peer = statistics.median(samples["admin: queues"])
    figures: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        ordered = sorted(values)
        median = statistics.median(ordered)
        figures[name] = {
            "path": pages[name][0],
            "median_ms": round(median, 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2),
            "bytes": sizes[name],
            "ratio_to_admin_queues": round(median / peer, 2),
        }
    figures["overview stream: first fragment"] = {
        "path": "/ui/overview/stream",
        "median_ms": round(statistics.median(fragment), 2),
        "p95_ms": round(max(fragment), 2),
        "bytes": None,
        "ratio_to_admin_queues": round(statistics.median(fragment) / peer, 2),
    }
    return figures


def table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| target | median ms | p95 ms | KiB | median ÷ /admin/queues |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in figures.items():
        size = "" if f["bytes"] is None else f"{f['bytes'] / 1024:.1f}"
        rows.append(
            f"| {name} | {f['median_ms']:.1f} | {f['p95_ms']:.1f} | {size} | "
            f"{f['ratio_to_admin_queues']:.2f} |"
        )
    return "\n".join(rows)


@click.command()
@click.option("--rounds", type=int, default=None, help="Rounds of every page (default 40).")
@click.option("--jobs", "job_count", type=int, default=None, help="Jobs first (default 300).")
@click.option("--quick", is_flag=True, help="8 rounds, 40 jobs.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The JSON file.")
def main(rounds: int | None, job_count: int | None, quick: bool, out: Path | None) -> None:
    rounds = rounds or (8 if quick else 40)
    job_count = job_count or (40 if quick else 300)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="anygate-console-bench-") as tmp:
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as server:
            settings = {"admin_api_key_sha256": [hash_key(ADMIN_KEY)]}
            with Stack(server.url, "console", work, settings=settings).running() as stack:
                stack.start_mock(free_port())
                stack.start_api(free_port())
                stack.start_worker(POOL, 16)
                job_id = run_jobs(stack.api_url, job_count)
                figures = measure(stack.api_url, rounds, job_id)
    print(table(figures))
    document = {
        "bench": "console_pages",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rounds": rounds,
        "jobs": job_count,
        "figures": figures,
    }
    path = out or results_path(HERE / "results", "console-")
    write(path, document)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
