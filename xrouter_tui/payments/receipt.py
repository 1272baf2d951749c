"""The settlement receipt a router may send: `X-PAYMENT-RESPONSE` (v1), `PAYMENT-RESPONSE` (v2).

It is optional: a missing or unreadable receipt never fails a paid request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xrouter_tui.payments.challenge import ChallengeError, decode_base64_json, header_value

__all__ = ["RECEIPT_HEADERS", "Receipt", "decode_receipt", "read_receipt"]

RECEIPT_HEADERS = ("payment-response", "x-payment-response")


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the router says became of a payment: the transaction, or why it failed."""

    success: bool
    transaction: str | None = None
    network: str | None = None
    payer: str | None = None
    error_reason: str | None = None
    amount: int | None = None


def decode_receipt(value: str) -> Receipt:
    """Decode one receipt header; raises `ChallengeError` when it is not base64 JSON."""
    document = decode_base64_json(value, "payment receipt")
    if not isinstance(document, dict):
        raise ChallengeError("the payment receipt is not a JSON object")

    def text(*keys: str) -> str | None:
        for key in keys:
            value = document.get(key)
            if isinstance(value, str) and value:
                return value
        return None

    amount = document.get("amount")
    if isinstance(amount, str) and amount.isdigit():
        amount = int(amount)
    success = document.get("success")
    return Receipt(
        # A receipt that names a transaction but forgets `success` still records a payment.
        success=bool(success)
        if success is not None
        else text("transaction", "transactionHash") is not None,
        transaction=text("transaction", "transactionHash", "txHash"),
        network=text("network"),
        payer=text("payer"),
        error_reason=text("errorReason", "error"),
        amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
    )


def read_receipt(headers: Mapping[str, str]) -> Receipt | None:
    """The receipt among these response headers, or None when absent or unreadable."""
    for name in RECEIPT_HEADERS:
        value = header_value(headers, name)
        if value:
            try:
                return decode_receipt(value)
            except ChallengeError:
                return None
    return None
