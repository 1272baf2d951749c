"""A conversation's own settings from the palette: system prompt, temperature and max_tokens are
saved with it, shown in the status bar where they differ, and sent with its turns."""

from __future__ import annotations

from textual.widgets import Input, TextArea

from tests.test_ui import SIZE, send, status_text
from tests.ui_helpers import Posted, demo_chat, run_command, wait_for
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.ui.messages import ResponseComplete
from xrouter_tui.ui.screens.conversation_settings import SettingsDialog


async def set_settings(pilot, system: str, temperature: str, max_tokens: str) -> None:
    await run_command(pilot, "Conversation settings")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SettingsDialog), "the dialog")
    dialog = pilot.app.screen
    dialog.query_one("#settings-system", TextArea).load_text(system)
    dialog.query_one("#settings-temperature", Input).value = temperature
    dialog.query_one("#settings-max-tokens", Input).value = max_tokens
    await pilot.press("ctrl+s")
    await pilot.pause()


async def test_a_conversations_own_settings_are_kept_shown_and_sent():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=(140, 36), message_hook=posted) as pilot:
            await set_settings(pilot, "Answer in French.", "0.2", "300")
            assert not isinstance(pilot.app.screen, SettingsDialog)
            assert "own system prompt · temp 0.2 · max 300" in status_text(pilot)
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            conversation = pilot.app.chat.conversation_id
    [paid] = chat.router.state.payments
    assert paid.messages[0] == {"role": "system", "content": "Answer in French."}
    with Store.open(history_path(demo=True)) as store:
        info = store.conversation(conversation)
    assert info is not None
    assert (info.system_prompt, info.temperature, info.max_tokens) == (
        "Answer in French.",
        0.2,
        300,
    )


async def test_a_bad_number_is_said_in_the_dialog_and_nothing_changes():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await set_settings(pilot, "", "7", "")
            dialog = pilot.app.screen
            assert isinstance(dialog, SettingsDialog)
            error = str(dialog.query_one("#settings-error").render())
            assert error == "Temperature must be a number from 0 to 2, or blank."
            await pilot.press("escape")
            assert pilot.app.chat.conversation.temperature is None
