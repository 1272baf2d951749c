"""A resumed conversation in the log: the newest messages at once, older ones as the reader
scrolls up, without losing the reader's place."""

from __future__ import annotations

from textual.app import App, ComposeResult

from tests.ui_helpers import visible_text, wait_for
from xrouter_tui.ui.widgets.chat_log import (
    HISTORY_BATCH,
    AnswerMessage,
    ChatLog,
    ErrorBlock,
    ShownMessage,
    UserMessage,
)

COUNT = 300


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
            lambda: log.unshown == COUNT - 2 * HISTORY_BATCH and log.scroll_y > 0,
            "a batch above, and the place kept",
        )
        await pilot.pause()
        # What the reader was looking at (the top of the first batch) is still on screen.
        top, bottom = log.scroll_y, log.scroll_y + log.size.height
        assert top <= oldest_shown.virtual_region.y < bottom
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
