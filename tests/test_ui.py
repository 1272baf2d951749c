"""The full-screen chat driven by keyboard through Textual's Pilot, against the local router.

Assertions are on what the user sees (widgets' text, the status bar) and on the messages the chat
posts, and on what the router received: one paid request per turn, carrying the conversation.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from tests.ui_helpers import Posted, demo_chat, make_app, run_command, wait_for
from xrouter_tui.chat import MessageStatus
from xrouter_tui.config import load_settings
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.model_catalog import FALLBACK_MODELS
from xrouter_tui.payments import BASE_SEPOLIA, format_usd
from xrouter_tui.ui import ChatApp, RouterSetup
from xrouter_tui.ui.messages import (
    ModelChanged,
    ResponseComplete,
    ResponseFailed,
    ResponseStarted,
    ResponseStopped,
)
from xrouter_tui.ui.screens.chat import ChatScreen
from xrouter_tui.ui.screens.help import HelpScreen
from xrouter_tui.ui.screens.model_picker import ModelPicker
from xrouter_tui.ui.screens.wallet_setup import WalletSetup
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ErrorBlock, UserMessage
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.ui.widgets.status_bar import ChatState, StatusBar

SIZE = (110, 36)
SLOW = DevServerConfig(network=BASE_SEPOLIA.v1_name, delta_delay=0.05, reply_deltas=400)


async def send(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


def status(pilot: Pilot) -> StatusBar:
    return pilot.app.screen.query_one(StatusBar)


def status_text(pilot: Pilot) -> str:
    return str(status(pilot).render())


def prompt(pilot: Pilot) -> PromptInput:
    return pilot.app.chat.query_one(PromptInput)


async def test_a_turn_streams_the_answer_and_shows_what_it_cost():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            assert isinstance(pilot.app.focused, PromptInput), "the prompt has focus at start"
            await send(pilot, "Show me a table")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")

            assert [m.model for m in posted.of(ResponseStarted)] == [chat.app.model]
            assert str(pilot.app.chat.query_one(UserMessage).render()) == "Show me a table"
            answer = pilot.app.chat.query_one(AnswerMessage)
            assert "In short" in answer.body.source
            footer = str(answer.footer.render())
            payment = chat.router.state.payments[0]
            assert "charged $" in footer and f"tx {payment.transaction}" in footer
            assert "tokens cost $" in footer and "refund ~$" in footer
            assert " in / " in footer and " out tokens" in footer

            bar = status_text(pilot)
            # The model's name (its provider part gives way after an answer at this width).
            assert chat.app.model.partition("/")[2] in bar and "idle" in bar
            assert status(pilot).last_charge == status(pilot).session_spend > 0
            paid = format_usd(status(pilot).session_spend)
            assert f"last {paid}" in bar and f"session {paid}" in bar
            assert prompt(pilot).text == "", "a sent prompt leaves the box"
    assert chat.router.state.paid_requests == 1


async def test_the_second_turn_carries_the_first_question_and_answer():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "first question")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 1, "answer 1")
            first_answer = posted.of(ResponseComplete)[0].answer.content
            await send(pilot, "second question")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 2, "answer 2")
            spend = status(pilot).session_spend

    payments = chat.router.state.payments
    assert len(payments) == 2 and chat.router.state.paid_requests == 2
    assert [m["content"] for m in payments[1].messages] == [
        "first question",
        first_answer,
        "second question",
    ]
    assert [m["role"] for m in payments[1].messages] == ["user", "assistant", "user"]
    assert spend == Decimal(sum(p.amount for p in payments)).scaleb(-6)


async def test_shift_enter_and_ctrl_j_insert_newlines_and_do_not_send():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await pilot.press("a", "shift+enter", "b", "ctrl+j", "c")
            assert prompt(pilot).text == "a\nb\nc"
            assert not posted.of(PromptInput.Submitted)
            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            assert posted.of(PromptInput.Submitted)[0].text == "a\nb\nc"


async def test_blank_prompts_are_not_sent():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await pilot.press("space", "ctrl+j", "space", "enter")
            await pilot.pause()
            assert not posted.of(ResponseStarted)
    assert chat.router.state.unpaid_requests == 0


async def test_up_in_an_empty_prompt_recalls_earlier_prompts():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "one")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 1, "answer 1")
            await send(pilot, "two")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 2, "answer 2")
            await pilot.press("up")
            assert prompt(pilot).text == "two"
            await pilot.press("up")
            assert prompt(pilot).text == "one"
            await pilot.press("down")
            assert prompt(pilot).text == "two"
            await pilot.press("down")
            assert prompt(pilot).text == ""
            # With text in the box, Up is the cursor's again.
            await pilot.press("x", "up")
            assert prompt(pilot).text == "x"


@pytest.mark.parametrize("key", ["escape", "ctrl+c"])
async def test_stopping_keeps_the_partial_answer_with_what_was_paid(key):
    posted = Posted()
    with demo_chat(SLOW) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "a long answer please")
            answer = pilot.app.chat.query_one(AnswerMessage)
            await wait_for(pilot, lambda: len(answer.body.source) > 40, "some text on screen")
            await pilot.press(key)
            await wait_for(pilot, lambda: posted.of(ResponseStopped), "the stop")

            assert pilot.app.is_running, f"{key} stops the answer; it never quits"
            stopped = posted.of(ResponseStopped)[0].answer
            assert stopped.status is MessageStatus.STOPPED
            assert stopped.content and stopped.content in answer.body.source + "\n"
            assert answer.body.source.startswith(stopped.content[:40])
            footer = str(answer.footer.render())
            assert footer.startswith("stopped") and "charged $" in footer
            assert "sending it again is a new charge" in footer
            assert status(pilot).state is ChatState.STOPPED
            assert "stopped" in status_text(pilot)
            assert not posted.of(ResponseComplete)
    assert chat.router.state.paid_requests == 1
    assert chat.router.state.completed_streams == 0


async def test_ctrl_c_with_nothing_streaming_does_not_quit():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+c")
            await pilot.pause()
            assert pilot.app.is_running
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert not pilot.app.is_running


async def test_a_failed_turn_shows_the_error_and_gives_the_prompt_back():
    posted = Posted()
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, faults={"reject-payment"})
    with demo_chat(config) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "will this be paid?")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the failure")

            failed = posted.of(ResponseFailed)[0]
            assert failed.prompt == "will this be paid?"
            assert prompt(pilot).text == "will this be paid?", "the prompt is back in the box"
            block = pilot.app.chat.query_one(ErrorBlock)
            assert "USDC" in str(block.render()), str(block.render())
            assert any("refused the payment" in n.message for n in pilot.app._notifications)
            assert status(pilot).state is ChatState.ERROR
            assert status(pilot).session_spend == 0

            # The failed question is not sent again with the next turn.
            chat.router.config.faults = set()
            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the retry's answer")
    assert [m["content"] for m in chat.router.state.payments[-1].messages] == ["will this be paid?"]


async def test_an_unreachable_router_is_an_error_in_plain_words():
    posted = Posted()
    with start_dev_server(DevServerConfig()) as router:
        url = router.url
    app = make_app(url)  # the port is closed now
    async with app.run_test(size=SIZE, message_hook=posted) as pilot:
        await send(pilot, "hello?")
        await wait_for(pilot, lambda: posted.of(ResponseFailed), "the failure")
        error = posted.of(ResponseFailed)[0].error
        assert "Traceback" not in error and error.endswith(".")
        assert prompt(pilot).text == "hello?"


async def test_without_a_wallet_the_chat_starts_and_says_what_to_do():
    posted = Posted()
    with start_dev_server(DevServerConfig()) as router:
        app = ChatApp(load_settings(), RouterSetup(router.url, None, (BASE_SEPOLIA,)))
        async with app.run_test(size=SIZE, message_hook=posted) as pilot:
            # Nothing in the keyring: the wallet setup comes first (tests/test_ui_wallet.py),
            # and Esc leaves it for the chat.
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, WalletSetup), "setup")
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), "the chat")
            assert "no wallet" in status_text(pilot)
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the failure")
            assert "no wallet key is set up" in posted.of(ResponseFailed)[0].error
            assert prompt(pilot).text == "hello"
        assert router.state.paid_requests == 0


async def test_sending_while_an_answer_streams_keeps_the_new_prompt():
    posted = Posted()
    with demo_chat(SLOW) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "first")
            await wait_for(pilot, lambda: status(pilot).state is ChatState.STREAMING, "streaming")
            await send(pilot, "second")
            assert prompt(pilot).text == "second"
            assert len(posted.of(ResponseStarted)) == 1
            await pilot.press("escape")
            await wait_for(pilot, lambda: posted.of(ResponseStopped), "the stop")
    assert chat.router.state.paid_requests == 1


async def test_the_log_follows_the_stream_only_while_the_reader_is_at_the_bottom():
    posted = Posted()
    with demo_chat(SLOW) as chat:
        async with chat.app.run_test(size=(90, 24), message_hook=posted) as pilot:
            log = pilot.app.chat.query_one("#chat-log")
            await send(pilot, "a long answer please")
            await wait_for(pilot, lambda: log.max_scroll_y > 20, "an answer taller than the screen")
            await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y, "following")

            log.scroll_to(y=0, animate=False)
            await pilot.pause(0.3)
            height_then = log.max_scroll_y
            await wait_for(pilot, lambda: log.max_scroll_y > height_then + 5, "more text")
            assert log.scroll_y == 0, "scrolling up to read is never yanked back"

            log.scroll_end(animate=False)
            await pilot.pause(0.3)
            height_then = log.max_scroll_y
            await wait_for(pilot, lambda: log.max_scroll_y > height_then + 5, "more text")
            await pilot.pause(0.1)
            assert log.max_scroll_y - log.scroll_y <= 3, "back at the bottom it follows again"
            await pilot.press("escape")
            await wait_for(pilot, lambda: posted.of(ResponseStopped), "the stop")


async def test_f2_picks_a_model_by_fuzzy_filter_and_remembers_it():
    posted = Posted()
    # Not the demo: it remembers nothing for real use (test_ui_continue.py).
    with demo_chat(demo=False) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: len(chat.app.models) > 5, "the live model list")
            await pilot.press("f2")
            assert isinstance(pilot.app.screen, ModelPicker)
            await pilot.press(*"gpt4mini")
            options = pilot.app.screen.query_one(OptionList)
            await wait_for(pilot, lambda: options.option_count >= 1, "a match")
            shown = [options.get_option_at_index(i).id for i in range(options.option_count)]
            assert shown[0] == "openai/gpt-4o-mini", shown
            assert "anthropic/claude-3.5-sonnet" not in shown
            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ModelChanged), "the choice")

            assert not isinstance(pilot.app.screen, ModelPicker)
            assert "openai/gpt-4o-mini" in status_text(pilot)
            assert isinstance(pilot.app.focused, PromptInput)
            await send(pilot, "which model?")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            assert pilot.app.chat.query_one(AnswerMessage).border_title == "openai/gpt-4o-mini"

            # Recently used models come first; arrows move; Esc closes without a change.
            await pilot.press("f2")
            options = pilot.app.screen.query_one(OptionList)
            assert options.get_option_at_index(0).id == "openai/gpt-4o-mini"
            await pilot.press("down", "escape")
            assert not isinstance(pilot.app.screen, ModelPicker)
            assert chat.app.model == "openai/gpt-4o-mini"

    assert chat.router.state.payments[0].model == "openai/gpt-4o-mini"
    assert load_settings().model == "openai/gpt-4o-mini", "remembered for the next start"
    assert make_app(chat.router.url).model == "openai/gpt-4o-mini"


async def test_the_model_list_is_cached_for_an_offline_start():
    with start_dev_server(DevServerConfig()) as router:
        url = router.url
        app = make_app(url, demo=False)
        assert [m.id for m in app.models] == [m.id for m in FALLBACK_MODELS]
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: len(app.models) == 12, "the live list")
    # The router is gone: the next start offers the list it fetched, and keeps it.
    offline = make_app(url, demo=False)
    assert len(offline.models) == 12
    async with offline.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await wait_for(pilot, lambda: not offline.workers, "the failed fetch")
        assert pilot.app.screen.query_one(OptionList).option_count == 12


async def test_f1_help_lists_every_key():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            await pilot.press("f1")
            assert isinstance(pilot.app.screen, HelpScreen)
            keys = " ".join(key for key, _ in pilot.app.screen.rows)
            for key in ("Enter", "Shift+Enter", "ctrl+j", "Up", "Esc", "ctrl+c", "ctrl+q"):
                assert key in keys
            for key in ("F1", "F2", "ctrl+p", "ctrl+n"):
                assert key in keys
            await pilot.press("escape")
            assert not isinstance(pilot.app.screen, HelpScreen)


async def test_the_command_palette_copies_the_last_answer_and_its_code():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "some python")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            answer = posted.of(ResponseComplete)[0].answer.content

            await run_command(pilot, "copy last answer")
            await wait_for(pilot, lambda: pilot.app.clipboard == answer, "the answer copied")
            await run_command(pilot, "copy last code block")
            await wait_for(pilot, lambda: pilot.app.clipboard.startswith("def "), "the code copied")
            assert pilot.app.clipboard in answer and "```" not in pilot.app.clipboard

            await run_command(pilot, "new chat")
            await wait_for(pilot, lambda: not pilot.app.chat.query(AnswerMessage), "an empty log")
            assert pilot.app.chat.conversation.messages == []
            # A new chat is still the same session: what it spent stays counted.
            paid = Decimal(chat.router.state.payments[0].amount).scaleb(-6)
            assert status(pilot).session_spend == paid > 0


async def test_the_theme_is_remembered():
    with demo_chat(demo=False) as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            pilot.app.theme = "nord"
            await pilot.pause()
    assert load_settings().theme == "nord"
