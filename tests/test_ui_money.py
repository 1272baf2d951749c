"""Money in the full-screen chat, by keyboard against the local router: the price of the prompt
as typed, the question before a payment above `confirm_above_usd`, refusals past a cap or a
budget (with the offer of a shorter answer), the money line, and the session's spend.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from textual.pilot import Pilot

from tests.test_ui import SIZE, prompt, send, status, status_text
from tests.ui_helpers import Posted, demo_chat, run_command, wait_for
from xrouter_tui.commands.demo import demo_models
from xrouter_tui.config import load_settings
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import format_usd
from xrouter_tui.pricing import PriceGuide
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed
from xrouter_tui.ui.screens.chat import ChatScreen
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.screens.payment import PaymentDialog
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ErrorBlock
from xrouter_tui.ui.widgets.status_bar import ChatState

MODEL = "anthropic/claude-3.5-sonnet"
# At $15 per million output tokens, 20,000 max_tokens ask about $0.30: above the default
# confirmation threshold ($0.10), under the default cap ($0.50).
DEAR = 20_000


def settings(**changes):
    return replace(load_settings(), **changes)


def atomic_usd(amount: int) -> Decimal:
    return Decimal(amount).scaleb(-6)


def model_info():
    return next(model for model in demo_models() if model.id == MODEL)


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*text)


async def test_the_price_of_the_prompt_shows_while_typing_and_matches_the_routers_quote():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            assert status(pilot).estimate is None, "no figure for an empty prompt"
            expected = PriceGuide().estimate(
                model_info(), [{"role": "user", "content": "What is x402?"}], 1024
            )
            await type_text(pilot, "What is x402?")
            # On a slow machine the figure may first show for part of the prompt, when typing
            # paused past the debounce; it must settle on the whole prompt's price.
            await wait_for(
                pilot, lambda: status(pilot).estimate == expected, "the whole prompt's price"
            )
            shown = status(pilot).estimate
            assert f"up to {format_usd(shown)}" in status_text(pilot)
            assert chat.router.state.unpaid_requests == 0, "typing sends nothing anywhere"

            await pilot.press("enter")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            assert status(pilot).estimate is None, "a sent prompt has no figure"
            # The router's own quote is what the status bar said.
            assert atomic_usd(chat.router.state.payments[0].amount) == shown

            # The next question carries the conversation, so it costs more to send.
            await type_text(pilot, "What is x402?")
            await wait_for(
                pilot,
                lambda: (status(pilot).estimate or 0) > shown,
                "a higher price for the longer conversation",
            )
            for _ in range(len("What is x402?")):
                await pilot.press("backspace")
            await wait_for(pilot, lambda: status(pilot).estimate is None, "no figure")


async def test_a_payment_above_the_threshold_asks_first_and_no_pays_nothing():
    posted = Posted()
    with demo_chat(settings=settings(max_tokens=DEAR)) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "an expensive question")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PaymentDialog), "the ask")
            dialog = pilot.app.screen
            shown = " ".join(str(w.render()) for w in dialog.query("Static, Label"))
            quoted = dialog.quote.amount_usd
            assert format_usd(quoted) in shown and MODEL in shown
            assert "Base Sepolia" in shown and "0x402D…0a1B" in shown
            assert chat.router.state.paid_requests == 0, "nothing is signed while it asks"

            await pilot.press("n")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal")
            assert isinstance(pilot.app.screen, ChatScreen)
            block = pilot.app.chat.query_one(ErrorBlock)
            assert "declined" in str(block.render()) and "Nothing was signed" in str(block.render())
            # The user's choice, said plainly: not an error, and the chat is idle.
            assert block.border_title == "Not sent" and block.has_class("-neutral")
            assert status(pilot).state is ChatState.IDLE
            assert prompt(pilot).text == "an expensive question", "the question is kept"
            assert chat.router.state.paid_requests == 0
            assert status(pilot).session_spend == 0

            # Esc cancels too.
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PaymentDialog), "again")
            await pilot.press("escape")
            await wait_for(pilot, lambda: len(posted.of(ResponseFailed)) == 2, "cancelled")
            assert chat.router.state.paid_requests == 0

            # Yes pays once, the amount the dialog showed.
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PaymentDialog), "again")
            await pilot.press("y")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
    assert chat.router.state.paid_requests == 1
    assert atomic_usd(chat.router.state.payments[0].amount) == quoted


async def test_dont_ask_again_lasts_for_the_session():
    posted = Posted()
    with demo_chat(settings=settings(max_tokens=DEAR)) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "first")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, PaymentDialog), "the ask")
            await pilot.press("a")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "answer 1")
            await send(pilot, "second")
            await wait_for(pilot, lambda: len(posted.of(ResponseComplete)) == 2, "answer 2")
            assert not isinstance(pilot.app.screen, PaymentDialog)
    assert chat.router.state.paid_requests == 2


async def test_over_the_cap_nothing_is_signed_and_a_shorter_answer_is_offered():
    posted = Posted()
    cap = Decimal("0.05")
    with demo_chat(settings=settings(max_tokens=DEAR, max_per_request_usd=cap)) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "too long an answer")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog), "offer")
            block = str(pilot.app.chat.query_one(ErrorBlock).render())
            assert "per-request cap of $0.050000" in block and "max_per_request_usd" in block
            assert "Nothing was signed" in block and "Spent today so far: $0.000000" in block
            offer = str(pilot.app.screen.query_one("#confirm-warning").render())
            assert chat.router.state.paid_requests == 0

            await pilot.press("y")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the shorter answer")
            assert prompt(pilot).text == "", "the question went, not left in the box"
    assert chat.router.state.paid_requests == 1
    paid = chat.router.state.payments[0]
    assert atomic_usd(paid.amount) <= cap
    assert paid.messages[-1]["content"] == "too long an answer"
    fitting = int(offer.split("With max_tokens ")[1].split()[0])
    assert fitting < DEAR and f"Send it with {fitting}" in offer


async def test_a_daily_budget_counts_other_processes_payments(isolated_environment):
    posted = Posted()
    with demo_chat(settings=settings(daily_budget_usd=Decimal("0.02"))) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "first")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "answer 1")
            spent = atomic_usd(chat.router.state.payments[0].amount)
            await send(pilot, "second")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal")
            block = str(pilot.app.chat.query_one(ErrorBlock).render())
            assert "daily_budget_usd" in block and format_usd(spent) in block
            assert "$0.020000 daily budget" in block
    assert chat.router.state.paid_requests == 1

    # A new app (a restart) still sees today's payment: the budget holds across processes.
    posted = Posted()
    with demo_chat(settings=settings(daily_budget_usd=Decimal("0.02"))) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "after a restart")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal")
    assert chat.router.state.paid_requests == 0


async def test_the_money_line_shows_charge_tokens_refund_and_a_copyable_tx():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "hello")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer")
            answer = posted.of(ResponseComplete)[0].answer
            view = pilot.app.chat.query_one(AnswerMessage)
            footer = str(view.footer.render())
            payment = chat.router.state.payments[0]
            charged = atomic_usd(payment.amount)
            usage = answer.usage
            cost = (usage.prompt_tokens * 3 + usage.completion_tokens * 15) / Decimal(1_000_000)
            assert f"charged {format_usd(charged)} upfront" in footer
            assert f"tokens cost {format_usd(cost)}" in footer
            assert f"refund ~{format_usd(charged - cost)}" in footer
            assert "Base Sepolia" in footer and f"tx {payment.transaction}" in footer

            await pilot.click(view.footer)
            await wait_for(pilot, lambda: pilot.app.clipboard == payment.transaction, "copied")
            pilot.app.copy_to_clipboard("")
            await run_command(pilot, "copy last transaction")
            await wait_for(pilot, lambda: pilot.app.clipboard == payment.transaction, "copied")

            assert status(pilot).session_spend == charged
            with Store.open(history_path(demo=True)) as store:
                [saved] = store.payments()
            assert (saved.status, saved.tx, saved.model) == ("settled", payment.transaction, MODEL)

            # A reopened conversation still knows its transaction.
            conversation_id = pilot.app.chat.conversation_id
            await run_command(pilot, "new chat")
            assert await pilot.app.chat.open_conversation(conversation_id)
            pilot.app.copy_to_clipboard("")
            await run_command(pilot, "copy last transaction")
            await wait_for(pilot, lambda: pilot.app.clipboard == payment.transaction, "copied")


async def test_a_session_budget_refuses_the_turn_that_would_pass_it_and_lasts_across_chats():
    posted = Posted()
    with demo_chat(settings=settings(session_budget_usd=Decimal("0.02"))) as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, "first")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "answer 1")
            await run_command(pilot, "new chat")
            await send(pilot, "second")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal")
            block = str(pilot.app.chat.query_one(ErrorBlock).render())
            assert "session_budget_usd" in block and "$0.020000 session budget" in block
            assert "Nothing was signed" in block
    assert chat.router.state.paid_requests == 1
