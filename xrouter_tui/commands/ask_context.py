"""Before `ask` pays for anything: the model is one the router has, and what is sent fits the
router's limits and the model's context (the newest exchanges of a continued conversation)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import IO

from xrouter_tui.api import Limits, ModelInfo, RouterClient, RouterError, Timeouts
from xrouter_tui.commands.ask_turn import AskRequest
from xrouter_tui.config import Settings
from xrouter_tui.context import choose_context, short_tokens
from xrouter_tui.model_catalog import closest_ids

__all__ = ["UnknownModel", "fitted_request", "known_model"]


class UnknownModel(ValueError):
    """The router's own list has no such model; the message is one line."""


def known_model(
    model_id: str, models: Sequence[ModelInfo], base_url: str, settings: Settings
) -> ModelInfo | None:
    """The model's entry: from `models` (the list kept from the router, or the demo's), else
    from the router's live list (a free request, made only then). None when no list can be
    read; raises `UnknownModel` when the router's list has no such id."""
    found = next((m for m in models if m.id == model_id), None)
    if found is not None:
        return found
    live = _live_models(base_url, settings)
    if live is None:
        return None  # the turn itself will say what is wrong with the router
    found = next((m for m in live if m.id == model_id), None)
    if found is None:
        close = closest_ids(model_id, [m.id for m in live])
        hint = f"; did you mean {' or '.join(close)}?" if close else "."
        raise UnknownModel(
            f"the router has no model {model_id!r}{hint} (`xrouter-tui models` lists them)"
        )
    return found


def _live_models(base_url: str, settings: Settings) -> list[ModelInfo] | None:
    async def fetch() -> list[ModelInfo]:
        async with RouterClient(
            base_url, timeouts=Timeouts.of(settings), limits=Limits.of(settings)
        ) as client:
            return await client.list_models()

    try:
        return asyncio.run(fetch())
    except RouterError:
        return None


def fitted_request(
    request: AskRequest, model: ModelInfo | None, settings: Settings, stderr: IO[str]
) -> AskRequest:
    """`request` with only the earlier exchanges that fit (see `context.choose_context`); one
    line on `stderr` when some were left out. Raises `PromptTooLong` when the question alone
    does not fit."""
    context = choose_context(
        request.system,
        request.earlier,
        request.prompt,
        context_length=model.context_length if model is not None else None,
        max_tokens=request.max_tokens,
        max_exchanges=settings.context_messages,
    )
    if context.left_out:
        print(
            f"Older messages not sent: {context.left_out} of "
            f"{context.left_out + context.earlier_sent} (~{short_tokens(context.left_out_tokens)}"
            f" tokens), to fit {context.limit}.",
            file=stderr,
            flush=True,
        )
    system = 1 if context.messages[0]["role"] == "system" else 0
    return replace(request, earlier=tuple(context.messages[system:-1]))
