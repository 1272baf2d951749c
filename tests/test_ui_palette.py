"""The command palette runs the entry it lists for the text as typed: Enter right after typing,
or a moment later, never runs the entry of a shorter prefix or of a list replaced meanwhile.

Textual searches in a worker, a moment after each key; on a loaded machine the search lags
behind the typing. `slow_searches` makes it lag on purpose (every search takes a second, as a
busy machine might make it), so the race is the same in every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from textual.command import CommandList, CommandPalette, Hit
from textual.pilot import Pilot
from textual.screen import Screen
from textual.system_commands import SystemCommandsProvider

from tests.ui_helpers import demo_chat, wait_for
from xrouter_tui.ui.palette import Palette
from xrouter_tui.ui.screens.conversations import ConversationsScreen
from xrouter_tui.ui.screens.help import HelpScreen
from xrouter_tui.ui.screens.ledger import LedgerScreen
from xrouter_tui.ui.screens.model_picker import ModelPicker

SIZE = (110, 34)
SEARCH_TIME = 1.0
# The screen each command opens: what the user sees it ran.
OPENS: dict[str, type[Screen]] = {
    "Keys": HelpScreen,
    "Spending ledger": LedgerScreen,
    "Conversations": ConversationsScreen,
    "Switch model": ModelPicker,
}


@pytest.fixture(autouse=True)
def no_editor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong command must not open a real editor in the test's terminal ("Compose in
    editor" is one of the entries)."""
    monkeypatch.setenv("VISUAL", "true")


@pytest.fixture
def slow_searches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every palette search answers after SEARCH_TIME, its hits one by one."""
    search = SystemCommandsProvider.search

    async def slowly(self: SystemCommandsProvider, query: str) -> AsyncIterator[Hit]:
        hits = [hit async for hit in search(self, query)]
        for hit in hits:
            await asyncio.sleep(SEARCH_TIME / len(hits))
            yield hit

    monkeypatch.setattr(SystemCommandsProvider, "search", slowly)


def highlighted(pilot: Pilot) -> str:
    """The title of the entry the palette highlights now."""
    options = pilot.app.screen.query_one(CommandList)
    if options.highlighted is None:
        return ""
    return str(options.get_option_at_index(options.highlighted).prompt).partition("\n")[0]


async def type_and_enter(pilot: Pilot, title: str, wait: float) -> type[Screen]:
    """Type `title` in the palette, wait `wait` seconds, press Enter: the screen that opened
    (the chat's own when the command opened none)."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
    assert isinstance(app.screen, Palette), "ctrl+p opens the app's palette"
    await pilot.press(*title.lower())
    if wait:
        await pilot.pause(wait)
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette), "it to close")
    try:
        await wait_for(pilot, lambda: app.screen is not app.chat, "a screen", limit=2 * SEARCH_TIME)
    except AssertionError:
        return type(app.chat)
    opened = type(app.screen)
    await pilot.press("escape")
    await wait_for(pilot, lambda: app.screen is app.chat, "back to the chat")
    return opened


@pytest.mark.parametrize("wait", [0, 0.6])
async def test_enter_runs_the_command_typed(wait):
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            for title, screen in OPENS.items():
                assert await type_and_enter(pilot, title, wait) is screen, title


@pytest.mark.parametrize("wait", [0, 0.6])
async def test_enter_runs_the_command_typed_while_the_search_lags(slow_searches, wait):
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            for title, screen in OPENS.items():
                assert await type_and_enter(pilot, title, wait) is screen, title


async def test_a_move_through_the_list_stays_while_the_search_lags(slow_searches):
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+p")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, Palette), "the palette")
            await wait_for(pilot, lambda: highlighted(pilot) != "", "the first entries")
            await pilot.press("s")
            # Down, on the list as it is shown, to the first entry that opens a screen.
            for _ in range(20):
                await pilot.press("down")
                if highlighted(pilot) in OPENS:
                    break
            chosen = highlighted(pilot)
            assert chosen in OPENS, chosen
            # Long enough for the search for "s" to have ended, had the move not ended it.
            await pilot.pause(SEARCH_TIME + 0.3)
            assert highlighted(pilot) == chosen, "nothing but the reader moves the highlight"
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, OPENS[chosen]), chosen)
