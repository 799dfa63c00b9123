"""Fold streamed ``chat.completion.chunk`` objects into the ``chat.completion`` they add up to.

A streamed job's result is this fold, so polling a job gives the same shape whether the worker
streamed or not; pure so that it is tested against recorded chunk sequences.
"""

from __future__ import annotations

from typing import Any


def _merge_tool_calls(target: list[dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    for delta in deltas:
        index = int(delta.get("index", len(target)))
        while len(target) <= index:
            target.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        call = target[index]
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        fn = delta.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            call["function"]["arguments"] += fn["arguments"]


def _merge_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    if delta.get("role"):
        message["role"] = delta["role"]
    if delta.get("content") is not None:
        message["content"] = (message["content"] or "") + delta["content"]
    if delta.get("refusal") is not None:
        message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
    if delta.get("tool_calls"):
        _merge_tool_calls(message.setdefault("tool_calls", []), delta["tool_calls"])


def assemble_chat_completion(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    choices: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] | None = None
    head: dict[str, Any] = {}
    for chunk in chunks:
        if not head and chunk.get("id"):
            head = chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for ch in chunk.get("choices") or ():
            index = int(ch.get("index", 0))
            choice = choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None},
                    "finish_reason": None,
                    "logprobs": None,
                },
            )
            _merge_delta(choice["message"], ch.get("delta") or {})
            if ch.get("finish_reason"):
                choice["finish_reason"] = ch["finish_reason"]
            if ch.get("logprobs"):
                choice["logprobs"] = ch["logprobs"]
    result: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if head.get("system_fingerprint"):
        result["system_fingerprint"] = head["system_fingerprint"]
    if head.get("service_tier"):
        result["service_tier"] = head["service_tier"]
    if usage is not None:
        result["usage"] = usage
    return result
