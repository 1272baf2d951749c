"""The async client for X-Router: models, estimates, and paid chat turns as typed events.

`RouterClient` and `answer_broke` load httpx, and so load when first used: the chat draws its
first frame with the rest of this package (events, errors, limits, models) alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xrouter_tui.api.answers import Chunk, Completion, error_text, read_chunk, read_completion
from xrouter_tui.api.errors import (
    AnswerTooLarge,
    BadChallenge,
    NeverSent,
    NoWallet,
    PaymentDeclined,
    PaymentRejected,
    ResponseTimeout,
    RouterError,
    RouterHTTPError,
    RouterUnreachable,
    StreamError,
    StreamInterrupted,
    payment_note,
)
from xrouter_tui.api.events import (
    ChatEvent,
    ConfirmPayment,
    Delta,
    Done,
    OnSigned,
    Paid,
    Reasoning,
    Usage,
)
from xrouter_tui.api.models import Estimate, ModelInfo, parse_estimate, parse_models
from xrouter_tui.api.reading import Limits, Timeouts

if TYPE_CHECKING:
    from xrouter_tui.api.client import RouterClient, answer_broke

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
    "NeverSent",
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

_WITH_HTTPX = frozenset({"RouterClient", "answer_broke"})


def __getattr__(name: str) -> Any:
    if name not in _WITH_HTTPX:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("xrouter_tui.api.client"), name)
