"""Finish reasons both ways.

OpenAI has five reasons, Gemini over a dozen, so the Gemini → OpenAI map is many-to-one:
anything that withheld output on policy grounds is ``content_filter``; reasons that are neither a
limit nor a filter (``OTHER``, ``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``, values added
after this table was written, …) are ``stop``, the reason a client treats as "the answer ended".
"""

from __future__ import annotations

GEMINI_TO_OPENAI: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
OPENAI_TO_GEMINI: dict[str, str] = {
    "stop": "STOP",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
}


def openai_finish_reason(gemini: str, *, has_tool_calls: bool) -> str:
    """Gemini ends a function-calling turn with ``STOP``; OpenAI calls that ``tool_calls``."""
    reason = GEMINI_TO_OPENAI.get(gemini.upper(), "stop")
    if reason == "stop" and has_tool_calls:
        return "tool_calls"
    return reason


def gemini_finish_reason(openai: str) -> str:
    return OPENAI_TO_GEMINI.get(openai, "OTHER")
