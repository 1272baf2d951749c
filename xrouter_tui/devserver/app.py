"""The dev server's Starlette app: X-Router's chat endpoints, x402 v1 and v2, injectable faults.
The configuration is read on every request, so a test can switch faults while the server runs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from xrouter_tui.devserver.catalog import (
    DEFAULT_MODEL,
    MODELS,
    Model,
    PriceEstimate,
    find_model,
    price_request,
)
from xrouter_tui.devserver.reply import Reply, make_reply
from xrouter_tui.devserver.verify import NONCE_ALREADY_USED, Offer, PaymentCheck, verify_payment
from xrouter_tui.payments.networks import Network, atomic_to_usd, find_network

__all__ = [
    "DEFAULT_PAY_TO",
    "FAULTS",
    "AcceptedPayment",
    "DevServerConfig",
    "DevServerState",
    "create_app",
]

FAULTS: dict[str, str] = {
    "comments": "a ': keep-alive' comment line before every stream event",
    "crlf": "CRLF line ends throughout the stream",
    "split": "the stream written in 1-5 byte pieces that cut lines and UTF-8 characters",
    "bad-json": "one unparseable data line mid-stream, then the stream goes on",
    "midstream-error": 'an {"error": ...} data line mid-stream, then the stream ends',
    "truncate": "the stream ends cleanly mid-reply: no finish_reason, no [DONE]",
    "disconnect": "the connection is dropped mid-stream",
    "stall-first-byte": "a paid request waits stall_seconds before any response header",
    "stall-mid-stream": "the stream pauses for stall_seconds mid-reply",
    "no-receipt": "no payment receipt header on the paid response",
    "reject-payment": "a valid payment is refused with 402 and reject_reason",
    "http-error-json": "the unpaid request gets error_status with a JSON error",
    "http-error-text": "the unpaid request gets error_status with a plain-text error",
    "paid-http-error": "the paid request gets 500 after the payment was accepted",
    "rate-limit": "the unpaid request gets 429 with Retry-After: 7",
    "bad-challenge-json": "the 402 body is plain text, not JSON",
    "bad-challenge-no-accepts": "the 402 lists no payment requirements",
    "bad-challenge-amount": "the 402 asks for a fractional amount (12.5)",
    "bad-challenge-header": "the PAYMENT-REQUIRED header is not base64 JSON",
    "ignore-stream": "a paid streaming request gets a plain JSON completion",
    "top-level-content": "a plain JSON completion puts its text in a top-level content field",
}

# Made up: payments to the dev server are verified but never settled, so nothing reaches it.
DEFAULT_PAY_TO = "0x402D3F5E7A1B9c8D6e4F20314253647586970a1B"
DEFAULT_REJECT_REASON = "invalid_exact_evm_insufficient_balance"
MODELS_SHAPES = ("xrouter", "openai")

MAX_MESSAGES = 100
MAX_CONTENT_CHARS = 100_000
MAX_OUTPUT_TOKENS = 128_000
DEFAULT_MAX_TOKENS = 4096
DEFAULT_TEMPERATURE = 0.7
ROLES = ("system", "user", "assistant")

# Piece sizes for the `split` fault; uneven so that boundaries land everywhere in lines and
# multi-byte characters over a stream.
_SPLIT_PATTERN = (1, 4, 2, 5, 3, 1, 2)
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


@dataclass
class DevServerConfig:
    """How the dev server behaves; fields may be changed while it runs."""

    x402_version: int = 1
    network: str = "base-sepolia"
    pay_to: str = DEFAULT_PAY_TO
    max_timeout_seconds: int = 120
    reply_deltas: int | None = None
    delta_delay: float = 0.0
    faults: set[str] = field(default_factory=set)
    fault_after: int = 5
    stall_seconds: float = 30.0
    reject_reason: str = DEFAULT_REJECT_REASON
    error_status: int = 503
    models_shape: str = "xrouter"

    def __setattr__(self, name: str, value: Any) -> None:
        # Checked on every assignment, not only in __init__: tests reconfigure a running server.
        object.__setattr__(self, name, _checked(name, value))

    @property
    def resolved_network(self) -> Network:
        network = find_network(self.network)
        assert network is not None  # guaranteed by _checked
        return network

    def copy_from(self, other: DevServerConfig) -> None:
        """Take every setting of `other`, keeping this object (which a running app holds)."""
        for item in fields(self):
            value = getattr(other, item.name)
            setattr(self, item.name, set(value) if isinstance(value, set) else value)


def _checked(name: str, value: Any) -> Any:
    if name == "faults":
        names = {value} if isinstance(value, str) else set(value)
        unknown = sorted(names - FAULTS.keys())
        if unknown:
            raise ValueError(
                f"unknown fault {', '.join(unknown)}; known faults: {', '.join(FAULTS)}"
            )
        return names
    if name == "x402_version" and value not in (1, 2):
        raise ValueError(f"x402_version must be 1 or 2, not {value!r}")
    if name == "network" and (not isinstance(value, str) or find_network(value) is None):
        raise ValueError(f"unknown network {value!r}; use base, base-sepolia or their CAIP-2 ids")
    if name == "pay_to" and (not isinstance(value, str) or not _ADDRESS.match(value)):
        raise ValueError(f"pay_to must be an 0x address, not {value!r}")
    if name == "models_shape" and value not in MODELS_SHAPES:
        raise ValueError(f"models_shape must be one of {', '.join(MODELS_SHAPES)}")
    if name == "reply_deltas" and value is not None and value < 0:
        raise ValueError("reply_deltas must be zero or more")
    if name in ("delta_delay", "stall_seconds", "fault_after") and value < 0:
        raise ValueError(f"{name} must be zero or more")
    return value


@dataclass(frozen=True, slots=True)
class AcceptedPayment:
    """A payment the dev server verified (and pretends to have settled)."""

    payer: str
    amount: int
    nonce: str
    network: str
    transaction: str
    model: str


@dataclass
class DevServerState:
    """What happened, for tests to inspect. Written on the server's loop, read from any thread.

    `completed_streams` counts streams sent to their end (a fault may have shortened them);
    `disconnects` those whose client went away first; `dropped_streams` the `disconnect` fault.
    """

    unpaid_requests: int = 0
    paid_requests: int = 0
    invalid_requests: int = 0
    payments: list[AcceptedPayment] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    completed_streams: int = 0
    disconnects: int = 0
    dropped_streams: int = 0
    used_nonces: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, counter: str) -> None:
        """Add one to the named counter."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def nonce_used(self, payer: str, nonce: str) -> bool:
        with self._lock:
            return (payer.lower(), nonce.lower()) in self.used_nonces

    def claim_nonce(self, payer: str, nonce: str) -> bool:
        """Mark (payer, nonce) used; False when it already was, as a replay."""
        key = (payer.lower(), nonce.lower())
        with self._lock:
            if key in self.used_nonces:
                return False
            self.used_nonces.add(key)
            return True

    def record_payment(self, payment: AcceptedPayment) -> None:
        with self._lock:
            self.payments.append(payment)

    def record_rejection(self, code: str) -> None:
        with self._lock:
            self.rejections.append(code)

    @property
    def total_paid(self) -> int:
        """All accepted payments, in atomic units."""
        with self._lock:
            return sum(payment.amount for payment in self.payments)

    def reset(self) -> None:
        """Forget everything, keeping this object (which a running app holds)."""
        with self._lock:
            for item in fields(self):
                if item.name != "_lock":
                    value = (
                        item.default_factory() if callable(item.default_factory) else item.default
                    )
                    setattr(self, item.name, value)


class _BadRequest(Exception):
    def __init__(self, message: str, code: str = "INVALID_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _DroppedConnection(Exception):
    """Raised inside a stream so that uvicorn aborts the connection mid-body."""


@dataclass(frozen=True, slots=True)
class _ChatRequest:
    messages: list[dict[str, Any]]
    model: Model
    max_tokens: int
    temperature: float
    stream: bool

    @property
    def prompt(self) -> str:
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return self.messages[-1]["content"]


def create_app(config: DevServerConfig, state: DevServerState) -> Starlette:
    """The ASGI app serving `config`, recording into `state`."""
    _quiet_expected_errors()
    handlers = _Handlers(config, state)
    return Starlette(
        routes=[
            Route("/v1/models", handlers.models, methods=["GET"]),
            Route("/v1/estimate", handlers.estimate, methods=["POST"]),
            Route("/v1/chat/completions", handlers.chat, methods=["POST"]),
        ]
    )


class _Handlers:
    def __init__(self, config: DevServerConfig, state: DevServerState) -> None:
        self.config = config
        self.state = state

    async def models(self, request: Request) -> Response:
        if self.config.models_shape == "openai":
            return JSONResponse(
                {
                    "object": "list",
                    "data": [
                        {
                            "id": model.id,
                            "object": "model",
                            "created": model.created,
                            "owned_by": model.provider,
                            "name": model.name,
                            "context_length": model.context_length,
                            "pricing": _pricing(model),
                        }
                        for model in MODELS
                    ],
                }
            )
        return JSONResponse(
            {
                "total": len(MODELS),
                "models": [
                    {
                        "id": model.id,
                        "name": model.name,
                        "description": model.description,
                        "context_length": model.context_length,
                        "pricing": _pricing(model),
                    }
                    for model in MODELS
                ],
            }
        )

    async def estimate(self, request: Request) -> Response:
        try:
            chat = _parse_chat(await request.body())
        except _BadRequest as exc:
            return _bad_request(exc)
        price = price_request(chat.model, chat.messages, chat.max_tokens)
        return JSONResponse(
            {
                "model": chat.model.id,
                "estimatedInputTokens": price.input_tokens,
                "estimatedOutputTokens": price.output_tokens,
                "estimatedCost": {
                    "usd": _usd_text(price.atomic),
                    "note": "Input tokens are estimated from the message length; output tokens "
                    "assume max_tokens are all used.",
                },
                "message": "This is the maximum charged upfront; the unused part is refunded "
                "after the reply.",
            }
        )

    async def chat(self, request: Request) -> Response:
        config, state = self.config, self.state
        faults = frozenset(config.faults)
        try:
            chat = _parse_chat(await request.body())
        except _BadRequest as exc:
            state.count("invalid_requests")
            return _bad_request(exc)
        price = price_request(chat.model, chat.messages, chat.max_tokens)
        resource = str(request.url.replace(query=""))
        offer = _offer(config, price, resource)
        header = _payment_header(request, config.x402_version)
        if header is None:
            state.count("unpaid_requests")
            return _unpaid_response(config, faults, offer, resource, _description(price))

        state.count("paid_requests")
        if "stall-first-byte" in faults:
            await asyncio.sleep(config.stall_seconds)
        check = verify_payment(header, offer, nonce_used=state.nonce_used)
        if check.ok and "reject-payment" in faults:
            check = PaymentCheck(config.reject_reason)
        # Checked again under the lock: two requests racing with one nonce must not both pass.
        if check.ok and not state.claim_nonce(check.payer or "", check.nonce or ""):
            check = PaymentCheck(NONCE_ALREADY_USED)
        if not check.ok:
            state.record_rejection(check.error or "")
            return _challenge(offer, resource, _description(price), error=check.error)

        assert check.payer is not None and check.nonce is not None and check.amount is not None
        network = offer.requirement["network"]
        payment = AcceptedPayment(
            payer=check.payer,
            amount=check.amount,
            nonce=check.nonce,
            network=network,
            transaction=_transaction_hash(check.nonce),
            model=chat.model.id,
        )
        state.record_payment(payment)
        if "paid-http-error" in faults:
            return JSONResponse({"error": "Internal error while generating the reply"}, 500)

        headers = {} if "no-receipt" in faults else _receipt_header(config.x402_version, payment)
        reply = make_reply(chat.prompt, chat.model.id, config.reply_deltas)
        answer = _Answer.build(chat, reply, price)
        if chat.stream and "ignore-stream" not in faults:
            chunks = _frame(_stream_events(answer, config, faults), faults)
            return _EventStream(chunks, headers, state)
        return JSONResponse(
            answer.completion(top_level="top-level-content" in faults), headers=headers
        )


def _pricing(model: Model) -> dict[str, float]:
    return {
        "input_per_1k_tokens": float(model.input_per_1k),
        "output_per_1k_tokens": float(model.output_per_1k),
        "blended_per_1k_tokens": float(model.blended_per_1k),
    }


def _usd_text(atomic: int) -> str:
    return f"{atomic_to_usd(atomic):.6f}"


def _bad_request(exc: _BadRequest) -> Response:
    return JSONResponse({"error": {"message": exc.message, "code": exc.code}}, 400)


def _parse_chat(raw: bytes) -> _ChatRequest:
    try:
        body = json.loads(raw)
    except ValueError:
        raise _BadRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object")

    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise _BadRequest(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _BadRequest(f"messages[{index}] must be an object with role and content")
        if message.get("role") not in ROLES:
            raise _BadRequest(f"messages[{index}].role must be one of {', '.join(ROLES)}")
        content = message.get("content")
        if not isinstance(content, str) or not 1 <= len(content) <= MAX_CONTENT_CHARS:
            raise _BadRequest(
                f"messages[{index}].content must be a string of 1 to {MAX_CONTENT_CHARS} characters"
            )

    model_id = body.get("model")
    model_id = DEFAULT_MODEL if model_id is None else model_id
    model = find_model(model_id) if isinstance(model_id, str) else None
    if model is None:
        raise _BadRequest(f"Unknown model: {model_id}", "INVALID_MODEL")

    max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
    if not _is_int(max_tokens) or not 1 <= max_tokens <= MAX_OUTPUT_TOKENS:
        raise _BadRequest(f"max_tokens must be a whole number from 1 to {MAX_OUTPUT_TOKENS}")
    temperature = body.get("temperature", DEFAULT_TEMPERATURE)
    if not _is_number(temperature) or not 0 <= temperature <= 2:
        raise _BadRequest("temperature must be a number from 0 to 2")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _BadRequest("stream must be true or false")
    return _ChatRequest(messages, model, max_tokens, float(temperature), stream)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _description(price: PriceEstimate) -> str:
    return f"Chat completion with {price.model.id}, up to {price.output_tokens} output tokens"


def _offer(config: DevServerConfig, price: PriceEstimate, resource: str) -> Offer:
    network = config.resolved_network
    asset = network.usdc
    extra = {"name": asset.eip712_name, "version": asset.eip712_version}
    if config.x402_version == 1:
        requirement: dict[str, Any] = {
            "scheme": "exact",
            "network": network.v1_name,
            "maxAmountRequired": str(price.atomic),
            "resource": resource,
            "description": _description(price),
            "mimeType": "application/json",
            "payTo": config.pay_to,
            "maxTimeoutSeconds": config.max_timeout_seconds,
            "asset": asset.address,
            "outputSchema": None,
            "extra": extra,
        }
    else:
        requirement = {
            "scheme": "exact",
            "network": network.caip2,
            "amount": str(price.atomic),
            "asset": asset.address,
            "payTo": config.pay_to,
            "maxTimeoutSeconds": config.max_timeout_seconds,
            "extra": extra,
        }
    return Offer(config.x402_version, network, requirement)


def _payment_header(request: Request, version: int) -> str | None:
    # Both names are read: a payment in the other version's header is then refused by its
    # x402Version, which says more than a fresh challenge would.
    names = (
        ("x-payment", "payment-signature") if version == 1 else ("payment-signature", "x-payment")
    )
    for name in names:
        value = request.headers.get(name)
        if value:
            return value
    return None


def _b64json(document: Mapping[str, Any]) -> str:
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode("ascii")


def _challenge(
    offer: Offer, resource: str, description: str, *, error: str | None = None
) -> Response:
    if offer.x402_version == 1:
        return JSONResponse(
            {
                "x402Version": 1,
                "error": error or "X-PAYMENT header is required",
                "accepts": [dict(offer.requirement)],
            },
            402,
        )
    document = {
        "x402Version": 2,
        "error": error or "Payment required",
        "resource": {
            "url": resource,
            "description": description,
            "mimeType": "application/json",
        },
        "accepts": [dict(offer.requirement)],
    }
    return JSONResponse({}, 402, headers={"PAYMENT-REQUIRED": _b64json(document)})


def _unpaid_response(
    config: DevServerConfig,
    faults: frozenset[str],
    offer: Offer,
    resource: str,
    description: str,
) -> Response:
    if "rate-limit" in faults:
        return JSONResponse(
            {"error": {"message": "Rate limit exceeded"}}, 429, headers={"Retry-After": "7"}
        )
    if "http-error-json" in faults:
        return JSONResponse(
            {"error": {"message": "The upstream provider is unavailable", "code": 503}},
            config.error_status,
        )
    if "http-error-text" in faults:
        return PlainTextResponse("Service temporarily unavailable", config.error_status)
    if "bad-challenge-json" in faults:
        return PlainTextResponse("Payment required", 402)
    if "bad-challenge-no-accepts" in faults:
        return JSONResponse({"x402Version": 1, "error": "no route", "accepts": []}, 402)
    if "bad-challenge-header" in faults:
        return JSONResponse({}, 402, headers={"PAYMENT-REQUIRED": "%%% not base64 json %%%"})
    if "bad-challenge-amount" in faults:
        key = "maxAmountRequired" if offer.x402_version == 1 else "amount"
        offer = Offer(offer.x402_version, offer.network, {**offer.requirement, key: "12.5"})
    return _challenge(offer, resource, description)


def _transaction_hash(nonce: str) -> str:
    # Stable per authorization, like a real settlement; nothing is on chain.
    return "0x" + hashlib.sha256(b"xrouter-devserver:" + nonce.encode()).hexdigest()


def _receipt_header(version: int, payment: AcceptedPayment) -> dict[str, str]:
    if version == 1:
        document: dict[str, Any] = {
            "success": True,
            "transaction": payment.transaction,
            "transactionHash": payment.transaction,
            "network": payment.network,
            "payer": payment.payer,
        }
        return {"X-PAYMENT-RESPONSE": _b64json(document)}
    document = {
        "success": True,
        "transaction": payment.transaction,
        "network": payment.network,
        "payer": payment.payer,
        "amount": str(payment.amount),
    }
    return {"PAYMENT-RESPONSE": _b64json(document)}


@dataclass(frozen=True, slots=True)
class _Answer:
    """The reply as sent: cut to max_tokens (one delta is one completion token)."""

    id: str
    created: int
    model: str
    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    finish_reason: str
    prompt_tokens: int

    @classmethod
    def build(cls, chat: _ChatRequest, reply: Reply, price: PriceEstimate) -> _Answer:
        reasoning = reply.reasoning[: chat.max_tokens]
        content = reply.content[: chat.max_tokens - len(reasoning)]
        cut = len(reasoning) + len(content) < len(reply.reasoning) + len(reply.content)
        return cls(
            id=f"gen-{int(time.time())}-{secrets.token_hex(10)}",
            created=int(time.time()),
            model=chat.model.id,
            reasoning=reasoning,
            content=content,
            finish_reason="length" if cut else "stop",
            prompt_tokens=price.input_tokens,
        )

    @property
    def usage(self) -> dict[str, int]:
        completion = len(self.reasoning) + len(self.content)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def completion(self, *, top_level: bool = False) -> dict[str, Any]:
        if top_level:
            # The shape some of X-Router's documentation examples read.
            return {"id": self.id, "model": self.model, "content": "".join(self.content)}
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning:
            message["reasoning"] = "".join(self.reasoning)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": self.usage,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    def usage_chunk(self) -> str:
        return _data(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage,
            }
        )


def _data(document: Mapping[str, Any]) -> str:
    # Raw UTF-8, not \u escapes: clients must cope with multi-byte characters split across reads.
    return "data: " + json.dumps(document, ensure_ascii=False, separators=(",", ":"))


async def _stream_events(
    answer: _Answer, config: DevServerConfig, faults: frozenset[str]
) -> AsyncGenerator[str, None]:
    """The stream's events, without framing; mid-stream faults strike after `fault_after`."""
    delay = config.delta_delay
    role_sent = False
    first = True

    def delta(key: str, piece: str) -> dict[str, str]:
        nonlocal role_sent
        if role_sent:
            return {key: piece}
        role_sent = True
        return {"role": "assistant", key: piece}

    for piece in answer.reasoning:
        if delay and not first:
            await asyncio.sleep(delay)
        first = False
        yield answer.chunk(delta("reasoning", piece))

    # A reply shorter than fault_after still shows the fault, just before the finish.
    fault_at = min(config.fault_after, len(answer.content))
    for index in range(len(answer.content) + 1):
        if index == fault_at:
            if "bad-json" in faults:
                yield 'data: {"choices": [oops'
            if "midstream-error" in faults:
                yield _data(
                    {
                        "error": {
                            "message": "The upstream model is overloaded",
                            "type": "upstream_error",
                            "code": 502,
                        }
                    }
                )
                return
            if "truncate" in faults:
                return
            if "disconnect" in faults:
                raise _DroppedConnection
            if "stall-mid-stream" in faults:
                await asyncio.sleep(config.stall_seconds)
        if index == len(answer.content):
            break
        if delay and not first:
            await asyncio.sleep(delay)
        first = False
        yield answer.chunk(delta("content", answer.content[index]))

    yield answer.chunk({"role": "assistant"} if not role_sent else {}, answer.finish_reason)
    yield answer.usage_chunk()
    yield "data: [DONE]"


async def _frame(
    events: AsyncGenerator[str, None], faults: frozenset[str]
) -> AsyncGenerator[bytes, None]:
    """Events as SSE bytes, with the framing faults applied."""
    newline = "\r\n" if "crlf" in faults else "\n"
    comment = f": keep-alive{newline}{newline}" if "comments" in faults else ""
    split = "split" in faults
    position = 0
    try:
        async for event in events:
            data = (comment + event.replace("\n", newline) + newline + newline).encode("utf-8")
            if not split:
                yield data
                continue
            offset = 0
            while offset < len(data):
                size = _SPLIT_PATTERN[position % len(_SPLIT_PATTERN)]
                position += 1
                yield data[offset : offset + size]
                offset += size
                # Each piece is its own HTTP chunk, which the client reads as its own piece of
                # body however TCP coalesces them; yielding to the loop sends it right away.
                await asyncio.sleep(0)
    finally:
        await events.aclose()


class _EventStream(StreamingResponse):
    """An SSE response that notices a client leaving mid-stream and counts how streams end."""

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        headers: Mapping[str, str],
        state: DevServerState,
    ) -> None:
        # The content type is set by hand: Starlette would append a charset to text/*.
        super().__init__(
            chunks,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers},
        )
        self._chunks = chunks
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        finished = False
        client_left = False

        async def watch() -> None:
            nonlocal client_left
            while (await receive())["type"] != "http.disconnect":
                pass
            if not finished:
                client_left = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self._chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not client_left:
                raise
            task.uncancel()
            self._state.count("disconnects")
            return
        except _DroppedConnection:
            self._state.count("dropped_streams")
            raise
        finally:
            watcher.cancel()
            await self._chunks.aclose()
        self._state.count("completed_streams")


class _QuietExpectedErrors(logging.Filter):
    """Hides the tracebacks uvicorn logs for what the dev server does on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, _DroppedConnection | asyncio.CancelledError):
            return False
        # Stopping while a stall fault holds a request open is expected, not an error.
        return "timeout graceful shutdown exceeded" not in record.getMessage()


_FILTER = _QuietExpectedErrors()


def _quiet_expected_errors() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
