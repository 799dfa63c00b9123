"""The image (``ops/Dockerfile``) checked as written. No Docker engine runs where the tests run,
so nothing here builds it: these read its structure (two stages, what the final one holds, its
user and health check) and hold it to the project it packages."""

from __future__ import annotations

import json
import re
import tomllib

from anygate.api.health import ROUTES
from anygate.config import ServerConfig
from tests.deploy.dockerfile import DOCKERIGNORE, ROOT, final_user, stages

BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|cargo|rustc|pip wheel|python3?-dev|"
    r"libc6-dev|git)\b"
)


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_image_is_built_in_one_stage_and_run_from_a_slim_one() -> None:
    build, *_, final = stages()
    assert len(stages()) >= 2
    assert final.base.endswith("-slim") or "slim" in final.base
    assert build.name, "the build stage is named so the final one can copy from it"
    copies = final.values("COPY")
    assert copies, "the final stage takes the installed application from the build stage"
    for copy in copies:
        assert copy.startswith(f"--from={build.name} "), (
            f"final stage copies {copy!r} from the context"
        )


def test_the_final_stage_installs_no_build_tool_and_builds_nothing() -> None:
    final = stages()[-1]
    for command in final.values("RUN"):
        assert not BUILD_TOOLS.search(command), command
        assert "pip install" not in command, "dependencies come built from the build stage"
        assert "apt-get install" not in command, command


def test_the_build_stage_copies_every_package_the_distribution_maps() -> None:
    """pyproject maps each import package onto a top-level folder: one not copied breaks the
    install (the image once missed core/ and telemetry/)."""
    package_dir = _pyproject()["tool"]["setuptools"]["package-dir"]  # type: ignore[index]
    needed = {path.split("/")[0] for path in package_dir.values()}
    copied = {words.split()[0] for words in stages()[0].values("COPY")}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"
    assert {"pyproject.toml", "README.md"} <= {
        part for words in stages()[0].values("COPY") for part in words.split()[:-1]
    }


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    user = final_user()
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert int(uid) != 0


def test_the_health_check_asks_the_default_roles_healthz() -> None:
    final = stages()[-1]
    (check,) = final.values("HEALTHCHECK")
    entrypoint = json.loads(final.values("ENTRYPOINT")[-1])
    command = json.loads(final.values("CMD")[-1])
    scripts = _pyproject()["project"]["scripts"]  # type: ignore[index]
    assert entrypoint == ["anygate"]
    assert "anygate" in scripts
    assert command[0] == "api"
    port = ServerConfig().port  # the CMD gives no --port
    assert "--port" not in command
    assert f"127.0.0.1:{port}/healthz" in check
    assert "/healthz" in {route.path for route in ROUTES}  # type: ignore[attr-defined]
    assert str(port) in final.values("EXPOSE")


def test_dockerignore_keeps_local_state_out_and_lets_the_sources_in() -> None:
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".anygate"} <= patterns
    for words in stages()[0].values("COPY"):
        for source in words.split()[:-1]:
            assert source not in patterns, f"{source} is copied but ignored"
