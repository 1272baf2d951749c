"""The model list and price estimates, read from either X-Router's or the OpenAI shape."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Estimate", "ModelInfo", "parse_estimate", "parse_models"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model the router offers, with prices in dollars per million tokens when known."""

    id: str
    name: str
    description: str = ""
    context_length: int | None = None
    input_per_1m_usd: Decimal | None = None
    output_per_1m_usd: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Estimate:
    """The router's upper bound on a request's charge (it refunds what goes unused)."""

    model: str
    input_tokens: int
    output_tokens: int
    usd: Decimal
    note: str = ""


def parse_models(document: Any) -> list[ModelInfo]:
    """Models from `{total, models: [...]}` (X-Router) or `{data: [...]}` (OpenAI), sorted by id."""
    entries: Any = None
    if isinstance(document, dict):
        entries = document.get("models")
        if not isinstance(entries, list):
            entries = document.get("data")
    elif isinstance(document, list):
        entries = document
    if not isinstance(entries, list):
        raise ValueError("the model list is neither {models: [...]} nor {data: [...]}")
    models = [model for entry in entries if (model := _parse_model(entry)) is not None]
    return sorted(models, key=lambda model: model.id)


def parse_estimate(document: Any) -> Estimate:
    """Read `/v1/estimate`'s answer; raises ValueError when it names no cost."""
    if not isinstance(document, dict):
        raise ValueError("the estimate is not a JSON object")
    cost = document.get("estimatedCost")
    usd = _decimal(cost.get("usd") if isinstance(cost, dict) else cost)
    if usd is None:
        raise ValueError("the estimate has no estimatedCost.usd")
    note = cost.get("note") if isinstance(cost, dict) else None
    return Estimate(
        model=str(document.get("model", "")),
        input_tokens=_int(document.get("estimatedInputTokens")) or 0,
        output_tokens=_int(document.get("estimatedOutputTokens")) or 0,
        usd=usd,
        note=note if isinstance(note, str) else "",
    )


def _parse_model(entry: Any) -> ModelInfo | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        return None
    pricing = entry.get("pricing")
    pricing = pricing if isinstance(pricing, dict) else {}
    # X-Router prices per 1K tokens; OpenRouter-style lists per token ("prompt", "completion").
    per_1k_in = _decimal(pricing.get("input_per_1k_tokens"))
    per_1k_out = _decimal(pricing.get("output_per_1k_tokens"))
    per_token_in = _decimal(pricing.get("prompt"))
    per_token_out = _decimal(pricing.get("completion"))
    name = entry.get("name")
    description = entry.get("description")
    return ModelInfo(
        id=entry["id"],
        name=name if isinstance(name, str) and name else entry["id"],
        description=description if isinstance(description, str) else "",
        context_length=_int(entry.get("context_length")),
        input_per_1m_usd=_scaled(per_1k_in, 3)
        if per_1k_in is not None
        else _scaled(per_token_in, 6),
        output_per_1m_usd=(
            _scaled(per_1k_out, 3) if per_1k_out is not None else _scaled(per_token_out, 6)
        ),
    )


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def _scaled(value: Decimal | None, exponent: int) -> Decimal | None:
    return value.scaleb(exponent).normalize() if value is not None else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
