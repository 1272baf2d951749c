"""The models to pick from: the router's last list kept on disk, a built-in fallback, and the
models used recently, so the picker works at once, offline too, and puts the usual choices first.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from xrouter_tui import safe_json
from xrouter_tui.api import ModelInfo, parse_models
from xrouter_tui.config import ensure_private_dir

__all__ = ["FALLBACK_MODELS", "ModelCatalog", "closest_ids", "picker_order"]

CATALOG_FILE = "models.json"
RECENT_LIMIT = 8

# Shown when the router was never reached from this machine: a few well-known models, with
# X-Router's list prices as published when this was written. The live list replaces them.
FALLBACK_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "anthropic/claude-3.5-sonnet",
        "Claude 3.5 Sonnet",
        context_length=200_000,
        input_per_1m_usd=Decimal(3),
        output_per_1m_usd=Decimal(15),
    ),
    ModelInfo(
        "openai/gpt-4o",
        "GPT-4o",
        context_length=128_000,
        input_per_1m_usd=Decimal("2.5"),
        output_per_1m_usd=Decimal(10),
    ),
    ModelInfo(
        "openai/gpt-4o-mini",
        "GPT-4o mini",
        context_length=128_000,
        input_per_1m_usd=Decimal("0.15"),
        output_per_1m_usd=Decimal("0.6"),
    ),
    ModelInfo(
        "google/gemini-2.0-flash-001",
        "Gemini 2.0 Flash",
        context_length=1_000_000,
        input_per_1m_usd=Decimal("0.1"),
        output_per_1m_usd=Decimal("0.4"),
    ),
    ModelInfo(
        "meta-llama/llama-3.3-70b-instruct",
        "Llama 3.3 70B Instruct",
        context_length=131_072,
        input_per_1m_usd=Decimal("0.12"),
        output_per_1m_usd=Decimal("0.3"),
    ),
)


class ModelCatalog:
    """`models.json` in the data dir: the last model list per router, and recent choices.

    Every problem reading it counts as an empty file: it only ever holds what can be fetched again.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / CATALOG_FILE

    def cached(self, base_url: str) -> list[ModelInfo] | None:
        """The list last fetched from `base_url`, or None when there is none."""
        entries = self._read().get("routers", {}).get(base_url)
        if not isinstance(entries, list):
            return None
        try:
            return parse_models(entries) or None
        except ValueError:
            return None

    def store(self, base_url: str, models: Sequence[ModelInfo]) -> None:
        """Keep `models` as `base_url`'s list for the next start."""
        document = self._read()
        routers = document.setdefault("routers", {})
        routers[base_url] = [_entry(model) for model in models]
        self._write(document)

    def recent(self) -> list[str]:
        """Model ids chosen lately, newest first."""
        return _recent(self._read())

    def remember(self, model_id: str) -> None:
        """Put `model_id` first among the recent choices."""
        document = self._read()
        recent = [model_id, *(item for item in _recent(document) if item != model_id)]
        document["recent"] = recent[:RECENT_LIMIT]
        self._write(document)

    def _read(self) -> dict[str, Any]:
        try:
            document = safe_json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return document if isinstance(document, dict) else {}

    def _write(self, document: dict[str, Any]) -> None:
        ensure_private_dir(self.path.parent)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".models-")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle)
            os.replace(temporary, self.path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            raise


def picker_order(models: Iterable[ModelInfo], recent: Sequence[str]) -> list[ModelInfo]:
    """Recently used models first (newest first), then the rest by id."""
    rank = {model_id: index for index, model_id in enumerate(recent)}
    return sorted(models, key=lambda model: (rank.get(model.id, len(rank)), model.id))


def _recent(document: dict[str, Any]) -> list[str]:
    recent = document.get("recent", [])
    return [item for item in recent if isinstance(item, str)] if isinstance(recent, list) else []


def _entry(model: ModelInfo) -> dict[str, Any]:
    """`model` in X-Router's own shape, which `parse_models` reads back."""
    pricing: dict[str, str] = {}
    if model.input_per_1m_usd is not None:
        pricing["input_per_1k_tokens"] = str(model.input_per_1m_usd.scaleb(-3))
    if model.output_per_1m_usd is not None:
        pricing["output_per_1k_tokens"] = str(model.output_per_1m_usd.scaleb(-3))
    return {
        "id": model.id,
        "name": model.name,
        "description": model.description,
        "context_length": model.context_length,
        "pricing": pricing,
    }


def closest_ids(wanted: str, ids: Sequence[str], count: int = 3) -> list[str]:
    """The ids nearest to `wanted` (a mistyped id, or one without its provider: `gpt-4o` finds
    `openai/gpt-4o`), best first; at most `count`."""
    by_name: dict[str, str] = {}
    for model_id in ids:
        by_name.setdefault(model_id.lower(), model_id)
        by_name.setdefault(model_id.rsplit("/", 1)[-1].lower(), model_id)
    names = difflib.get_close_matches(
        wanted.strip().lower(), list(by_name), n=count * 2, cutoff=0.6
    )
    found: list[str] = []
    for name in names:
        if by_name[name] not in found:
            found.append(by_name[name])
    return found[:count]
