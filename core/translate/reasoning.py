"""``reasoning_effort`` ↔ Gemini ``thinkingConfig``.

OpenAI names effort levels; Gemini 2.5 takes a token budget and Gemini 3 a level as well as a
budget (kept for compatibility). The request translator does not know which Gemini model will
answer, so effort goes out as a budget every thinking model accepts, using the budgets Google's
own OpenAI-compatible endpoint documents (low 1K, medium 8K, high 24K, none 0). Coming back,
a budget maps to the level whose budget range holds it.
"""

from __future__ import annotations

from anygate.core.translate.common import Fields
from anygate.core.translate.errors import untranslatable

EFFORT_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}
_LEVELS = {"MINIMAL": "minimal", "LOW": "low", "MEDIUM": "medium", "HIGH": "high", "XHIGH": "xhigh"}


def effort_to_thinking(effort: str, param: str) -> dict[str, int]:
    budget = EFFORT_BUDGETS.get(effort)
    if budget is None:
        raise untranslatable(param, f"{effort!r} has no Gemini thinking budget")
    return {"thinkingBudget": budget}


def budget_to_effort(budget: int) -> str | None:
    """-1 is Gemini's "think as needed", which is what leaving the effort unset means."""
    if budget < 0:
        return None
    if budget == 0:
        return "none"
    if budget <= EFFORT_BUDGETS["low"]:
        return "low"
    if budget <= EFFORT_BUDGETS["medium"]:
        return "medium"
    return "high"


def thinking_to_effort(thinking: Fields) -> str | None:
    thinking.reject_unknown(
        frozenset({"thinkingBudget", "thinkingLevel", "includeThoughts"}), "OpenAI reasoning"
    )
    if thinking.boolean("includeThoughts"):
        raise untranslatable(
            thinking.path("includeThoughts"), "OpenAI chat completions return no thought summaries"
        )
    level = thinking.string("thinkingLevel")
    if level is not None and level.upper() != "THINKING_LEVEL_UNSPECIFIED":
        effort = _LEVELS.get(level.upper())
        if effort is None:
            raise untranslatable(thinking.path("thinkingLevel"), f"unknown level {level!r}")
        return effort
    budget = thinking.integer("thinkingBudget")
    return None if budget is None else budget_to_effort(budget)
