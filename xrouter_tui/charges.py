"""What one answer cost, in the words of its money line (the chat's footer, `ask`'s summary).

X-Router charges the most a request could cost up front and refunds the difference once the
answer is done; the line shows the charge, what the tokens used cost at the model's prices, and
so the refund to expect.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from xrouter_tui.api import ModelInfo, Usage
from xrouter_tui.payments import Receipt, SignedPayment, format_usd
from xrouter_tui.payments.networks import atomic_to_usd
from xrouter_tui.pricing import tokens_cost_usd
from xrouter_tui.safe_text import one_line, shown_tx

__all__ = ["Charge"]


@dataclass(frozen=True, slots=True)
class Charge:
    """A paid answer's money: what was charged, where, its transaction, and what it used."""

    amount_usd: Decimal
    network: str
    tx: str | None
    # What to say instead of a transaction: "no receipt", or why the receipt says it failed.
    receipt_note: str = ""
    usage: Usage | None = None
    model: ModelInfo | None = None
    # The receipt says the payment failed: the authorization may still settle (until it
    # expires), so the line says it was signed, not that it was charged.
    uncertain: bool = False
    # The amount the receipt names, when it names one other than what was signed: the router's
    # word (an `exact` transfer moves what was signed), shown beside it.
    receipt_usd: Decimal | None = None
    # What the chain showed coming back from the payee afterwards (seen, never promised).
    refunded_usd: Decimal | None = None

    @classmethod
    def of(
        cls,
        payment: SignedPayment,
        receipt: Receipt | None,
        usage: Usage | None,
        model: ModelInfo | None = None,
    ) -> Charge:
        """The charge of a turn just paid, from its payment and the router's receipt."""
        note = ""
        if receipt is None:
            note = "no receipt"
        elif not receipt.success:
            reason = one_line(receipt.error_reason or "no reason", 80)
            note = f"receipt says failed ({reason})"
        tx = receipt.transaction if receipt is not None and receipt.success else None
        uncertain = receipt is not None and not receipt.success
        said = receipt.amount if receipt is not None else None
        receipt_usd = (
            atomic_to_usd(said, payment.network.usdc.decimals)
            if said is not None and said != payment.amount
            else None
        )
        return cls(
            payment.amount_usd,
            payment.network.label,
            tx,
            note,
            usage,
            model,
            uncertain,
            receipt_usd,
        )

    @property
    def tokens_usd(self) -> Decimal | None:
        """What the tokens used cost at the model's list prices, when both are known."""
        return tokens_cost_usd(self.model, self.usage)

    @property
    def refund_usd(self) -> Decimal | None:
        """The difference the router should refund, when the tokens' cost is known."""
        cost = self.tokens_usd
        return max(self.amount_usd - cost, Decimal(0)) if cost is not None else None

    def parts(self) -> list[str]:
        """`charged $0.0154 upfront`, `tokens cost $0.0021`, `refund ~$0.0133`, the network and
        the transaction, as the pieces of one line."""
        amount = format_usd(self.amount_usd)
        if self.uncertain:
            parts = [f"{amount} signed, outcome unknown"]
        else:
            parts = [f"charged {amount} upfront"]
        if self.receipt_usd is not None:
            parts.append(f"receipt says {format_usd(self.receipt_usd)}")
        cost, refund = self.tokens_usd, self.refund_usd
        if self.refunded_usd:
            net = self.amount_usd - self.refunded_usd
            parts.append(f"refunded {format_usd(self.refunded_usd)} · net {format_usd(net)}")
        elif cost is not None and refund is not None and not self.uncertain:
            parts.append(f"tokens cost {format_usd(cost)}")
            parts.append(f"refund ~{format_usd(refund)}")
        parts.append(self.network)
        if self.tx:
            parts.append(f"tx {shown_tx(self.tx)}")  # the router's word: shown only if a hash
        elif self.receipt_note:
            parts.append(self.receipt_note)
        return parts
