"""``ops/Dockerfile`` parsed into its stages (``dockerfile-parse``), for the image's tests and
for the manifests' check that pods run as the image's user."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "ops" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)
    """(INSTRUCTION, value), continuation lines joined, comments left out."""

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def stages() -> list[Stage]:
    parser = DockerfileParser(str(DOCKERFILE))
    args = {}
    found: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], " ".join(item["value"].split())
        if instruction == "COMMENT":
            continue
        if instruction == "ARG" and not found and "=" in value:
            key, default = value.split("=", 1)
            args[key] = default
        elif instruction == "FROM":
            words = value.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(base, name))
        elif found:
            found[-1].instructions.append((instruction, value))
    return found


def final_user() -> str:
    users = stages()[-1].values("USER")
    assert users, "the final stage sets no USER: the image would run as root"
    return users[-1]
