"""The chat within the router's limits and the model's context: long conversations go on, the
marker shows what is no longer sent, a prompt that cannot fit stays in the box, an answer cut at
max_tokens says so, and a model the router lacks is named at start."""

from __future__ import annotations

from textual.notifications import Notification

from tests.test_context import exchanges
from tests.test_ui import SIZE, prompt, send, status_text
from tests.ui_helpers import Posted, demo_chat, run_command, wait_for
from xrouter_tui.config import load_settings
from xrouter_tui.context import CONTEXT_SHARE, MAX_MESSAGES
from xrouter_tui.devserver import DevServerConfig
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.pricing import estimate_input_tokens
from xrouter_tui.ui.messages import ResponseComplete
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog, ContextMarker

QWEN = "qwen/qwen-2.5-72b-instruct"  # a 32,768-token context


def seed(count: int, *, size: int = 20, model: str = "anthropic/claude-3.5-sonnet") -> int:
    with Store.open(history_path(demo=True)) as store:
        conversation = store.new_conversation(model, "be brief", "long")
        for message in exchanges(count, size):
            store.add_message(conversation, message["role"], message["content"], model=model)
    return conversation


def marker_text(pilot) -> str:
    markers = pilot.app.chat.query(ContextMarker)
    return str(markers.first().render()) if markers else ""


async def read_to_the_top(pilot) -> None:
    """Scroll the log up until every older message is mounted, as a reader would."""
    log = pilot.app.chat.query_one(ChatLog)
    for _ in range(20):
        log.scroll_home(animate=False, immediate=True)
        await pilot.pause(0.05)
        if not log.unshown:
            return
    raise AssertionError("older messages did not load")


async def test_sixty_exchanges_go_on_with_the_newest_and_a_marker():
    conversation = seed(60)
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            assert await pilot.app.chat.open_conversation(conversation)
            await read_to_the_top(pilot)
            assert marker_text(pilot) == "older messages are not sent: 22 messages, ~264 tokens"
            # Right above the oldest message still sent.
            log = pilot.app.chat.query_one(ChatLog)
            after = log.children[log.children.index(log.query_one(ContextMarker)) + 1]
            assert str(after.render()).startswith("question 11 ")
            await send(pilot, "and the next one?")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
    [paid] = chat.router.state.payments
    sent = list(paid.messages)
    assert len(sent) == MAX_MESSAGES and chat.router.state.invalid_requests == 0
    assert sent[0] == {"role": "system", "content": "be brief"}
    assert sent[1]["content"].startswith("question 11 ")
    assert sent[-2]["content"].startswith("answer 59 ")
    assert sent[-1] == {"role": "user", "content": "and the next one?"}


async def test_a_history_past_a_32k_context_sends_what_fits_and_says_what_it_costs():
    conversation = seed(40, size=2000, model=QWEN)  # about 40,000 tokens
    settings = load_settings()
    posted = Posted()
    with demo_chat(model=QWEN) as chat:
        chat.app.max_tokens = 500
        async with chat.app.run_test(size=(160, 36), message_hook=posted) as pilot:
            await wait_for(pilot, lambda: pilot.app.model_info(QWEN) is not None, "the models")
            assert await pilot.app.chat.open_conversation(conversation)
            await read_to_the_top(pilot)
            assert marker_text(pilot).startswith("older messages are not sent: ")
            await pilot.press(*"go on")
            await wait_for(pilot, lambda: "context " in status_text(pilot), "the context price")
            assert "tok · $0.00" in status_text(pilot)
            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
    assert settings.context_messages is None
    [paid] = chat.router.state.payments
    sent = list(paid.messages)
    assert chat.router.state.invalid_requests == 0
    assert estimate_input_tokens(sent) + 500 <= 32_768 * CONTEXT_SHARE
    assert sent[-2]["content"].startswith("answer 39 ")  # the newest exchange is kept


async def test_a_prompt_too_long_stays_in_the_box_and_nothing_is_sent():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            box = prompt(pilot)
            box.insert("p" * 150_000)
            await pilot.press("enter")
            await pilot.pause()
            notices = [n.message for n in pilot.app._notifications]
            assert any("150,000 characters" in text and "100,000" in text for text in notices)
            assert box.text == "p" * 150_000
            assert not pilot.app.chat.query(AnswerMessage)
    state = chat.router.state
    assert (state.unpaid_requests, state.paid_requests, state.invalid_requests) == (0, 0, 0)


async def test_an_answer_cut_at_max_tokens_says_so_and_continues():
    posted = Posted()
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, reply_deltas=300)
    with demo_chat(config) as chat:
        chat.app.max_tokens = 40
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "a long answer please")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
            [answer] = pilot.app.chat.query(AnswerMessage)
            assert "cut at max_tokens 40 · ctrl+p Continue the answer" in str(
                answer.footer.render()
            )
            await run_command(pilot, "Continue the answer")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 2, "the next")
    second = chat.router.state.payments[1]
    assert second.messages[-1] == {"role": "user", "content": "Continue."}
    assert len(chat.router.state.payments) == 2  # a new turn, priced and paid as any


async def test_a_model_the_router_lacks_is_named_at_start_with_the_closest():
    with demo_chat(model="gpt-4o") as chat:
        async with chat.app.run_test(size=SIZE) as pilot:

            def warned() -> list[Notification]:
                return [n for n in pilot.app._notifications if n.title == "Unknown model"]

            await wait_for(pilot, lambda: warned(), "the notice")
            [notice] = warned()
            assert "'gpt-4o'" in notice.message and "openai/gpt-4o" in notice.message
            assert "F2" in notice.message
    assert chat.router.state.unpaid_requests == 0
