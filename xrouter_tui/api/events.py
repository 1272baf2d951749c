"""What `stream_chat` yields, in order: `Paid`, then `Reasoning`/`Delta`/`Usage`, then `Done`.

One name for one thing across layers: the UI receives these very objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from xrouter_tui.payments import Quote, Receipt, SignedPayment

__all__ = [
    "ChatEvent",
    "ConfirmPayment",
    "Delta",
    "Done",
    "OnSigned",
    "Paid",
    "Reasoning",
    "Usage",
]

# Asked before paying above the confirmation threshold: True to pay.
ConfirmPayment = Callable[[Quote], Awaitable[bool]]
# Told of a signature the moment it is made, before the paid request leaves: the payment and
# the request body it pays for, exactly as it will be sent (what a resend needs).
OnSigned = Callable[[SignedPayment, Mapping[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Paid:
    """The paid request was accepted: what was signed, and the router's receipt if it sent one."""

    payment: SignedPayment
    receipt: Receipt | None


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's reasoning, shown apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts as the router reports them (they replace any local estimate)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class Done:
    """The answer is complete. `skipped` counts data lines that could not be read."""

    finish_reason: str
    skipped: int = 0


ChatEvent = Paid | Delta | Reasoning | Usage | Done
