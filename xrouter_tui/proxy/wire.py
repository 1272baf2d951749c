"""What OpenAI clients send and expect, turned into what X-Router takes and back.

A chat request becomes X-Router's documented fields only (it validates the body before it
quotes a price, so an unknown field could cost every request a 400); a model list gets the
OpenAI shape with X-Router's prices kept; every error is OpenAI's `{"error": {...}}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from xrouter_tui import safe_json
from xrouter_tui.api import Completion

__all__ = [
    "ProxyError",
    "ProxyRequest",
    "completion_document",
    "completion_events",
    "models_list",
    "read_request",
]

# What X-Router's chat messages may be; OpenAI's newer `developer` role is a system prompt.
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_OUTPUT_TOKENS = 128_000


@dataclass(slots=True)
class ProxyError(Exception):
    """An answer in OpenAI's error shape. `retry` False tells OpenAI's SDKs not to send the
    request again on their own (`x-should-retry`): a retry after a payment pays twice."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    retry: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if self.retry is not None:
            headers["x-should-retry"] = "true" if self.retry else "false"
        return JSONResponse(self.document(), self.status, headers=headers)

    def document(self) -> dict[str, Any]:
        """OpenAI's error JSON; in a stream, a data line holding it ends the answer."""
        error = {"message": self.message, "type": self.type, "param": None, "code": self.code}
        return {"error": error}


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """A chat request as X-Router takes it (`body`), and what the proxy needs to know of it."""

    body: dict[str, Any]
    messages: tuple[dict[str, str], ...]
    model: str
    max_tokens: int
    stream: bool


def read_request(
    raw: bytes, *, model: str, max_tokens: int, temperature: float | None
) -> ProxyRequest:
    """Check an OpenAI chat request and keep what X-Router understands. The defaults are the
    user's settings, for fields the client left out: a client that names no `max_tokens` is
    not charged up front for X-Router's 4096."""
    try:
        document = safe_json.loads(raw)
    except ValueError:
        raise ProxyError(400, "The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise ProxyError(400, "The request body must be a JSON object.")
    for unsupported in ("tools", "functions"):
        if document.get(unsupported):
            raise ProxyError(
                400,
                f"X-Router's chat API takes no {unsupported}: send the request without them.",
                code="unsupported_parameter",
            )
    if document.get("n") not in (None, 1):
        raise ProxyError(400, "X-Router answers one choice per request: n must be 1.")

    messages = tuple(_message(index, m) for index, m in enumerate(_list(document, "messages")))
    chosen = document.get("model") or model
    if not isinstance(chosen, str):
        raise ProxyError(400, "model must be a model id such as anthropic/claude-3.5-sonnet.")
    limit = document.get("max_completion_tokens", document.get("max_tokens"))
    limit = max_tokens if limit is None else limit
    if not _whole(limit) or not 1 <= limit <= MAX_OUTPUT_TOKENS:
        raise ProxyError(400, f"max_tokens must be a whole number from 1 to {MAX_OUTPUT_TOKENS}.")
    stream = document.get("stream", False)
    if not isinstance(stream, bool):
        raise ProxyError(400, "stream must be true or false.")

    body: dict[str, Any] = {"model": chosen, "messages": list(messages), "max_tokens": limit}
    chosen_temperature = document.get("temperature", temperature)
    if chosen_temperature is not None:
        body["temperature"] = chosen_temperature
    body["stream"] = stream
    return ProxyRequest(body, messages, chosen, limit, stream)


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list) or not value:
        raise ProxyError(400, f"{key} must be a non-empty list.")
    return value


def _message(index: int, message: Any) -> dict[str, str]:
    if not isinstance(message, dict):
        raise ProxyError(400, f"messages[{index}] must be an object with role and content.")
    role = _ROLES.get(message.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise ProxyError(
            400,
            f"messages[{index}].role {message.get('role')!r} is not one X-Router takes "
            "(system, user, assistant).",
        )
    return {"role": role, "content": _text(index, message.get("content"))}


def _text(index: int, content: Any) -> str:
    """A message's text: a string, or OpenAI's list of parts when they are all text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ProxyError(
                    400,
                    f"messages[{index}] has a {kind} part: X-Router's chat API takes text only.",
                )
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise ProxyError(400, f"messages[{index}].content must be text.")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def models_list(document: Any) -> dict[str, Any]:
    """The router's models in OpenAI's `{object: "list", data: [...]}` shape, each entry whole
    (X-Router's `pricing`, name and context length stay in it)."""
    if isinstance(document, dict):
        entries = document.get("data", document.get("models"))
    else:
        entries = document
    if not isinstance(entries, list):
        raise ProxyError(502, "The router's model list could not be read.", type="upstream_error")
    models = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        model_id = entry["id"]
        models.append(
            {
                "object": "model",
                "created": 0,
                "owned_by": model_id.split("/", 1)[0] if "/" in model_id else "x-router",
                **entry,
            }
        )
    return {"object": "list", "data": models}


def completion_document(completion: Completion, request: ProxyRequest) -> dict[str, Any]:
    """A whole answer in OpenAI's shape, for a router that answered in another one."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    if completion.reasoning:
        message["reasoning"] = completion.reasoning
    document: dict[str, Any] = {
        "id": f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model or request.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": completion.finish_reason or "stop"}
        ],
    }
    if completion.usage is not None:
        document["usage"] = {
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "total_tokens": completion.usage.total_tokens,
        }
    return document


def completion_events(completion: Completion, request: ProxyRequest) -> bytes:
    """A whole answer as an OpenAI stream, for a router that ignored `stream: true`."""
    whole = completion_document(completion, request)
    common = {k: whole[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    choice = whole["choices"][0]
    chunks = [
        {**common, "choices": [{"index": 0, "delta": choice["message"], "finish_reason": None}]},
        {
            **common,
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
        },
    ]
    if "usage" in whole:
        chunks.append({**common, "choices": [], "usage": whole["usage"]})
    lines = [f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n" for chunk in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()
