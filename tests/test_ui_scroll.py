"""Reading a conversation by keyboard while the prompt keeps the focus: PageUp/PageDown scroll
the log a page, ctrl+Home goes to the first message (every older batch loaded on the way),
ctrl+End back to the last one, where the answer being streamed is followed again.

Driven by keyboard through Pilot against the local router, on a conversation saved in the
history as `ask` saves it; assertions are on what the user sees and on where the keys went.
"""

from __future__ import annotations

import re

from textual.pilot import Pilot

from tests.ui_helpers import Posted, demo_chat, visible_text, wait_for
from xrouter_tui.devserver import DevServerConfig
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui.messages import ResponseComplete
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog
from xrouter_tui.ui.widgets.prompt import PromptInput

SIZE = (110, 36)
MODEL = "anthropic/claude-3.5-sonnet"
# An answer streamed for about ten seconds: long enough to press keys while it comes.
STREAMING = DevServerConfig(network=BASE_SEPOLIA.v1_name, delta_delay=0.03, reply_deltas=300)


def seed(count: int) -> int:
    """A saved conversation of `count` messages, questions and answers in turn, each naming
    its number; the answers a few lines of Markdown."""
    with Store.open(history_path()) as store:
        conversation = store.new_conversation(MODEL, title="a long one")
        for number in range(count):
            if number % 2 == 0:
                store.add_message(conversation, "user", f"question {number} of the reader")
            else:
                text = f"answer {number} of the model\n\n- a point\n- another point\n"
                store.add_message(conversation, "assistant", text, model=MODEL)
    return conversation


def log_of(pilot: Pilot) -> ChatLog:
    return pilot.app.chat.query_one(ChatLog)


def prompt_of(pilot: Pilot) -> PromptInput:
    return pilot.app.chat.query_one(PromptInput)


def at_the_bottom(log: ChatLog) -> bool:
    return log.scroll_y >= log.max_scroll_y


async def test_page_keys_scroll_the_conversation_and_typing_still_goes_to_the_prompt():
    conversation = seed(60)
    # Not the demo: its conversations are kept apart from the user's.
    with demo_chat(demo=False) as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            assert await pilot.app.chat.open_conversation(conversation)
            log = log_of(pilot)
            prompt = prompt_of(pilot)
            await wait_for(pilot, lambda: log.max_scroll_y > 0 and at_the_bottom(log), "the end")
            await pilot.pause()
            assert "answer 59 of the model" in visible_text(pilot.app)
            # A prompt of two lines, its cursor at the end of the second.
            await pilot.press(*"line one", "shift+enter", *"line two")
            cursor = prompt.cursor_location
            bottom = log.scroll_y

            await pilot.press("pageup")
            await pilot.pause()
            page = log.scrollable_content_region.height - 1
            assert log.scroll_y == bottom - page
            screen = visible_text(pilot.app)
            assert "answer 59 of the model" not in screen and "question 52 " in screen
            # The prompt kept the focus, its text and its cursor; typing still goes to it.
            assert isinstance(pilot.app.focused, PromptInput)
            assert prompt.cursor_location == cursor
            await pilot.press(*" and three")
            assert prompt.text == "line one\nline two and three"

            await pilot.press("pageup", "pageup")
            await pilot.pause()
            assert log.scroll_y == bottom - 3 * page
            assert "question 44 " in visible_text(pilot.app)

            await pilot.press("pagedown")
            await pilot.pause()
            assert log.scroll_y == bottom - 2 * page
            await pilot.press("pagedown", "pagedown", "pagedown")
            await pilot.pause()
            assert at_the_bottom(log)
            assert "answer 59 of the model" in visible_text(pilot.app)
            assert prompt.text == "line one\nline two and three"
            assert isinstance(pilot.app.focused, PromptInput)


async def test_paging_up_through_older_batches_moves_a_page_each_time_as_they_load():
    conversation = seed(400)
    with demo_chat(demo=False) as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            assert await pilot.app.chat.open_conversation(conversation)
            log = log_of(pilot)
            await wait_for(pilot, lambda: log.max_scroll_y > 0 and at_the_bottom(log), "the end")
            page = log.scrollable_content_region.height - 1
            unshown = log.unshown
            for _ in range(40):
                # The message at the top of the view, and how far into it the view starts.
                top = next(m for m in log.children if m.virtual_region.bottom > log.scroll_y)
                into = log.scroll_y - top.virtual_region.y
                await pilot.press("pageup")
                # A page down the screen: older batches mount above it without moving it.
                await wait_for(
                    pilot,
                    lambda top=top, into=into: top.virtual_region.y - log.scroll_y == page - into,
                    "the view a page up",
                )
            assert log.unshown < unshown - 10, "older batches loaded on the way"
            assert isinstance(pilot.app.focused, PromptInput)
            await pilot.pause()
            numbers = [
                int(n) for n in re.findall(r"(?:question|answer) (\d+) of", visible_text(pilot.app))
            ]
            assert numbers and max(numbers) < 400 - 40, "older messages on screen"


async def test_ctrl_home_reaches_the_first_of_400_messages_and_ctrl_end_follows_the_answer():
    conversation = seed(400)
    posted = Posted()
    with demo_chat(STREAMING, demo=False) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            assert await pilot.app.chat.open_conversation(conversation)
            log = log_of(pilot)
            await wait_for(pilot, lambda: log.max_scroll_y > 0 and at_the_bottom(log), "the end")
            assert log.unshown > 0, "the oldest messages are not mounted yet"
            await pilot.pause()

            await pilot.press("ctrl+home")
            await wait_for(pilot, lambda: not log.unshown, "every older message")
            await pilot.pause()
            assert log.scroll_y == 0
            assert len(log.messages()) == 400
            screen = visible_text(pilot.app)
            assert "question 0 of the reader" in screen and "answer 1 of the model" in screen
            assert isinstance(pilot.app.focused, PromptInput)

            await pilot.press("ctrl+end")
            await pilot.pause()
            assert at_the_bottom(log)
            assert "answer 399 of the model" in visible_text(pilot.app)

            # A new question: its answer streams at the bottom.
            await pilot.press(*"one more question", "enter")
            answer = log.query(AnswerMessage).last()
            await wait_for(pilot, lambda: len(answer.body.source) > 20, "the answer to start")
            # Reading the start meanwhile: the view stays there while the answer grows.
            await pilot.press("ctrl+home")
            await pilot.pause()
            grown = len(answer.body.source)
            await wait_for(pilot, lambda: len(answer.body.source) > grown + 20, "more of it")
            assert log.scroll_y == 0
            assert "question 0 of the reader" in visible_text(pilot.app)

            # Back to the end: the answer is followed again as it grows, to its money line.
            await pilot.press("ctrl+end")
            await pilot.pause()
            assert at_the_bottom(log)
            grown = len(answer.body.source)
            await wait_for(pilot, lambda: len(answer.body.source) > grown + 20, "more of it")
            await pilot.pause()
            assert at_the_bottom(log)
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the whole answer", 30)
            await wait_for(pilot, lambda: answer.footer.display, "its money line")
            await pilot.pause()
            assert at_the_bottom(log)
            assert "charged $" in visible_text(pilot.app)


async def test_a_new_chat_never_shows_the_older_messages_of_the_conversation_before_it():
    conversation = seed(400)
    with demo_chat(demo=False) as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            assert await pilot.app.chat.open_conversation(conversation)
            log = log_of(pilot)
            await wait_for(pilot, lambda: log.unshown > 0, "the newest messages")
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: not log.children, "an empty chat")
            await pilot.press("ctrl+home", "pageup", "ctrl+end")
            await pilot.pause()
            assert not log.messages()
            assert "of the reader" not in visible_text(pilot.app)
