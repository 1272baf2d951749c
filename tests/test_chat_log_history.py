"""A resumed conversation in the log: the newest messages at once, older ones as the reader
scrolls up, without losing the reader's place, drawn as they would be had they been mounted at
once."""

from __future__ import annotations

import re

import pytest
from textual.app import App, ComposeResult
from textual.selection import Selection

from tests.ui_helpers import Posted, visible_text, wait_for
from xrouter_tui.ui.widgets.chat_log import (
    HISTORY_BATCH,
    OLDER_BATCH,
    AnswerFooter,
    AnswerMessage,
    ChatLog,
    ErrorBlock,
    SavedAnswer,
    ShownMessage,
    UserMessage,
    _message_widget,
)

COUNT = 300
TX = "0x" + "ab" * 32


class LogApp(App[None]):
    CSS_PATH = "../xrouter_tui/ui/app.tcss"

    def compose(self) -> ComposeResult:
        yield ChatLog(id="chat-log")


def conversation(count: int) -> list[ShownMessage]:
    messages = []
    for index in range(count):
        if index % 2 == 0:
            messages.append(ShownMessage("user", f"Question number {index}"))
        else:
            messages.append(
                ShownMessage(
                    "assistant",
                    f"## Answer number {index}\n\nSome **text** and a list:\n\n- one\n- two\n",
                    model="m",
                    footer=f"12 in / 34 out tokens · paid $0.010000 · answer {index}",
                )
            )
    return messages


async def test_only_the_newest_messages_are_mounted_and_the_end_is_shown():
    app = LogApp()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        await log.show_history(conversation(COUNT))
        await pilot.pause()
        assert len(log.children) == HISTORY_BATCH
        assert log.unshown == COUNT - HISTORY_BATCH
        screen = visible_text(app)
        assert f"answer {COUNT - 1}" in screen and "Question number 0 " not in screen
        # The answers are drawn as Markdown, not shown as source.
        assert f"Answer number {COUNT - 1}" in screen and "## Answer" not in screen


async def test_scrolling_up_mounts_older_messages_above_and_keeps_the_place():
    app = LogApp()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        await log.show_history(conversation(COUNT))
        await pilot.pause()
        oldest_shown = log.children[0]
        log.scroll_to(y=0, animate=False)
        await wait_for(
            pilot,
            lambda: log.unshown <= COUNT - HISTORY_BATCH - OLDER_BATCH and log.scroll_y > 0,
            "a batch above, and the place kept",
        )
        await pilot.pause()
        # What the reader was looking at (the top of the first batch) is still on screen.
        top, bottom = log.scroll_y, log.scroll_y + log.size.height
        assert top <= oldest_shown.virtual_region.y < bottom
        # Older answers are drawn by one widget each, as they would look mounted whole.
        assert any(isinstance(child, SavedAnswer) for child in log.children)
        # Scrolling on up brings every message in, the first question last.
        while log.unshown:
            unshown = log.unshown
            log.scroll_to(y=0, animate=False)
            # Loaded, and the reader's place kept: no longer at the very top.
            await wait_for(
                pilot, lambda n=unshown: log.unshown < n and log.scroll_y > 0, "another batch"
            )
        await pilot.pause()
        log.scroll_to(y=0, animate=False)
        await pilot.pause()
        assert len(log.children) == COUNT
        assert "Question number 0" in visible_text(app)
        # In order, oldest first.
        numbers = [int(re.findall(r"\d+", _text(child))[0]) for child in log.messages()]
        assert numbers == list(range(COUNT))


def _text(widget) -> str:
    if isinstance(widget, AnswerMessage):
        return widget.body.source
    return str(widget.render())


async def test_a_failed_turn_shows_its_error_and_an_empty_answer_no_body():
    app = LogApp()
    async with app.run_test(size=(100, 30)) as pilot:
        log = app.query_one(ChatLog)
        await log.show_history(
            [
                ShownMessage("user", "Will this work?"),
                ShownMessage("assistant", "", model="m", error="The router could not be reached."),
            ]
        )
        await pilot.pause()
        assert isinstance(log.children[0], UserMessage)
        answer = log.children[1]
        assert isinstance(answer, AnswerMessage) and not answer.body.display
        assert answer.query_one(ErrorBlock)
        assert "The router could not be reached." in visible_text(app)


# -- an older answer looks the same as one mounted whole --------------------------------------

ANSWER = ShownMessage(
    "assistant",
    "## A title\n\nSome **bold** text, `code` and a [link](https://example.org).\n\n"
    "- one\n- two\n\n```py\nx = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    model="some/model",
    footer=f"12 in / 34 out tokens · paid $0.010000 on Base Sepolia · tx {TX} · a long line",
)


class OneAnswerApp(LogApp):
    def __init__(self, saved: bool) -> None:
        super().__init__()
        self.saved = saved

    async def on_mount(self) -> None:
        await self.query_one(ChatLog).mount(_message_widget(ANSWER, saved=self.saved))

    @property
    def answer(self) -> AnswerMessage:
        return self.query_one(AnswerMessage)


async def screenshot(saved: bool, size: tuple[int, int], change: str) -> tuple[str, str | None]:
    """What the answer looks like, and the text selected in it."""
    app = OneAnswerApp(saved)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        answer = app.answer
        assert isinstance(answer, SavedAnswer) == saved
        if change == "light theme":
            app.theme = "textual-light"
        elif change == "the message cursor on it":
            answer.add_class("-selected")
        elif change == "narrower":
            await pilot.resize_terminal(size[0] - 30, size[1])
        elif change == "all its text selected":
            # As a mouse drag over all of it selects it: the widgets that draw its text.
            drawn = [answer] if saved else [answer.body, answer.footer]
            app.screen.selections = dict.fromkeys(drawn, Selection(None, None))
        await pilot.pause()
        await pilot.pause(0.05)
        shown = re.sub(r"terminal-\d+", "terminal", app.export_screenshot())
        return shown, app.screen.get_selected_text()


CHANGES = ["", "light theme", "the message cursor on it", "narrower", "all its text selected"]


@pytest.mark.parametrize("change", CHANGES)
async def test_an_older_answer_is_drawn_as_one_mounted_whole(change):
    # Every cell, colour and border the same, the money line wrapped the same; the same text
    # copied from a selection.
    saved = await screenshot(True, (100, 32), change)
    assert saved == await screenshot(False, (100, 32), change)
    if change == "all its text selected":
        assert saved[1] is not None and saved[1].endswith(f"tx {TX} · a long line")


async def test_clicking_an_older_answers_money_line_copies_its_transaction():
    posted = Posted()
    app = OneAnswerApp(saved=True)
    async with app.run_test(size=(100, 32), message_hook=posted) as pilot:
        await pilot.pause()
        answer = app.answer
        # Its first line of two (wrapped at 100 columns), above the bottom border.
        money_line = answer.region.height - 3
        await pilot.click(answer, offset=(4, 2))  # the title: nothing to copy
        await pilot.pause()
        assert not posted.of(AnswerFooter.CopyTransaction)
        await pilot.click(answer, offset=(4, money_line))
        await wait_for(pilot, lambda: posted.of(AnswerFooter.CopyTransaction), "the copy")
        assert [event.tx for event in posted.of(AnswerFooter.CopyTransaction)] == [TX]
