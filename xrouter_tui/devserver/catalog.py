"""The dev server's model list, at realistic public prices, and how a request is priced upfront."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xrouter_tui.payments.networks import usd_to_atomic

# The client's own count: the router's estimate and the price shown while typing agree.
from xrouter_tui.pricing import estimate_input_tokens

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "Model",
    "PriceEstimate",
    "estimate_input_tokens",
    "find_model",
    "price_request",
    "price_used",
]

DEFAULT_MODEL = "anthropic/claude-3.5-sonnet"


@dataclass(frozen=True, slots=True)
class Model:
    """One model the dev server offers, priced in USD per 1K tokens."""

    id: str
    name: str
    description: str
    context_length: int
    input_per_1k: Decimal
    output_per_1k: Decimal
    # Release date as Unix time: only the OpenAI-shaped listing reports it.
    created: int = 0

    @property
    def blended_per_1k(self) -> Decimal:
        # The common 3:1 input-to-output mix, the weighting public price comparisons use.
        return (3 * self.input_per_1k + self.output_per_1k) / 4

    @property
    def provider(self) -> str:
        return self.id.partition("/")[0]


def _model(
    id: str,
    name: str,
    description: str,
    context_length: int,
    input_per_1m: str,
    output_per_1m: str,
    created: int,
) -> Model:
    # Providers publish prices per million tokens; X-Router lists them per thousand.
    return Model(
        id=id,
        name=name,
        description=description,
        context_length=context_length,
        input_per_1k=Decimal(input_per_1m) / 1000,
        output_per_1k=Decimal(output_per_1m) / 1000,
        created=created,
    )


MODELS: tuple[Model, ...] = (
    _model(
        "anthropic/claude-3.5-sonnet",
        "Anthropic: Claude 3.5 Sonnet",
        "Anthropic's balanced model: strong at coding, analysis and long documents.",
        200_000,
        "3",
        "15",
        1_729_555_200,
    ),
    _model(
        "anthropic/claude-3.5-haiku",
        "Anthropic: Claude 3.5 Haiku",
        "Anthropic's fastest model, for quick answers and high volumes.",
        200_000,
        "0.80",
        "4",
        1_730_678_400,
    ),
    _model(
        "anthropic/claude-3-opus",
        "Anthropic: Claude 3 Opus",
        "Anthropic's most capable Claude 3 model, for complex reasoning and writing.",
        200_000,
        "15",
        "75",
        1_709_596_800,
    ),
    _model(
        "openai/gpt-4o",
        "OpenAI: GPT-4o",
        "OpenAI's flagship multimodal model with text and image input.",
        128_000,
        "2.50",
        "10",
        1_715_558_400,
    ),
    _model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o mini",
        "A small, inexpensive GPT-4o for everyday tasks.",
        128_000,
        "0.15",
        "0.60",
        1_721_260_800,
    ),
    _model(
        "openai/o1-mini",
        "OpenAI: o1-mini",
        "A reasoning model that thinks before answering; good at math and code.",
        128_000,
        "1.10",
        "4.40",
        1_726_099_200,
    ),
    _model(
        "google/gemini-pro-1.5",
        "Google: Gemini 1.5 Pro",
        "Google's mid-size multimodal model with a two-million-token context window.",
        2_000_000,
        "1.25",
        "5",
        1_712_620_800,
    ),
    _model(
        "google/gemini-flash-1.5",
        "Google: Gemini 1.5 Flash",
        "A fast, low-cost Gemini for high-frequency tasks and long context.",
        1_000_000,
        "0.075",
        "0.30",
        1_715_644_800,
    ),
    _model(
        "meta-llama/llama-3.1-70b-instruct",
        "Meta: Llama 3.1 70B Instruct",
        "Meta's open-weights 70B model tuned for dialogue.",
        131_072,
        "0.12",
        "0.30",
        1_721_692_800,
    ),
    _model(
        "mistralai/mistral-large",
        "Mistral: Mistral Large",
        "Mistral AI's flagship model, strong at multilingual reasoning and code.",
        128_000,
        "2",
        "6",
        1_708_905_600,
    ),
    _model(
        "deepseek/deepseek-r1",
        "DeepSeek: R1",
        "An open reasoning model that shows its chain of thought before the answer.",
        64_000,
        "0.55",
        "2.19",
        1_737_331_200,
    ),
    _model(
        "qwen/qwen-2.5-72b-instruct",
        "Qwen: Qwen2.5 72B Instruct",
        "Alibaba's 72B instruction model, good at code, math and structured output.",
        32_768,
        "0.35",
        "0.40",
        1_726_704_000,
    ),
)

_BY_ID = {model.id: model for model in MODELS}


def find_model(model_id: str) -> Model | None:
    """The catalog entry with this exact id, or None."""
    return _BY_ID.get(model_id)


@dataclass(frozen=True, slots=True)
class PriceEstimate:
    """The upfront (maximum) price of one request."""

    model: Model
    input_tokens: int
    output_tokens: int
    usd: Decimal
    atomic: int


def price_request(
    model: Model, messages: Sequence[Mapping[str, Any]], max_tokens: int
) -> PriceEstimate:
    """Price a request as if all `max_tokens` were generated: what is charged before the reply."""
    input_tokens = estimate_input_tokens(messages)
    usd = input_tokens * model.input_per_1k / 1000 + max_tokens * model.output_per_1k / 1000
    # A zero-amount authorization is refused by facilitators, so even a tiny request costs 1.
    atomic = max(1, usd_to_atomic(usd))
    return PriceEstimate(model, input_tokens, max_tokens, usd, atomic)


def price_used(model: Model, prompt_tokens: int, completion_tokens: int) -> int:
    """What the tokens of an answer cost, in atomic units rounded up (at least 1, as the
    upfront price): the upfront price less this is refunded."""
    usd = prompt_tokens * model.input_per_1k / 1000 + completion_tokens * model.output_per_1k / 1000
    return max(1, usd_to_atomic(usd))
