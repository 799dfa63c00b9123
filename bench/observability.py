"""What observability costs: scenario (c) of ``run.py`` with metrics and the access log off,
on (the defaults), and on with tracing, side by side in one run.

    python bench/observability.py            # 3 interleaved repetitions (~3 min)
    python bench/observability.py --reps 5   # steadier ratios (~5 min)
    python bench/observability.py --quick    # shorter measurements (~1.5 min)

docs/performance.md: metrics and the access log may cost at most 5 % of scenario (c)'s
throughput with tracing off; the cost with tracing on is reported, not bounded. One
redis-server (AOF everysec, as ``run.py``) and one mock provider serve three stacks, each its
own namespace, API process and worker process (concurrency 64), that differ only in this:

- ``bare``: ``metrics.enabled: false`` and ``logging.access_log: false``;
- ``observed``: the production defaults: metrics on, an access-log line per request;
- ``traced``: ``observed`` plus OpenTelemetry traces (docs/tracing.md), every request sampled
  (``OTEL_TRACES_SAMPLER=always_on``), exported over OTLP/HTTP to a local sink that answers 200
  and keeps nothing (``otlp_sink.py``): the processes pay for their spans, not for a collector.

Each repetition measures ``/v1/chat/completions`` at 64 keep-alive connections (wrk),
non-streamed then streamed (20 chunks), in every configuration back to back, the order
alternating from one repetition to the next so that a slow patch of the shared machine hits all
three alike. Prints medians (min to max), the ratio to ``bare``, both of the medians and as the
median of each repetition's own ratio (the steadier one when the machine's load drifts), the
verdict on the 5 % target, and writes ``bench/results/observability-<day>[-HHMMSS].json``.
Needs ``wrk`` like ``run.py``, and the ``anygate[otel]`` extra for ``traced``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import click
import redis
import report
import scenarios
from loadgen import wrk
from otlp_sink import OtlpSink
from scenarios import CHAT_PATH, PLAIN, STREAMED
from stack import KEY, POOL, Stack

from anygate.config import AnygateConfig
from anygate.ops.embedded_redis import EmbeddedRedis
from anygate.ops.processes import free_port, wait_until
from anygate.telemetry import tracing

HERE = Path(__file__).resolve().parent
SETTLE_S = 1.0
TARGET_PCT = 5.0
"""docs/performance.md: metrics + access log cost at most this share of (c)'s throughput."""
CONFIGS = ("bare", "observed", "traced")
RATIOS = (("observed", "bare"), ("traced", "bare"), ("traced", "observed"))
KINDS = {"plain": PLAIN, "stream": STREAMED}
FIGURES = [
    ("plain_rps", "(c) non-streamed req/s, 64 conns", "req/s"),
    ("plain_p50_ms", "(c) non-streamed latency p50", "ms"),
    ("plain_p99_ms", "(c) non-streamed latency p99", "ms"),
    ("stream_rps", "(c) streamed resp/s, 64 conns", "resp/s"),
    ("stream_p50_ms", "(c) streamed latency p50 (whole stream)", "ms"),
    ("stream_p99_ms", "(c) streamed latency p99 (whole stream)", "ms"),
]
ACCESS_EVENT = "http request"
"""The access log's event (``api/access_log.py``): one line per request."""


def has_metrics_block() -> bool:
    """The ``metrics`` config block (``metrics.enabled``) may be younger than this script: on a
    tree without it, metrics have no switch and ``bare`` turns off the access log only."""
    return "metrics" in AnygateConfig.model_fields


def settings(config: str) -> dict[str, Any]:
    """Config blocks laid over ``stack.config_tree``'s: ``bare`` turns both off, the others keep
    the defaults (their values are asserted, not assumed: see ``_defaults_hold``)."""
    if config != "bare":
        return {}
    off: dict[str, Any] = {"logging": {"access_log": False}}
    if has_metrics_block():
        off["metrics"] = {"enabled": False}
    return off


def _defaults_hold() -> None:
    """``observed`` means the production defaults; refuse to call it that if they moved."""
    defaults = AnygateConfig()
    log = defaults.logging
    on = log.access_log and log.access_log_sample == 1.0
    if has_metrics_block():
        on = on and bool(getattr(defaults, "metrics").enabled)  # noqa: B009 - may be absent
    if not on:
        raise click.ClickException("the defaults no longer turn metrics and the access log on")


def tracing_env(endpoint: str) -> dict[str, str]:
    """The SDK's own variables (docs/tracing.md#enabling), for the API and the worker alike."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_SERVICE_NAME": "anygate-bench",
    }


def access_lines(stack: Stack) -> int:
    """Access-log lines the stack's API has written so far (its log file)."""
    log = stack.work / f"api-{stack.label}.log"
    with log.open("rb") as f:
        return sum(1 for line in f if ACCESS_EVENT.encode() in line)


def _check(stacks: dict[str, Stack], sink: OtlpSink) -> None:
    """After the warm-up, each configuration is what it claims to be, or nothing is timed: an
    access log in all but ``bare``, spans from ``traced`` (the only one told where to send them)."""
    for config, stack in stacks.items():
        lines = access_lines(stack)
        if (lines > 0) != (config != "bare"):
            raise RuntimeError(f"{config}: {lines} access-log lines after the warm-up")
    wait_until(
        lambda: None if sink.counts().get("posts /v1/traces") else "none yet",
        what="the traced stack's first span export",
        watch=stacks["traced"].procs,
        timeout=15,
    )


def _measure(stack: Stack, kind: str, seconds: float, threads: int, work: Path) -> dict[str, Any]:
    return wrk(
        stack.api_url + CHAT_PATH,
        KINDS[kind],
        KEY,
        conns=64,
        seconds=seconds,
        threads=threads,
        work=work,
    )


def _aggregate(samples: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, Any]]:
    return report.side_by_side(samples, list(FIGURES), RATIOS)


def _table(figures: dict[str, dict[str, Any]]) -> str:
    rows = [
        "| figure | bare | observed | traced | observed ÷ bare | traced ÷ bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label, unit in FIGURES:
        f = figures[key]
        cells = []
        for config in CONFIGS:
            cells.append(report.median_cell(f[config], unit))
        for top, bottom in RATIOS[:2]:
            r = f[f"{top}_over_{bottom}"]
            cells.append(f"{r['of_medians']:.3f} / {r['paired_median']:.3f}")
        rows.append(f"| {label} | {' | '.join(cells)} |")
    rows.append("")
    rows.append("Ratios: of the medians / median of the paired repetitions.")
    return "\n".join(rows)


def cost_pct(figures: dict[str, dict[str, Any]], key: str, top: str, bottom: str) -> float:
    """Throughput lost going from ``bottom`` to ``top``, in % (paired ratios: the steadier)."""
    return (1 - float(figures[key][f"{top}_over_{bottom}"]["paired_median"])) * 100


def verdict(figures: dict[str, dict[str, Any]]) -> tuple[list[str], bool]:
    cost = cost_pct(figures, "plain_rps", "observed", "bare")
    met = cost <= TARGET_PCT
    streamed = cost_pct(figures, "stream_rps", "observed", "bare")
    traced = cost_pct(figures, "plain_rps", "traced", "bare")
    traced_streamed = cost_pct(figures, "stream_rps", "traced", "bare")
    over = cost_pct(figures, "plain_rps", "traced", "observed")
    lines = [
        f"metrics + access log cost {cost:.1f} % of throughput (target ≤ {TARGET_PCT:g} %): "
        f"{'met' if met else 'MISSED'}; streamed {streamed:.1f} %",
        f"with tracing on (every request sampled, exported to a local sink): {traced:.1f} % of "
        f"throughput ({over:.1f} % over observed); streamed {traced_streamed:.1f} %",
    ]
    return lines, met


def _results_path() -> Path:
    directory = HERE / "results"
    directory.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    path = directory / f"observability-{day}.json"
    if path.exists():
        path = directory / f"observability-{day}-{time.strftime('%H%M%S', time.gmtime())}.json"
    return path


def _git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " (dirty)" if git("status", "--porcelain") else ""
    )


class Collector:
    """Every measurement: its figures per configuration, its raw record, wrk's counts."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = {c: defaultdict(list) for c in CONFIGS}
        self.runs: list[dict[str, Any]] = []
        self.errors: dict[str, int] = dict.fromkeys(CONFIGS, 0)
        self.requests: dict[str, int] = dict.fromkeys(CONFIGS, 0)

    def add(self, rep: int, config: str, kind: str, raw: dict[str, Any]) -> None:
        self.runs.append({"rep": rep, "config": config, "kind": kind, **raw})
        self.errors[config] += raw["errors"]
        self.requests[config] += raw["requests"]
        for figure in ("rps", "p50_ms", "p99_ms"):
            self.samples[config][f"{kind}_{figure}"].append(raw[figure])
        print(
            f"[observability] rep {rep + 1} {kind} {config}: {raw['rps']:,.0f}/s "
            f"p50 {raw['p50_ms']:.2f} ms p99 {raw['p99_ms']:.2f} ms, {raw['errors']} errors",
            flush=True,
        )


def _start(stacks: dict[str, Stack]) -> None:
    """One mock for all three (started by the first stack, so stopped last); then each
    stack's API and its worker (concurrency 64, as ``run.py``'s scenario c)."""
    first = stacks[CONFIGS[0]]
    first.start_mock(free_port(), "--request-log-size", "100")
    for stack in stacks.values():
        stack.mock_port = first.mock_port
        stack.start_api(free_port())
        stack.start_worker(POOL, 64)


def _repetitions(
    stacks: dict[str, Stack], c: Collector, reps: int, seconds: float, threads: int, work: Path
) -> None:
    """Per repetition and kind, the three configurations back to back, in alternating order."""
    for rep in range(reps):
        order = list(CONFIGS) if rep % 2 == 0 else list(reversed(CONFIGS))
        for kind in KINDS:
            for config in order:
                time.sleep(SETTLE_S)
                c.add(rep, config, kind, _measure(stacks[config], kind, seconds, threads, work))


def _document(figures: dict[str, dict[str, Any]], c: Collector, **parts: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "observability_cost_pct": cost_pct(figures, "plain_rps", "observed", "bare"),
        "observability_cost_stream_pct": cost_pct(figures, "stream_rps", "observed", "bare"),
        "target_pct": TARGET_PCT,
        "met": cost_pct(figures, "plain_rps", "observed", "bare") <= TARGET_PCT,
        "tracing_cost_pct": cost_pct(figures, "plain_rps", "traced", "bare"),
        "tracing_cost_stream_pct": cost_pct(figures, "stream_rps", "traced", "bare"),
    }
    for key, _label, _unit in FIGURES:
        summary[key] = {config: figures[key][config]["median"] for config in CONFIGS} | {
            f"{t}_over_{b}": figures[key][f"{t}_over_{b}"]["paired_median"] for t, b in RATIOS
        }
    checks = {"wrk_requests": c.requests, "wrk_errors": c.errors, **parts.pop("checks")}
    return {"summary": summary, "figures": figures, "checks": checks, **parts, "runs": c.runs}


@click.command()
@click.option("--quick", is_flag=True, help="Shorter measurements.")
@click.option("--reps", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--seconds", type=float, help="wrk duration per configuration and kind [8; quick 2]")
@click.option("--wrk-threads", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="[bench/results/observability-…]")
def main(**o: Any) -> None:
    """Observability's cost on scenario (c): bare, observed, traced, interleaved; table and
    JSON."""
    if not tracing.installed():
        raise click.ClickException("the traced configuration needs: pip install 'anygate[otel]'")
    _defaults_hold()
    quick = o["quick"]
    seconds, threads = o["seconds"] or (2 if quick else 8), o["wrk_threads"]
    c = Collector()
    t_start = time.time()
    with (
        tempfile.TemporaryDirectory(prefix="anygate-observability-") as tmp,
        OtlpSink() as sink,
    ):
        work = Path(tmp)
        with EmbeddedRedis(work / "redis", aof=True) as server:
            env = {"traced": tracing_env(sink.endpoint)}
            stacks = {
                config: Stack(
                    server.url,
                    f"obs-{config}",
                    work,
                    settings=settings(config),
                    env=env.get(config, {}),
                    label=config,
                )
                for config in CONFIGS
            }
            try:
                _start(stacks)
                smoke = {config: scenarios.smoke(stack) for config, stack in stacks.items()}
                for stack in stacks.values():
                    scenarios.warm_up(stack, work)
                _check(stacks, sink)
                _repetitions(stacks, c, o["reps"], seconds, threads, work)
                time.sleep(SETTLE_S)
                logged = {config: access_lines(stack) for config, stack in stacks.items()}
                exported = sink.counts()
                with redis.Redis.from_url(server.url) as client:
                    redis_version = client.info("server")["redis_version"]
            except Exception:
                for stack in stacks.values():
                    for proc in stack.procs:
                        print(f"--- {proc.name} log (tail) ---\n{proc.log_tail()}", flush=True)
                raise
            finally:
                for config in reversed(CONFIGS):  # the shared mock, in the first, stops last
                    stacks[config].close()
    figures = _aggregate(c.samples)
    lines, _met = verdict(figures)
    document = _document(
        figures,
        c,
        checks={
            "smoke": smoke,
            "metrics_switch": has_metrics_block(),
            "access_log_lines": logged,
            "otlp_sink": exported,
        },
        machine={
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "redis": redis_version,
            "platform": platform.platform(),
        },
        meta={
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
            "wall_s": round(time.time() - t_start, 1),
            "commit": _git_state(),
            "reps": o["reps"],
            "quick": quick,
            "seconds": seconds,
            "wrk_threads": threads,
            "settings": {config: settings(config) for config in CONFIGS},
            "tracing_env": tracing_env("http://127.0.0.1:<sink port>"),
        },
    )
    path = o["out"] or _results_path()
    report.write(path, document)
    click.echo("\n" + _table(figures) + "\n")
    for line in lines:
        click.echo(line)
    if not has_metrics_block():
        click.echo("(no `metrics` config block in this tree: bare turns off the access log only)")
    click.echo(
        f"\naccess-log lines {logged}; OTLP sink {exported}; wrk errors {c.errors}\n"
        f"wall {document['meta']['wall_s']} s; written to {path}"
    )


if __name__ == "__main__":
    main()
