"""The model picker at the sizes people use: its title counts the models a filter leaves, and at
80x24 every row shows its prices whole, the names and ids giving way instead."""

from __future__ import annotations

import re
from decimal import Decimal

from textual.pilot import Pilot
from textual.widgets import Label, OptionList

from tests.ui_helpers import demo_chat, visible_text, wait_for
from xrouter_tui.api import ModelInfo
from xrouter_tui.devserver.catalog import MODELS
from xrouter_tui.ui.screens.model_picker import ModelPicker

SMALL = (80, 24)
# Ids as long as a real router's: the longest pushed the prices out of an 80-column row.
LONG = (
    ModelInfo(
        "nousresearch/hermes-3-llama-3.1-405b:extended",
        "Nous: Hermes 3 405B Instruct (extended)",
        context_length=128_000,
        input_per_1m_usd=Decimal("4.5"),
        output_per_1m_usd=Decimal("4.5"),
    ),
    ModelInfo(
        "sao10k/l3.3-euryale-70b",
        "Sao10K: Llama 3.3 Euryale 70B",
        context_length=131_000,
        input_per_1m_usd=Decimal("0.0000075"),
        output_per_1m_usd=Decimal("0.9"),
    ),
)
PRICES = re.compile(r"(\$[0-9.,]+) /\s*(\$[0-9.,]+)")


async def open_picker(pilot: Pilot, *, extra: tuple[ModelInfo, ...] = ()) -> ModelPicker:
    app = pilot.app
    await wait_for(pilot, lambda: len(app.models) == len(MODELS), "the live model list")
    app.models.extend(extra)
    app.clear_notifications()
    await pilot.press("f2")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker), "the picker")
    await pilot.pause()
    return app.screen  # type: ignore[return-value]


def title(picker: ModelPicker) -> str:
    return str(picker.query_one("#picker-title", Label).render())


def drawn_row(picker: ModelPicker, index: int) -> str:
    """Row `index` of the list as drawn on screen now (it must be scrolled into view)."""
    options = picker.query_one(OptionList)
    region = options.content_region
    y = region.y + index - round(options.scroll_y)
    assert region.y <= y < region.bottom, "the row is in view"
    strip = picker.app.screen._compositor.render_strips()[y]
    return "".join(segment.text for segment in strip)[region.x : region.right]


async def test_the_title_counts_what_the_filter_leaves():
    with demo_chat() as chat:
        async with chat.app.run_test(size=(110, 34)) as pilot:
            picker = await open_picker(pilot)
            total = len(MODELS)
            assert title(picker) == f"Model · {total} models · now anthropic/claude-3.5-sonnet"
            await pilot.press(*"gpt")
            options = picker.query_one(OptionList)
            await wait_for(pilot, lambda: options.option_count == 2, "the list filtered")
            assert f"Model · 2 of {total} models ·" in title(picker)
            assert f"2 of {total} models" in visible_text(chat.app)
            await pilot.press(*"zzzz")
            await wait_for(pilot, lambda: options.option_count == 0, "nothing left")
            assert f"0 of {total} models" in title(picker)
            await pilot.press(*["backspace"] * 7)
            await wait_for(pilot, lambda: options.option_count == total, "all back")
            assert f"Model · {total} models ·" in title(picker)


async def test_at_80x24_every_row_shows_its_prices_whole():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SMALL) as pilot:
            picker = await open_picker(pilot, extra=LONG)
            options = picker.query_one(OptionList)
            rows = []
            # Every row, scrolled into view as the cursor moves.
            for index in range(options.option_count):
                options.highlighted = index
                await pilot.pause()
                rows.append(drawn_row(picker, index))
                whole = str(options.get_option_at_index(index).prompt)
                prices = PRICES.search(whole)
                assert prices is not None, whole
                assert prices.group(0) in rows[-1], (whole, rows[-1])
            assert len(rows) == len(MODELS) + len(LONG)
            # The longest id gave up its provider part to keep the prices in the row.
            assert any("  hermes-3-llama-3.1-405b:extended  " in row for row in rows), rows
            assert not any("nousresearch/" in row for row in rows)
            # Ids and prices line up in columns.
            assert len({row.index(" /") for row in rows}) == 1, rows
