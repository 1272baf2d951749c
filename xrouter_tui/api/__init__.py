"""The async client for X-Router: models, estimates, and paid chat turns as typed events."""

from xrouter_tui.api.client import (
    Completion,
    ConfirmPayment,
    OnSigned,
    RouterClient,
    Timeouts,
    payment_note,
)
from xrouter_tui.api.errors import (
    BadChallenge,
    NoWallet,
    PaymentDeclined,
    PaymentRejected,
    ResponseTimeout,
    RouterError,
    RouterHTTPError,
    RouterUnreachable,
    StreamError,
    StreamInterrupted,
)
from xrouter_tui.api.events import ChatEvent, Delta, Done, Paid, Reasoning, Usage
from xrouter_tui.api.models import Estimate, ModelInfo, parse_estimate, parse_models

__all__ = [
    "BadChallenge",
    "ChatEvent",
    "Completion",
    "ConfirmPayment",
    "Delta",
    "Done",
    "Estimate",
    "ModelInfo",
    "NoWallet",
    "OnSigned",
    "Paid",
    "PaymentDeclined",
    "PaymentRejected",
    "Reasoning",
    "ResponseTimeout",
    "RouterClient",
    "RouterError",
    "RouterHTTPError",
    "RouterUnreachable",
    "StreamError",
    "StreamInterrupted",
    "Timeouts",
    "Usage",
    "parse_estimate",
    "parse_models",
    "payment_note",
]
