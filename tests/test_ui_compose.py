"""Writing the prompt: ctrl+g opens it in the user's editor (run without the wallet key in its
environment) and brings the edited text back; a large paste shows as one line and is sent whole."""

from __future__ import annotations

import stat

from textual import events

from tests.test_ui import SIZE, prompt
from tests.ui_helpers import Posted, demo_chat, run_command, wait_for
from xrouter_tui.ui.messages import ResponseComplete

SECRET = "0x" + "ab" * 32


def editor_script(folder) -> tuple[str, object]:
    """An editor that adds a line to the file it is given and writes down its environment."""
    seen = folder / "editor-env.txt"
    script = folder / "editor.sh"
    script.write_text(f'#!/bin/sh\nenv > "{seen}"\nprintf "\\nand a second line\\n" >> "$1"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), seen


async def test_ctrl_g_edits_the_prompt_in_the_editor_without_the_key(tmp_path, monkeypatch):
    command, seen = editor_script(tmp_path)
    monkeypatch.setenv("EDITOR", command)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("XROUTER_PRIVATE_KEY", SECRET)
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await pilot.press(*"first line")
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: "second" in prompt(pilot).text, "the edited text")
            assert prompt(pilot).text == "first line\nand a second line"
            assert prompt(pilot).has_focus
            # From the palette too.
            await run_command(pilot, "Compose in editor")
            await wait_for(pilot, lambda: prompt(pilot).text.count("second") == 2, "again")
    environment = seen.read_text()
    assert "PATH=" in environment and SECRET not in environment
    assert "XROUTER_" not in environment
    assert not list(tmp_path.glob("xrouter-prompt-*"))  # its file was removed


async def test_a_missing_editor_is_one_line_and_the_prompt_stays(monkeypatch):
    monkeypatch.setenv("EDITOR", "/nonexistent/editor --wait")
    monkeypatch.delenv("VISUAL", raising=False)
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await pilot.press(*"keep me")
            await pilot.press("ctrl+g")
            await pilot.pause()
            notices = [n.message for n in pilot.app._notifications if n.title == "Editor"]
            assert notices == ["No editor '/nonexistent/editor' was found: set $VISUAL or $EDITOR."]
            assert prompt(pilot).text == "keep me"


async def test_a_large_paste_shows_collapsed_and_is_sent_whole():
    pasted = "\n".join(f"line {n} of the log" for n in range(2345))
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await pilot.press(*"summarise this: ")
            prompt(pilot).post_message(events.Paste(pasted))
            await wait_for(pilot, lambda: "[pasted" in prompt(pilot).text, "the paste")
            assert prompt(pilot).text == "summarise this: [pasted 2,345 lines]"
            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
    [paid] = chat.router.state.payments
    assert paid.messages[-1]["content"] == "summarise this: " + pasted
