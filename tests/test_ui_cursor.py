"""The message cursor by keyboard: alt+Up/alt+Down select a message, c copies it, b its code
blocks in turn, e edits a question and r regenerates an answer, each into a fork that keeps the
history before it and leaves the original as it was. Esc or typing goes back to the prompt."""

from __future__ import annotations

from tests.test_ui import SIZE, prompt, send
from tests.ui_helpers import Posted, demo_chat, wait_for
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.ui.message_cursor import SELECTED
from xrouter_tui.ui.messages import ResponseComplete
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog


class Copied:
    """What the app put on the clipboard (the terminal's side of it)."""

    def __init__(self, app) -> None:
        self.texts: list[str] = []
        app.copy_to_clipboard = self.texts.append


async def two_turns(pilot, posted: Posted) -> None:
    await send(pilot, "first question")
    await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 1, "the first answer")
    await send(pilot, "second question")
    await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 2, "the second answer")


def selected_text(pilot) -> str:
    [widget] = pilot.app.chat.query(f".{SELECTED}")
    shown = pilot.app.chat.query_one(ChatLog).messages()
    messages = pilot.app.chat.conversation.messages
    return messages[len(messages) - len(shown) + shown.index(widget)].content


async def test_the_cursor_selects_copies_and_gives_the_prompt_back():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            copied = Copied(pilot.app)
            await two_turns(pilot, posted)
            await pilot.press("alt+up")
            answer = selected_text(pilot)
            assert "second question" in answer  # the newest answer, first
            await pilot.press("c")
            await wait_for(pilot, lambda: copied.texts, "the copy")
            assert copied.texts[-1] == answer  # Markdown as written
            assert prompt(pilot).text == ""  # c was the cursor's, not typed
            await pilot.press("alt+up")
            assert selected_text(pilot) == "second question"
            await pilot.press("alt+up", "alt+up")
            assert selected_text(pilot) == "first question"
            await pilot.press("alt+down")
            assert selected_text(pilot).startswith("## first question")

            # Code blocks, in turn (the local router's answers hold a Python block).
            await pilot.press("b")
            await wait_for(pilot, lambda: len(copied.texts) == 2, "the code block")
            assert copied.texts[-1].startswith("def ")
            await pilot.press("b")
            await wait_for(pilot, lambda: len(copied.texts) == 3, "the code block again")
            assert copied.texts[-1] == copied.texts[-2]  # one block: the same again

            await pilot.press("escape")
            assert not pilot.app.chat.query(f".{SELECTED}")
            await pilot.press("alt+up")
            await pilot.press("x")  # typing goes to the prompt, and leaves the cursor
            assert prompt(pilot).text == "x"
            assert not pilot.app.chat.query(f".{SELECTED}")
            assert pilot.app.is_running


async def test_editing_a_question_sends_it_to_a_fork_and_leaves_the_original():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await two_turns(pilot, posted)
            original = pilot.app.chat.conversation_id
            await pilot.press("alt+up", "alt+up")  # the second question
            await pilot.press("e")
            assert prompt(pilot).text == "second question"
            prompt(pilot).clear()
            await pilot.press(*"second question, edited", "enter")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 3, "the answer")
            fork = pilot.app.chat.conversation_id
    assert fork != original
    sent = chat.router.state.payments[-1].messages
    # The edited text, after the history before it, and nothing later.
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "first question",
        "second question, edited",
    ]
    with Store.open(history_path(demo=True)) as store:
        kept = [m.content for m in store.messages(original) if m.role == "user"]
        forked = store.conversation(fork)
    assert kept == ["first question", "second question"]  # the original as it was
    assert forked is not None and forked.title.endswith("(fork)")


async def test_regenerating_an_answer_asks_its_question_again_in_a_fork():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await two_turns(pilot, posted)
            await pilot.press("alt+up", "alt+up", "alt+up")  # the first answer
            await pilot.press("r")
            assert prompt(pilot).text == "first question"  # its price shows before sending
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 3, "the answer")
    sent = chat.router.state.payments[-1].messages
    assert [m["content"] for m in sent] == ["first question"]  # no later messages


async def test_the_models_thinking_is_labelled_and_folds_by_key_or_click():
    posted = Posted()
    with demo_chat(model="deepseek/deepseek-r1") as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "think first")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            [answer] = pilot.app.chat.query(AnswerMessage)
            thinking = answer.thinking
            assert thinking.parent is answer and str(thinking.border_title) == "thinking ▾"
            assert thinking.region.bottom <= answer.body.region.y  # apart, above the answer
            await pilot.press("alt+up", "t")
            assert thinking.has_class("-folded") and str(thinking.border_title) == "thinking ▸"
            assert prompt(pilot).text == ""  # t was the cursor's
            await pilot.press("t")  # and back
            assert not thinking.has_class("-folded")
            await pilot.press("escape")
            pilot.app.chat.query_one(ChatLog).scroll_to_widget(thinking, animate=False)
            await pilot.pause()
            await pilot.click(thinking)  # a click folds it too
            assert thinking.has_class("-folded")
