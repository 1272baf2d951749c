"""The dev server's x402 side: the payment it asks for, its 402 challenges and its receipts.
Speaks x402 v1 (X-PAYMENT headers, JSON challenges) and v2 (PAYMENT-* headers).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from xrouter_tui.devserver.catalog import PriceEstimate
from xrouter_tui.devserver.hostile import FILLER_MARKER, HOSTILE_TEXT, nested_header, nested_json
from xrouter_tui.devserver.state import AcceptedPayment, DevServerConfig
from xrouter_tui.devserver.stream import padded_response
from xrouter_tui.devserver.verify import Offer

__all__ = [
    "challenge",
    "description",
    "offer",
    "payment_header",
    "receipt_header",
    "transaction_hash",
    "unpaid_response",
]


def description(price: PriceEstimate) -> str:
    return f"Chat completion with {price.model.id}, up to {price.output_tokens} output tokens"


def offer(
    config: DevServerConfig,
    price: PriceEstimate,
    resource: str,
    about: str,
    describe_v2: bool = False,
    require_payment_id: bool = False,
) -> Offer:
    """What the server asks for; `about` is v1's description. v2 requirements carry none, unless
    `describe_v2` (a hostile router adds fields; the client must echo them and pay).
    """
    network = config.resolved_network
    asset = network.usdc
    extra = {"name": asset.eip712_name, "version": asset.eip712_version}
    if config.x402_version == 1:
        requirement: dict[str, Any] = {
            "scheme": "exact",
            "network": network.v1_name,
            "maxAmountRequired": str(price.atomic),
            "resource": resource,
            "description": about,
            "mimeType": "application/json",
            "payTo": config.payee,
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
            "payTo": config.payee,
            "maxTimeoutSeconds": config.max_timeout_seconds,
            "extra": extra,
        }
        if describe_v2:
            requirement["description"] = about
        if require_payment_id:
            # As the official SDK's declare_payment_identifier_extension(required=True) has it.
            extensions = {"payment-identifier": {"info": {"required": True}, "schema": _ID_SCHEMA}}
            return Offer(config.x402_version, network, requirement, extensions)
    return Offer(config.x402_version, network, requirement)


# The JSON schema of a payment-identifier's info, as the x402 spec publishes it.
_ID_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "required": {"type": "boolean"},
        "id": {"type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[a-zA-Z0-9_-]+$"},
    },
    "required": ["required"],
}


def payment_header(request: Request, version: int) -> str | None:
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


def challenge(
    offer: Offer,
    resource: str,
    description: str,
    *,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if offer.x402_version == 1:
        return JSONResponse(
            {
                "x402Version": 1,
                "error": error or "X-PAYMENT header is required",
                "accepts": [dict(offer.requirement)],
            },
            402,
            headers=headers,
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
    if offer.extensions:
        document["extensions"] = dict(offer.extensions)
    return JSONResponse(
        {}, 402, headers={"PAYMENT-REQUIRED": _b64json(document), **(headers or {})}
    )


def failed_receipt(
    version: int, network: str, payer: str, reason: str, transaction: str | None = None
) -> dict[str, str]:
    """A receipt that is not a success, for `reason`: with the transaction of a transfer
    broadcast but not confirmed yet (x402's settlement_pending), or none."""
    document: dict[str, Any] = {"success": False, "errorReason": reason}
    if transaction is not None:
        document["transaction"] = transaction
    document |= {"network": network, "payer": payer}
    name = "X-PAYMENT-RESPONSE" if version == 1 else "PAYMENT-RESPONSE"
    return {name: _b64json(document)}


def unpaid_response(
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
    if "escape-error" in faults:
        return JSONResponse(
            {"error": {"message": f"Upstream failed: {HOSTILE_TEXT}", "code": config.error_status}},
            config.error_status,
        )
    if "huge-error" in faults:
        # The message first, so a client that reads only the start still has it.
        error = {
            "message": "The upstream provider is unavailable",
            "code": config.error_status,
            "detail": FILLER_MARKER,
        }
        return padded_response(
            {"error": error}, config.huge_bytes, whole=True, status=config.error_status
        )
    if "http-error-text" in faults:
        return PlainTextResponse("Service temporarily unavailable", config.error_status)
    if "bad-challenge-json" in faults:
        return PlainTextResponse("Payment required", 402)
    if "bad-challenge-no-accepts" in faults:
        return JSONResponse({"x402Version": 1, "error": "no route", "accepts": []}, 402)
    if "nested-challenge" in faults:
        if offer.x402_version == 1:
            return Response(nested_json(), 402, media_type="application/json")
        return JSONResponse({}, 402, headers={"PAYMENT-REQUIRED": nested_header()})
    if "bad-challenge-header" in faults:
        return JSONResponse({}, 402, headers={"PAYMENT-REQUIRED": "%%% not base64 json %%%"})
    if "bad-challenge-amount" in faults:
        key = "maxAmountRequired" if offer.x402_version == 1 else "amount"
        offer = Offer(offer.x402_version, offer.network, {**offer.requirement, key: "12.5"})
    error = f"Payment required {HOSTILE_TEXT}" if "escape-challenge" in faults else None
    return challenge(offer, resource, description, error=error)


def transaction_hash(nonce: str) -> str:
    # Stable per authorization, like a real settlement; nothing is on chain.
    return "0x" + hashlib.sha256(b"xrouter-devserver:" + nonce.encode()).hexdigest()


def receipt_header(version: int, payment: AcceptedPayment) -> dict[str, str]:
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
