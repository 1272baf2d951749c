"""What `xrouter-tui models` prints: the router's models with their prices, as a table or as JSON.

Ids, names and descriptions are the router's words: the table shows them through `one_line`,
the JSON keeps them as sent (escaped, never raw, where a terminal would act on them).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from xrouter_tui.api import ModelInfo
from xrouter_tui.safe_text import json_text, one_line

__all__ = ["models_json", "models_table"]


def models_json(models: Sequence[ModelInfo]) -> str:
    """A JSON list, one object a model; prices in dollars per million tokens (null if unknown)."""
    return json_text(
        [
            {
                "id": model.id,
                "name": model.name,
                "description": model.description,
                "context_length": model.context_length,
                "input_per_1m_usd": _number(model.input_per_1m_usd),
                "output_per_1m_usd": _number(model.output_per_1m_usd),
            }
            for model in models
        ]
    )


def models_table(models: Sequence[ModelInfo]) -> str:
    """Aligned columns: id, $ per 1M input and output tokens, context length, name."""
    header = ("MODEL", "IN $/1M", "OUT $/1M", "CONTEXT", "NAME")
    rows = [
        (
            one_line(model.id),
            _price(model.input_per_1m_usd),
            _price(model.output_per_1m_usd),
            _context(model.context_length),
            one_line(model.name),
        )
        for model in models
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        cells = [row[0].ljust(widths[0])] + [row[i].rjust(widths[i]) for i in (1, 2, 3)] + [row[4]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _number(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _price(value: Decimal | None) -> str:
    # A rate, not an amount paid (USDC amounts have six decimals): to the cent at least, more
    # digits only where the router's price has them, so `3.00` and `0.075` both read at a glance.
    if value is None:
        return "—"
    whole, _, cents = f"{value:.6f}".rstrip("0").partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _context(tokens: int | None) -> str:
    if not tokens:
        return "—"
    if tokens >= 1_000_000 and tokens % 1_000_000 < 50_000:
        return f"{tokens / 1_000_000:g}M"
    return f"{round(tokens / 1000)}K" if tokens >= 1000 else str(tokens)
