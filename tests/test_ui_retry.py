"""The chat's ctrl+r: a lost answer asked for again with the payment signed for it, right after
the loss and in a conversation reopened later. The router sees the same nonce twice and holds
the payment once; the ledger keeps one payment."""

from __future__ import annotations

from tests.test_ui import SIZE, prompt, send
from tests.ui_helpers import Posted, demo_chat, run_command, wait_for
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, RetryHint

QUESTION = "what is x402?"


def hint_text(pilot) -> str:
    hints = pilot.app.chat.query(RetryHint)
    return str(hints.last().render()) if hints else ""


def assert_paid_once(router) -> None:
    [first] = router.state.payments
    [again] = router.state.resends
    assert (again.nonce, again.payer, again.amount) == (first.nonce, first.payer, first.amount)
    with Store.open(history_path(demo=True)) as store:
        payments = store.payments()
        messages = store.messages(1)
    assert [p.status for p in payments] == ["settled"]
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]


async def test_ctrl_r_fetches_a_lost_answer_with_the_same_payment():
    posted = Posted()
    with demo_chat() as chat:
        chat.router.config.faults = {"paid-http-error"}
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, QUESTION)
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the lost answer")
            await wait_for(pilot, lambda: hint_text(pilot), "the retry hint")
            assert hint_text(pilot).startswith("ctrl+r  retry with the same payment (valid ")
            assert "cannot be charged twice" in hint_text(pilot)
            assert prompt(pilot).text == QUESTION  # given back, as after any failure
            assert pilot.app.chat.can_retry

            chat.router.config.faults = set()
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
            [answer] = pilot.app.chat.query(AnswerMessage)
            assert QUESTION in answer.body.source
            assert "charged $" in str(answer.footer.render())
            assert not pilot.app.chat.query(RetryHint)  # the failed turn's block is gone
            assert prompt(pilot).text == ""
            assert not pilot.app.chat.can_retry
    assert chat.router.state.paid_requests == 2 and chat.router.state.unpaid_requests == 1
    assert_paid_once(chat.router)


async def test_a_reopened_conversation_offers_its_lost_answer_in_the_palette():
    with demo_chat() as chat:
        chat.router.config.faults = {"paid-http-error"}
        posted = Posted()
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await send(pilot, QUESTION)
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the lost answer")
        chat.router.config.faults = set()

        # The next start: the conversation is opened again, and its payment is still valid.
        again = type(chat.app)(chat.app.settings, chat.app.router)
        posted = Posted()
        async with again.run_test(size=SIZE, message_hook=posted) as pilot:
            assert await pilot.app.chat.open_conversation(1)
            await wait_for(pilot, lambda: hint_text(pilot), "the retry hint")
            await run_command(pilot, "Retry with the same payment")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", limit=30)
    assert_paid_once(chat.router)
