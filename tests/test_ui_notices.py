"""Notices and dialogs: the "Demo mode" notice, still up when a dialog opens, never covers it
(its amount, choices and buttons stay whole); the notice shows where the dialog leaves room."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets._toast import Toast

from tests.ui_helpers import demo_chat, visible_text, wait_for
from xrouter_tui.config import load_settings
from xrouter_tui.ui.screens.model_picker import ModelPicker
from xrouter_tui.ui.screens.payment import PaymentDialog

# 20,000 max_tokens of Claude 3.5 Sonnet ask about $0.30: above confirm_above_usd ($0.10).
ASKS_FIRST = replace(load_settings(), max_tokens=20_000)


def covered_cells(dialog: Widget) -> list[tuple[int, int]]:
    """The cells of `dialog` where something else is drawn on top of it."""
    screen = dialog.screen
    covered = []
    region = dialog.region
    for y in range(region.y, region.bottom):
        for x in range(region.x, region.right):
            widget, _ = screen.get_widget_at(x, y)
            if widget is not dialog and dialog not in widget.ancestors:
                covered.append((x, y))
    return covered


def demo_notice_up(pilot: Pilot) -> bool:
    return "Demo mode" in [note.title for note in pilot.app._notifications]


@pytest.mark.parametrize("size", [(80, 24), (110, 34)])
async def test_the_payment_question_is_whole_with_the_demo_notice_up(size):
    with demo_chat(settings=ASKS_FIRST) as chat:
        # Notices drawn, as in a terminal (run_test leaves them out unless asked).
        async with chat.app.run_test(size=size, notifications=True) as pilot:
            assert demo_notice_up(pilot)
            await pilot.press(*"Write me a long story", "enter")
            await wait_for(pilot, lambda: isinstance(chat.app.screen, PaymentDialog), "the ask")
            await wait_for(pilot, lambda: bool(chat.app.screen.query(Toast)), "the notice")
            await pilot.pause()
            assert demo_notice_up(pilot), "the notice is still up"
            dialog = chat.app.screen.query_one("#payment")
            assert covered_cells(dialog) == []
            text = visible_text(chat.app)
            for words in ("Pay for this request?", "$0.300030 USDC up front", "Cancel"):
                assert words in text, words
            # The notice shows where the dialog leaves room.
            assert "Demo mode" in text


async def test_the_model_picker_is_whole_with_the_demo_notice_up():
    with demo_chat() as chat:
        async with chat.app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("f2")
            await wait_for(pilot, lambda: isinstance(chat.app.screen, ModelPicker), "the picker")
            await wait_for(pilot, lambda: bool(chat.app.screen.query(Toast)), "the notice")
            await pilot.pause()
            assert demo_notice_up(pilot)
            assert covered_cells(chat.app.screen.query_one("#picker")) == []
