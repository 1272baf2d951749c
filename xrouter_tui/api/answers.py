"""Reading the router's answers: one data line of a stream, or a whole completion.

The client reads them to yield events; the proxy reads the stream it passes on, on the side,
to keep the answer in the history. Both must read a router's answer the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from xrouter_tui import safe_json
from xrouter_tui.api.errors import RouterError
from xrouter_tui.api.events import Usage
from xrouter_tui.payments import Receipt, SignedPayment
from xrouter_tui.safe_text import one_line

__all__ = ["Chunk", "Completion", "error_text", "read_chunk", "read_completion", "read_usage"]

ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one data line of a stream carries; an `error` means the router gave up mid-answer."""

    text: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: Any = None


def read_chunk(data: str) -> Chunk | None:
    """One `data:` line's JSON as a `Chunk`, or None when it cannot be read (one bad line must
    not cost the whole paid answer: the caller skips it and counts it)."""
    try:
        document = safe_json.loads(data)
        error = document.get("error")
        choices = document.get("choices")
        usage = document.get("usage")
    except (ValueError, AttributeError):
        return None
    if error:
        return Chunk(error=error)
    text = thought = finish_reason = None
    if choices:
        try:
            choice = choices[0]
            delta = choice.get("delta") or choice.get("message") or {}
            text = delta.get("content")
            thought = delta.get("reasoning") or delta.get("reasoning_content")
            finish_reason = choice.get("finish_reason")
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
    return Chunk(text, thought, finish_reason, read_usage(usage) if usage else None)


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole (non-streamed) answer."""

    text: str
    model: str
    finish_reason: str | None
    usage: Usage | None
    reasoning: str = ""
    payment: SignedPayment | None = None
    receipt: Receipt | None = None


def read_completion(document: Any, model: str) -> Completion:
    """`choices[0].message.content`, or a top-level `content` as some of X-Router's docs show."""
    if not isinstance(document, dict):
        raise RouterError("The router's answer is not a JSON object.")
    if document.get("error"):
        raise RouterError(f"The router reported an error: {error_text(document['error'])}.")
    text = document.get("content")
    reasoning = ""
    finish_reason = None
    choices = document.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message") or {}
        if isinstance(message, dict):
            text = message.get("content", text)
            reasoning = message.get("reasoning") or message.get("reasoning_content") or ""
        finish_reason = choices[0].get("finish_reason")
    if not isinstance(text, str):
        raise RouterError("The router's answer has no text (choices[0].message.content).")
    usage = document.get("usage")
    return Completion(
        text=text,
        model=str(document.get("model") or model),
        finish_reason=finish_reason if isinstance(finish_reason, str) else None,
        usage=read_usage(usage) if isinstance(usage, dict) else None,
        reasoning=reasoning if isinstance(reasoning, str) else "",
    )


def read_usage(usage: Any) -> Usage | None:
    """Token counts from a `usage` object, or None when they cannot be read."""
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or prompt + completion)
    except (AttributeError, TypeError, ValueError):
        return None
    return Usage(prompt, completion, total)


def error_text(error: Any) -> str:
    """The readable part of an error: its message, else its code or type, kept short."""
    if isinstance(error, dict):
        for key in ("message", "error", "detail", "code", "type"):
            if error.get(key):
                return error_text(error[key])
        return one_line(json.dumps(error), ERROR_TEXT_LIMIT)
    # Shown on terminals: one safe line, whatever the router put in it.
    return one_line(str(error), ERROR_TEXT_LIMIT).rstrip(".")
