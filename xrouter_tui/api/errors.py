"""Typed failures of a request to the router, each with a message in plain words.

Every error after a payment carries that payment, so the user is told what was paid and that a
new request is a new charge: a paid request is never sent again on its own.
"""

from __future__ import annotations

import time

from xrouter_tui.payments import PaymentRefused, SignedPayment, format_usd

__all__ = [
    "AnswerTooLarge",
    "BadChallenge",
    "NeverSent",
    "NoWallet",
    "PaymentDeclined",
    "PaymentRejected",
    "ResponseTimeout",
    "RouterError",
    "RouterHTTPError",
    "RouterUnreachable",
    "StreamError",
    "StreamInterrupted",
    "could_still_settle",
    "payment_note",
]


class RouterError(Exception):
    """A request to the router failed. `partial_text` is what had arrived of the answer."""

    def __init__(
        self,
        message: str,
        *,
        payment: SignedPayment | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.payment = payment
        self.partial_text = partial_text


class RouterUnreachable(RouterError):
    """No connection could be made, or it broke before the router answered."""


class NeverSent(RouterUnreachable):
    """No connection could be made: the request, and the payment it carried, never left this
    machine, so that payment cannot be charged."""


class RouterHTTPError(RouterError):
    """The router answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retry_after: float | None = None,
        payment: SignedPayment | None = None,
    ) -> None:
        super().__init__(message, payment=payment)
        self.status = status
        self.retry_after = retry_after


class BadChallenge(RouterError):
    """The router asked for payment in a way that could not be understood; nothing was signed."""


class NoWallet(RouterError):
    """The router asks for payment and no wallet key is set up."""


class PaymentRejected(RouterError):
    """The router answered a signed payment with another 402. It may still be charged: a
    `transaction` (from a receipt sent with the 402) says a transfer was made."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None,
        payment: SignedPayment,
        transaction: str | None = None,
        charged: bool = False,
    ) -> None:
        super().__init__(message, payment=payment)
        self.code = code
        self.transaction = transaction
        # True when the refusal itself proves a charge: a resent payment whose nonce is used.
        self.charged = charged


class ResponseTimeout(RouterError):
    """The router went quiet: before the first byte of the answer, or between two events."""

    def __init__(
        self,
        message: str,
        *,
        phase: str,
        payment: SignedPayment | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message, payment=payment, partial_text=partial_text)
        self.phase = phase


class StreamError(RouterError):
    """The router reported an error in the middle of the answer."""


class StreamInterrupted(RouterError):
    """The answer stopped before the router said it was complete."""


class AnswerTooLarge(RouterError):
    """The router sent more than a limit allows (`setting` names it): the rest was not read."""

    def __init__(
        self,
        message: str,
        *,
        setting: str,
        payment: SignedPayment | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message, payment=payment, partial_text=partial_text)
        self.setting = setting


class PaymentDeclined(PaymentRefused):
    """The user said no when asked to confirm the payment; nothing was signed."""


def could_still_settle(payment: SignedPayment) -> str:
    """What is known of a payment the router refused after it was handed over: it can still
    be charged until it expires, and the budgets count it until then."""
    until = time.strftime("%H:%M:%S", time.localtime(payment.valid_before))
    return (
        f" It was signed and handed over, so it could still be charged until {until}; it "
        "counts against your budgets until then. It will not be resent."
    )


def payment_note(payment: SignedPayment | None, *, accepted: bool = True) -> str:
    """What the user must know of the money when a paid request fails."""
    if payment is None:
        return ""
    amount = format_usd(payment.amount_usd)
    if accepted:
        return f" {amount} was paid for this request; sending it again is a new charge."
    return (
        f" The payment of {amount} was sent and may be charged; it will not be resent, "
        "and sending the request again is a new charge."
    )
