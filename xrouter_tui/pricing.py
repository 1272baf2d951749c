"""What a request will cost before it is sent, and what its tokens cost after: no I/O.

X-Router charges up front for the input plus all of `max_tokens`, and refunds what goes unused.
The input is counted the way its estimate endpoint says it does, from the messages' length, so a
price can be shown while the user types without sending a draft anywhere. A router may add a
margin on top of the model's list prices; `PriceGuide` learns it from the amounts it quotes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from xrouter_tui.api.events import Usage
from xrouter_tui.api.models import ModelInfo
from xrouter_tui.payments import PaymentRefused

__all__ = [
    "CHARS_PER_TOKEN",
    "MIN_USEFUL_TOKENS",
    "TOKENS_PER_MESSAGE",
    "PriceGuide",
    "estimate_input_tokens",
    "max_tokens_within",
    "shorter_max_tokens",
    "tokens_cost_usd",
    "upfront_usd",
]

# A tokenizer-free count, as the router's own estimate makes it: a token per four characters,
# plus a few for each message's framing (role markers, separators) on every real tokenizer.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
# Below this an answer is cut off too soon to be worth paying for.
MIN_USEFUL_TOKENS = 64
_MILLION = Decimal(1_000_000)
# Quotes above the list price by more than this are not learnt from (a fault, not a margin).
_MAX_MARGIN = Decimal(20)


def estimate_input_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """About how many tokens `messages` take as a request's input."""
    characters = sum(len(str(message.get("content", ""))) for message in messages)
    return math.ceil(characters / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def upfront_usd(
    model: ModelInfo, messages: Sequence[Mapping[str, Any]], max_tokens: int
) -> Decimal | None:
    """The most a request is charged up front at the model's list prices; None without them."""
    if model.input_per_1m_usd is None or model.output_per_1m_usd is None:
        return None
    input_tokens = estimate_input_tokens(messages)
    return (input_tokens * model.input_per_1m_usd + max_tokens * model.output_per_1m_usd) / _MILLION


def tokens_cost_usd(model: ModelInfo | None, usage: Usage | None) -> Decimal | None:
    """What the tokens a turn used cost at the model's list prices; None when unknown."""
    if model is None or usage is None:
        return None
    if model.input_per_1m_usd is None or model.output_per_1m_usd is None:
        return None
    return (
        usage.prompt_tokens * model.input_per_1m_usd
        + usage.completion_tokens * model.output_per_1m_usd
    ) / _MILLION


@dataclass(slots=True)
class PriceGuide:
    """Upfront prices for a prompt as typed, corrected by what the router really quoted.

    The router's quote for a request is its own count of the input at its own prices; the
    ratio of the last quote to our list-price figure, per model, carries over to the next
    estimate, so the figure shown while typing tracks a router that adds a margin.
    """

    margins: dict[str, Decimal] = field(default_factory=dict)

    def estimate(
        self, model: ModelInfo, messages: Sequence[Mapping[str, Any]], max_tokens: int
    ) -> Decimal | None:
        """The upfront price of sending `messages` with `max_tokens`; None without prices."""
        listed = upfront_usd(model, messages, max_tokens)
        if listed is None:
            return None
        price = listed * self.margins.get(model.id, Decimal(1))
        # Rounded up to the atomic unit, as the router rounds its quote.
        return price.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)

    def input_usd(self, model: ModelInfo, tokens: int) -> Decimal | None:
        """What `tokens` of input cost at the model's price (and the router's margin): the
        share of a price that a conversation's history makes up; None without prices."""
        if model.input_per_1m_usd is None:
            return None
        price = tokens * model.input_per_1m_usd / _MILLION * self.margins.get(model.id, Decimal(1))
        return price.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)

    def learn(
        self,
        model: ModelInfo,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int,
        quoted_usd: Decimal,
    ) -> None:
        """Remember how the router's quote for this request compares to the list price."""
        listed = upfront_usd(model, messages, max_tokens)
        if not listed or quoted_usd <= 0:
            return
        margin = quoted_usd / listed
        if 1 / _MAX_MARGIN <= margin <= _MAX_MARGIN:
            self.margins[model.id] = margin


def max_tokens_within(
    model: ModelInfo,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
    quoted_usd: Decimal,
    room_usd: Decimal,
) -> int | None:
    """The largest `max_tokens` whose quote would fit `room_usd`, given that the router quoted
    `quoted_usd` for `messages` with `max_tokens`; None when no useful length fits or the
    model's prices are unknown.

    Only the output part of a quote shrinks with `max_tokens`. The router's margin over the
    list prices is read from the quote itself, so the answer holds for a router that adds one.
    """
    listed = upfront_usd(model, messages, max_tokens)
    if not listed or model.output_per_1m_usd is None or model.output_per_1m_usd <= 0:
        return None
    margin = quoted_usd / listed
    input_usd = listed - max_tokens * model.output_per_1m_usd / _MILLION
    per_token = model.output_per_1m_usd / _MILLION
    # One token under, so that the router's rounding up still fits.
    fitting = math.floor((room_usd / margin - input_usd) / per_token) - 1
    fitting = min(fitting, max_tokens - 1)
    return fitting if fitting >= MIN_USEFUL_TOKENS else None


def shorter_max_tokens(
    refusal: PaymentRefused,
    model: ModelInfo | None,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
) -> int | None:
    """After a refusal past a cap or budget, the `max_tokens` that would fit every limit at
    once; None when the refusal is of another kind or no useful length fits."""
    if refusal.code not in ("over_cap", "over_budget", "needs_confirmation") or model is None:
        return None
    if refusal.amount_usd is None or refusal.room_usd is None:
        return None
    return max_tokens_within(model, messages, max_tokens, refusal.amount_usd, refusal.room_usd)
