"""Sending a paid request again with its own payment, when its answer was lost.

An EIP-3009 nonce is single-use on chain, so the identical signed header sent twice can be
charged once at most: a lost answer can be asked for again without a second charge, while the
authorization is valid. A fresh signature for the same question could be charged twice.

What it takes (the header, the authorization's fields, the exact body) is kept in the history
when the payment is signed, and wiped once a resend can no longer help (see `history.store`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xrouter_tui.history.store import ResendRecord, Store, StoredMessage, StoredPayment
from xrouter_tui.payments import SignedPayment, find_network, format_usd
from xrouter_tui.safe_text import shown_tx

__all__ = [
    "Resend",
    "kept_resend",
    "last_unanswered",
    "not_resendable",
    "resend_record",
    "time_left",
]

# A resend this close to validBefore could arrive after it: the router would refuse it as
# expired, and nothing would be gained.
MIN_SECONDS_LEFT = 5


@dataclass(frozen=True, slots=True)
class Resend:
    """A lost answer's paid request, ready to be sent again exactly as it went."""

    # The payment's row in the ledger (the resend is the same payment: it is counted once).
    payment_row: int
    message_id: int
    payment: SignedPayment
    body: dict[str, Any]

    def seconds_left(self, now: float | None = None) -> float:
        """How long the authorization stays valid from `now`."""
        return self.payment.valid_before - (time.time() if now is None else now)


def resend_record(payment: SignedPayment, body: Mapping[str, Any]) -> ResendRecord:
    """What the history keeps to send `body` again with `payment`."""
    return ResendRecord(
        x402_version=payment.x402_version,
        header_name=payment.header_name,
        header_value=payment.header_value,
        valid_after=payment.valid_after,
        signature=payment.signature,
        payment_ident=payment.payment_id,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
    )


def kept_resend(store: Store, stored: StoredPayment, *, now: float | None = None) -> Resend | None:
    """The resend of a stored payment while it can help: its header kept, its authorization
    valid a little longer, its network known; else None."""
    now = time.time() if now is None else now
    if stored.valid_before - now < MIN_SECONDS_LEFT:
        return None
    record = store.resend(stored.id, now=now)
    network = find_network(stored.network)
    if record is None or network is None:
        return None
    try:
        body = json.loads(record.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    payment = SignedPayment(
        x402_version=record.x402_version,
        header_name=record.header_name,
        header_value=record.header_value,
        network=network,
        asset=stored.asset,
        pay_to=stored.pay_to,
        payer=stored.payer,
        amount=stored.amount,
        nonce=stored.nonce,
        valid_after=record.valid_after,
        valid_before=stored.valid_before,
        signature=record.signature,
        payment_id=record.payment_ident,
    )
    return Resend(stored.id, stored.message_id, payment, body)


def last_unanswered(messages: Sequence[StoredMessage]) -> StoredMessage | None:
    """The conversation's last answer when it did not arrive (failed, interrupted, or stopped
    before any text): the one a resend would fetch. None when the last answer is whole."""
    for message in reversed(messages):
        if message.role != "assistant":
            continue
        lost = message.status in ("failed", "interrupted") or (
            message.status == "stopped" and not message.content
        )
        return message if lost else None
    return None


def time_left(seconds: float) -> str:
    """`1m52s`, `40s`: how long a payment stays valid, for a key hint."""
    seconds = max(0, int(seconds))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def not_resendable(stored: StoredPayment, *, now: float | None = None) -> str:
    """Why a lost answer's payment cannot be sent again, and that nothing was sent."""
    now = time.time() if now is None else now
    amount = format_usd(stored.amount_usd)
    if stored.status == "settled":
        tx = f" (tx {shown_tx(stored.tx)})" if stored.tx else ""
        return (
            f"Its payment of {amount} was charged{tx} and the answer lost; sent again, it would "
            "be refused as used. Nothing was sent."
        )
    if stored.status == "rejected":
        return (
            f"Its payment of {amount} never left this machine, so there is nothing to send "
            "again; asking the question again is a new payment. Nothing was sent."
        )
    if stored.valid_before - now < MIN_SECONDS_LEFT:
        until = time.strftime("%H:%M:%S", time.localtime(stored.valid_before))
        return (
            f"Its payment of {amount} expired at {until}, so it cannot be sent again; nothing "
            "was sent. Asking the question again is a new payment."
        )
    return (
        f"The signed payment of {amount} for it was not kept, so it cannot be sent again; "
        "nothing was sent."
    )
