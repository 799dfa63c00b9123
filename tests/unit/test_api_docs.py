"""docs/api.md keeps up with the code: every route the app serves, every header the server
reads or writes, every job event type and every error code the source can raise is named there.

The code side is read from the app's routes and from the source itself (regular expressions
over ``api/``, ``broker/``, ``core/`` and ``workers/``), so a new route, header, event or code
fails here until the reference describes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from anygate.api import create_app
from anygate.api.openapi import document
from anygate.api.openapi_native import EVENT_TYPES
from anygate.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
API_MD = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
SERVER_DIRS = ("api", "broker", "core", "workers", "config")
"""The server's code; the mock provider (ops/mock_provider) plays the upstream, not us."""

_PLACEHOLDER = re.compile(r"{[^}]*}")
_CALL = re.compile(r"\b(GET|POST|PATCH|PUT|DELETE)\s+(/[^\s?`,|]*)")


def normalise(path: str) -> str:
    """``/v1/jobs/{job_id}`` and ``/v1/jobs/{id}`` alike; a Gemini ``{model}:{method}`` (or
    ``{model}:generateContent``) is the one route ``{target}``."""
    path = _PLACEHOLDER.sub("{}", path)
    return re.sub(r"{}:[^/]*$", "{}", path)


def spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def documented_calls(text: str) -> set[tuple[str, str]]:
    return {
        (m.group(1), normalise(m.group(2))) for span in spans(text) for m in _CALL.finditer(span)
    }


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def source_files(*suffixes: str) -> list[Path]:
    return [
        path
        for folder in SERVER_DIRS
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in suffixes
    ]


# --- endpoints -------------------------------------------------------------------------------


def routed_calls() -> set[tuple[str, str]]:
    app = create_app(parse_config({"metrics": {"api_access": "admin"}}))
    return {
        (method, normalise(route.path))
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_the_call_reader_understands_the_table_forms() -> None:
    text = "| `GET /v1/jobs/{id}` | x |\n| `POST /v1beta/models/{model}:generateContent` |"
    assert documented_calls(text) == {("GET", "/v1/jobs/{}"), ("POST", "/v1beta/models/{}")}


def test_every_routed_endpoint_is_in_the_reference() -> None:
    missing = sorted(routed_calls() - documented_calls(API_MD))
    assert not missing, "docs/api.md does not name: " + ", ".join(f"{m} {p}" for m, p in missing)


# --- headers ---------------------------------------------------------------------------------

_HEADER_READS = re.compile(r"""headers(?:\.get\(|\[)\s*["']([A-Za-z][A-Za-z0-9-]*)["']""")
_CUSTOM = re.compile(r"""["'](x-[a-z0-9-]+)["']""")


def code_headers() -> set[str]:
    """Headers the server reads (``headers.get``/``headers[...]``), every ``x-`` header the
    server names, and every header ``/openapi.json`` documents."""
    found: set[str] = set()
    for path in source_files(".py"):
        text = path.read_text(encoding="utf-8")
        found |= {m.lower() for m in _HEADER_READS.findall(text)}
        found |= set(_CUSTOM.findall(text))
    doc = document(parse_config({}))
    components = doc["components"]
    found |= {p["name"].lower() for p in components["parameters"].values() if p["in"] == "header"}
    for item in doc["paths"].values():
        for op in item.values():
            for answer in op["responses"].values():
                found |= {name.lower() for name in answer.get("headers", {})}
    for answer in components["responses"].values():
        found |= {name.lower() for name in answer.get("headers", {})}
    return found


def test_every_header_is_in_the_headers_table() -> None:
    table = section(API_MD, "Headers").lower()
    named = {word for span in spans(table) for word in re.findall(r"[a-z0-9-]+", span)}
    missing = sorted(code_headers() - named)
    assert not missing, f"docs/api.md#headers does not name: {missing}"


# --- events ----------------------------------------------------------------------------------


def test_every_job_event_type_is_in_the_events_table() -> None:
    table = API_MD[API_MD.index("### Job events (SSE)") :]
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE))
    missing = sorted(set(EVENT_TYPES) - rows)
    assert not missing, f"docs/api.md#job-events-sse has no row for: {missing}"


def test_the_event_types_are_the_ones_the_scripts_record() -> None:
    """``EVENT_TYPES`` (what /openapi.json and this test rely on) against the scripts' own
    ``record``/``emit`` calls (their type argument may be a Lua ``a and 'x' or 'y'``), the
    ``queued`` event the log's reader adds, and the chunks the worker's relay appends."""
    recorded = {"chunk"}  # workers/chunk_relay.py: broker.append(job, "chunk", ...)
    # the implicit first event, never stored: the log's reader adds it (JobQueue.events_after)
    reader = (ROOT / "broker" / "job_queue.py").read_text(encoding="utf-8")
    recorded |= set(re.findall(r'JobEvent\(QUEUED_EVENT_ID_TEXT, "([a-z_]+)"', reader))
    for path in (ROOT / "broker" / "lua").glob("*.lua"):
        text = path.read_text(encoding="utf-8")
        for kind in re.findall(r"(?:record|emit)\(prefix, job_id, ([^,]+),", text):
            recorded |= set(re.findall(r"'([a-z_]+)'", kind))
        recorded |= set(re.findall(r"'t', '([a-z_]+)'", text))
    assert recorded == set(EVENT_TYPES)


# --- error codes -----------------------------------------------------------------------------

CODE_PATTERNS = (
    re.compile(r"""\b(?:default_)?code\s*=\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(
        r"""\bcode\s*=\s*["'][a-z_]+["']\s+if\s+[^\n]*?\s+else\s+["']([a-z][a-z0-9_]*)["']"""
    ),
    re.compile(r"""["']code["']\s*:\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""\bcode["')]*\s+or\s+["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""_refuse\(\s*scope,\s*send,\s*\d+,\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""\.cancel\([^()]*?reason\s*=\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""\bDEFAULT_REASON\s*=\s*["']([a-z][a-z0-9_]*)["']"""),
    re.compile(r"""\bRejected\(\s*[^,()]+,\s*[^,()]+,\s*["']([a-z][a-z0-9_]*)["']"""),
)
"""How the source spells an error code: a ``code=`` argument or class default (also the
branches of a conditional one, and a fallback after ``or``), a ``"code":`` entry, the request
limits' refusals, a cancellation's reason (the cancelled job's ``code``) and a batch line's
``Rejected`` code (its error-file line)."""
_CONSTANT = re.compile(r"""\b(?:default_)?code\s*=\s*([A-Z][A-Z0-9_]*)\b""")


def codes_in(text: str) -> set[str]:
    found = {m for pattern in CODE_PATTERNS for m in pattern.findall(text)}
    for name in _CONSTANT.findall(text):  # code=UNTRANSLATABLE, defined in the same module
        value = re.search(rf"""^{name}\s*=\s*["']([a-z][a-z0-9_]*)["']""", text, re.MULTILINE)
        if value is not None:
            found.add(value.group(1))
    return found


def test_the_code_reader_finds_each_spelling() -> None:
    text = "\n".join(
        [
            'raise NotFoundError("x", code="job_not_found")',
            '    default_code = "queue_full"',
            'code="circuit_open" if a else "deployment_cooling_down",',
            '"code": error.get("code") or "stream_interrupted",',
            "await _refuse(scope, send, 431, \"headers_too_large\", 'm')",
            "error = {code = 'max_attempts_exceeded'}",
            'UNTRANSLATABLE = "untranslatable_field"',
            "default_code = UNTRANSLATABLE",
            'self.gw.broker.cancel(self.job.tenant, self.job_id, reason="client_disconnected")',
            'return Rejected(line, None, "invalid_json", "not valid JSON")',
        ]
    )
    assert codes_in(text) == {
        "job_not_found",
        "queue_full",
        "circuit_open",
        "deployment_cooling_down",
        "stream_interrupted",
        "headers_too_large",
        "max_attempts_exceeded",
        "untranslatable_field",
        "client_disconnected",
        "invalid_json",
    }


def source_codes() -> dict[str, str]:
    """Each code the server's source can answer or store, with a file that spells it."""
    found: dict[str, str] = {}
    for path in source_files(".py", ".lua"):
        for code in codes_in(path.read_text(encoding="utf-8")):
            found.setdefault(code, str(path.relative_to(ROOT)))
    return found


def test_every_error_code_in_the_source_is_in_the_error_codes_section() -> None:
    table = section(API_MD, "Error codes")
    named = set(spans(table))
    missing = {code: where for code, where in source_codes().items() if code not in named}
    assert len(source_codes()) > 40  # the reader still finds the codes
    assert not missing, f"docs/api.md#error-codes does not name: {missing}"
