"""The dev server's Starlette app: X-Router's chat endpoints, x402 v1 and v2, injectable faults.
The configuration is read on every request, so a test can switch faults while the server runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from xrouter_tui import safe_json
from xrouter_tui.context import MAX_CONTENT_CHARS, MAX_MESSAGES
from xrouter_tui.devserver import hostile, rpc, settlement, x402
from xrouter_tui.devserver.catalog import DEFAULT_MODEL, MODELS, Model, find_model, price_request
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.devserver.state import (
    RECEIPT_FAULTS,
    AcceptedPayment,
    DevServerConfig,
    DevServerState,
)
from xrouter_tui.devserver.stream import (
    Answer,
    DrippedHead,
    DroppedConnection,
    EventStream,
    frame,
    hostile_stream,
    padded_response,
    stream_events,
)
from xrouter_tui.devserver.verify import (
    NONCE_ALREADY_USED,
    PaymentCheck,
    payment_identifier,
    verify_payment,
)
from xrouter_tui.payments.networks import atomic_to_usd

__all__ = ["create_app"]

MAX_OUTPUT_TOKENS = 128_000
DEFAULT_MAX_TOKENS = 4096
DEFAULT_TEMPERATURE = 0.7
ROLES = ("system", "user", "assistant")


class _BadRequest(Exception):
    def __init__(self, message: str, code: str = "INVALID_REQUEST") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class ChatRequest:
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
            Route("/rpc", rpc.rpc_endpoint(config, state), methods=["POST"]),
        ]
    )


class _Handlers:
    def __init__(self, config: DevServerConfig, state: DevServerState) -> None:
        self.config = config
        self.state = state

    async def models(self, request: Request) -> Response:
        config = self.config
        faults = frozenset(config.faults)
        if "drip-headers" in faults:
            head = hostile.dripped_head({"Content-Type": "application/json"})
            return DrippedHead(head, config.drip_seconds)
        if "nested-models" in faults:
            return Response(hostile.nested_json(), media_type="application/json")
        models = hostile.escaped_models(MODELS) if "escape-models" in faults else MODELS
        document = _models_document(models, config.models_shape)
        if "huge-models" in faults:
            # In the first model's description (added to the OpenAI shape, which has none).
            entries = document["data" if config.models_shape == "openai" else "models"]
            entries[0]["description"] = hostile.FILLER_MARKER
            return padded_response(document, config.huge_bytes, whole=True)
        return JSONResponse(document)

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
        if "no-read" in faults:
            # Not a byte of the body is read: a big request fills the socket buffers and the
            # client's write stalls.
            await asyncio.sleep(config.stall_seconds)
            return JSONResponse(
                {"error": {"message": "The router stopped waiting for the request"}},
                503,
                headers={"Connection": "close"},
            )
        try:
            chat = _parse_chat(await request.body())
        except _BadRequest as exc:
            state.count("invalid_requests")
            return _bad_request(exc)
        price = price_request(chat.model, chat.messages, chat.max_tokens)
        if price.input_tokens + chat.max_tokens > chat.model.context_length:
            # The upstream model's refusal, which X-Router passes on before any 402.
            state.count("invalid_requests")
            return _bad_request(
                _BadRequest(
                    f"This model's maximum context length is {chat.model.context_length} tokens; "
                    f"the request asks for {price.input_tokens + chat.max_tokens}",
                    "CONTEXT_LENGTH_EXCEEDED",
                )
            )
        resource = str(request.url.replace(query=""))
        about = x402.description(price)
        if "escape-challenge" in faults:
            about = f"{about} {hostile.HOSTILE_TEXT}"
        # The offer a payment is checked against is the one sent, hostile description and all.
        offer = x402.offer(
            config,
            price,
            resource,
            about,
            "escape-challenge" in faults,
            require_payment_id="payment-id-required" in faults,
        )
        header = x402.payment_header(request, config.x402_version)
        if header is None:
            state.count("unpaid_requests")
            return x402.unpaid_response(config, faults, offer, resource, about)

        state.count("paid_requests")
        if "stall-first-byte" in faults:
            await asyncio.sleep(config.stall_seconds)
        check = verify_payment(
            header,
            offer,
            # An answer paid and never delivered may be asked for again with the same header.
            nonce_used=lambda payer, nonce: (
                state.nonce_used(payer, nonce) and not state.owes_answer(payer, nonce, header)
            ),
        )
        payment_id = payment_identifier(header)
        if check.ok and "payment-id-required" in faults and payment_id is None:
            check = PaymentCheck("payment_identifier_required")
        if check.ok and "reject-payment" in faults:
            check = PaymentCheck(config.reject_reason)
        # Checked again under the lock: two requests racing with one nonce must not both pass.
        resent = False
        if check.ok and not state.claim_nonce(check.payer or "", check.nonce or ""):
            resent = state.owes_answer(check.payer or "", check.nonce or "", header)
            if not resent:
                check = PaymentCheck(NONCE_ALREADY_USED)
        if not check.ok:
            state.record_rejection(check.error or "")
            return x402.challenge(offer, resource, about, error=check.error)

        assert check.payer is not None and check.nonce is not None and check.amount is not None
        network = offer.requirement["network"]
        # On the local chain, settled for real (or refused by the chain) before any answer.
        settled = await settlement.settle(config, state, check, resent, faults)
        if not settled.ok:
            return settled.refusal(offer, resource, about)
        transaction = settled.transaction
        if "settlement-pending" in faults:
            # Broadcast, not confirmed: a 402 that carries the transaction (it will settle).
            state.record_rejection("settlement_pending")
            receipt = x402.failed_receipt(
                config.x402_version, network, check.payer, "settlement_pending", transaction
            )
            return x402.challenge(
                offer, resource, about, error="settlement_pending", headers=receipt
            )
        for fault in RECEIPT_FAULTS:
            if fault in faults:
                transaction = hostile.hostile_transaction(fault, transaction)
        payment = AcceptedPayment(
            payer=check.payer,
            amount=check.amount,
            nonce=check.nonce,
            network=network,
            transaction=transaction,
            model=chat.model.id,
            messages=tuple(chat.messages),
            payment_id=payment_id,
        )
        # A resend is the same payment: it is in `payments` once.
        state.record_payment(payment, resent=resent)
        if not resent:
            state.owe_answer(check.payer, check.nonce, header)
        if "drop-paid-settled" in faults:
            return settlement.dropped()
        payer, nonce = check.payer, check.nonce

        def delivered() -> None:
            state.delivered(payer, nonce)

        if "paid-http-error" in faults:
            return JSONResponse({"error": "Internal error while generating the reply"}, 500)

        if "no-receipt" in faults:
            headers = {}
        elif "failed-receipt" in faults:
            # The answer comes, and the receipt says the payment failed: it may still settle.
            headers = x402.failed_receipt(
                config.x402_version, network, check.payer, "unexpected_settle_error"
            )
        else:
            headers = x402.receipt_header(config.x402_version, payment)
        if "drip-headers" in faults:
            head = hostile.dripped_head({"Content-Type": "text/event-stream", **headers})
            return DrippedHead(head, config.drip_seconds)
        reply = make_reply(chat.prompt, chat.model.id, config.reply_deltas, config.reply_bytes)
        if "escape-answer" in faults:
            reply = hostile.escaped_reply(reply)
        answer = Answer.build(chat, reply, price)
        settlement.refund_due(config, state, check, price, answer)
        hostile_chunks = hostile_stream(answer, config, faults)
        if hostile_chunks is not None:
            return EventStream(hostile_chunks, headers, state)
        if "huge-json-answer" in faults:
            document = answer.completion()
            document["choices"][0]["message"]["content"] = hostile.FILLER_MARKER
            return padded_response(document, config.huge_bytes, whole=False, headers=headers)
        if chat.stream and "ignore-stream" not in faults:
            chunks = frame(stream_events(answer, config, faults), faults)
            return EventStream(chunks, headers, state, delivered=delivered)
        delivered()
        return JSONResponse(
            answer.completion(top_level="top-level-content" in faults), headers=headers
        )


def _models_document(models: Sequence[Model], shape: str) -> dict[str, Any]:
    if shape == "openai":
        return {
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
                for model in models
            ],
        }
    return {
        "total": len(models),
        "models": [
            {
                "id": model.id,
                "name": model.name,
                "description": model.description,
                "context_length": model.context_length,
                "pricing": _pricing(model),
            }
            for model in models
        ],
    }


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


def _parse_chat(raw: bytes) -> ChatRequest:
    try:
        body = safe_json.loads(raw)
    except ValueError:
        raise _BadRequest("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object")

    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise _BadRequest(f"messages must be an array of 1 to {MAX_MESSAGES} items")
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
    return ChatRequest(messages, model, max_tokens, float(temperature), stream)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _QuietExpectedErrors(logging.Filter):
    """Hides the tracebacks uvicorn logs for what the dev server does on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, DroppedConnection | asyncio.CancelledError):
            return False
        # Stopping while a stall fault holds a request open is expected, not an error.
        return "timeout graceful shutdown exceeded" not in record.getMessage()


_FILTER = _QuietExpectedErrors()


def _quiet_expected_errors() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
