"""The status bar at the sizes people use: one form of every label at every width, the price of
the prompt as typed appearing without moving anything else, and the money always in view."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from textual.app import App, ComposeResult

from tests.test_ui import SLOW, prompt, send, status, status_text
from tests.ui_helpers import Posted, demo_chat, wait_for
from xrouter_tui.payments import format_usd
from xrouter_tui.ui.messages import ResponseComplete, ResponseStarted
from xrouter_tui.ui.widgets.status_bar import ChatState, StatusBar

SMALL = (80, 24)
ADDRESS = "0x9013aBcDeF0123456789aBcDeF0123456789" + "3A16"


def words_at(line: str) -> dict[int, str]:
    """Each word of `line` by the column it starts at."""
    return {match.start(): match.group() for match in re.finditer(r"\S+", line)}


def moved(before: str, after: str) -> list[str]:
    """The words of `before` that are not at the same column in `after`."""
    now = words_at(after)
    return [word for column, word in words_at(before).items() if now.get(column) != word]


async def test_at_80_columns_the_price_appears_and_nothing_moves():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SMALL, message_hook=posted) as pilot:
            await send(pilot, "Show me a table")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            spent = status(pilot).session_spend
            assert spent > 0
            before = status_text(pilot)
            assert f"session {format_usd(spent)}" in before, before
            assert f"last {format_usd(spent)}" in before, before

            await pilot.press(*"and now a list")
            await wait_for(pilot, lambda: status(pilot).estimate is not None, "the price")
            after = status_text(pilot)
            price = format_usd(status(pilot).estimate)
            assert f"up to {price}" in after, after
            assert moved(before, after) == [], f"{before!r} became {after!r}"

            # Emptied, the box has no price, and the line is as it was.
            prompt(pilot).clear()
            await wait_for(pilot, lambda: status(pilot).estimate is None, "no price")
            assert status_text(pilot) == before


async def test_at_80_columns_the_session_total_shows_while_an_answer_streams():
    posted = Posted()
    with demo_chat(SLOW) as chat:
        async with chat.app.run_test(size=SMALL, message_hook=posted) as pilot:
            await send(pilot, "first question")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the first answer")
            first = status(pilot).session_spend
            await send(pilot, "second question")
            await wait_for(pilot, lambda: len(posted.of(ResponseStarted)) == 2, "the second")
            await wait_for(pilot, lambda: status(pilot).state is ChatState.STREAMING, "streaming")
            bar = status_text(pilot)
            assert "streaming" in bar and " DEMO " in bar, bar
            # The second answer is paid up front: both payments are in the session total.
            total = status(pilot).session_spend
            assert total > first and f"session {format_usd(total)}" in bar, bar
            assert len(bar) <= SMALL[0] - 2, "one line, inside the bar's padding"


class OneBar(App[None]):
    """A status bar alone, as wide as the terminal."""

    CSS = "StatusBar { height: 1; padding: 0 1; }"

    def compose(self) -> ComposeResult:
        yield StatusBar(demo=True, id="status")


# What the bar may hold at once: an answer's tokens, the conversation's own settings, a price
# for the prompt with the history's share, a wallet.
FULL = {
    "model": "anthropic/claude-3.5-sonnet",
    "tokens": "1234 in · 567 out tok",
    "last_charge": Decimal("0.0135"),
    "session_spend": Decimal("0.0405"),
    "conversation_settings": "temp 0.2 · max 300",
    "wallet": ADDRESS,
}


@pytest.mark.parametrize("state", [ChatState.IDLE, ChatState.STREAMING, ChatState.ERROR])
async def test_at_every_width_the_figures_stay_and_the_labels_keep_their_form(state):
    app = OneBar()
    async with app.run_test(size=(200, 3)) as pilot:
        bar = app.query_one(StatusBar)
        for name, value in {**FULL, "state": state}.items():
            setattr(bar, name, value)
        for width in range(60, 201, 7):
            await pilot.resize_terminal(width, 3)
            await pilot.pause()
            bar.estimate, bar.context = None, ""
            await pilot.pause()
            before = str(bar.render())
            bar.estimate, bar.context = Decimal("0.0141"), "1K tok · $0.000600"
            await pilot.pause()
            after = str(bar.render())
            assert len(after) <= width - 2, (width, after)
            assert "last $0.013500" in after and "session $0.040500" in after, (width, after)
            assert "up to $0.014100" in after, (width, after)
            # "idle" is a word that gives way; what the chat is busy with says more.
            if state is not ChatState.IDLE and width >= SMALL[0]:
                assert state.value in after, (width, after)
            assert moved(before, after) == [], (width, before, after)
            for terse in ("≤", " / $"):
                assert terse not in after, (width, after)
