"""The async client for X-Router: models, estimates, and paid chat turns as typed events."""

from xrouter_tui.api.answers import Chunk, Completion, error_text, read_chunk, read_completion
from xrouter_tui.api.client import (
    ConfirmPayment,
    OnSigned,
    RouterClient,
    Timeouts,
    answer_broke,
    payment_note,
)
from xrouter_tui.api.errors import (
    AnswerTooLarge,
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
from xrouter_tui.api.reading import Limits

__all__ = [
    "AnswerTooLarge",
    "BadChallenge",
    "ChatEvent",
    "Chunk",
    "Completion",
    "ConfirmPayment",
    "Delta",
    "Done",
    "Estimate",
    "Limits",
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
    "answer_broke",
    "error_text",
    "parse_estimate",
    "parse_models",
    "payment_note",
    "read_chunk",
    "read_completion",
]
