"""The chat and the wallet's chain (the local router's real EVM): the balance in the status bar,
read at start and after each turn; a wallet that cannot pay is told so before anything is
signed."""

from __future__ import annotations

from eth_account import Account

from tests.test_ui import send, status_text
from tests.ui_helpers import TEST_KEY, Posted, make_app, wait_for
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui.messages import ResponseComplete, ResponseFailed
from xrouter_tui.ui.widgets.chat_log import AnswerMessage

ADDRESS = Account.from_key(TEST_KEY).address
WIDE = (200, 36)  # room for the wallet and its balance in the status bar


def chain_router(usd_atomic: int):
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, chain=True, fund={ADDRESS: usd_atomic})
    return start_dev_server(config)


async def test_the_balance_shows_and_moves_with_a_turn():
    posted = Posted()
    with chain_router(5_000_000) as router:
        app = make_app(router.url)
        async with app.run_test(size=WIDE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: "$5.000000" in status_text(pilot), "the balance", 60)
            await send(pilot, "hello chain")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", 60)
            await wait_for(
                pilot,
                lambda: "$5.000000" not in status_text(pilot) and "$4." in status_text(pilot),
                "the balance after the turn",
                60,
            )


async def test_a_wallet_that_cannot_pay_is_told_before_anything_is_signed():
    posted = Posted()
    with chain_router(1) as router:  # a millionth of a dollar
        app = make_app(router.url)
        async with app.run_test(size=WIDE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: "$0.000001" in status_text(pilot), "the balance", 60)
            await send(pilot, "hello chain")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal", 60)
            [failed] = posted.of(ResponseFailed)
            assert "Not enough USDC" in failed.error and ADDRESS in failed.error
            assert "Nothing was signed" in failed.error
    assert router.state.paid_requests == 0


async def test_the_refund_seen_on_chain_shows_in_the_money_line():
    posted = Posted()
    with chain_router(5_000_000) as router:
        app = make_app(router.url)
        async with app.run_test(size=WIDE, message_hook=posted) as pilot:
            await wait_for(pilot, lambda: "$5.000000" in status_text(pilot), "the balance", 60)
            await send(pilot, "hello chain")
            await wait_for(pilot, lambda: posted.of(ResponseComplete), "the answer", 60)
            [answer] = pilot.app.chat.query(AnswerMessage)

            def refunded() -> bool:
                return "refunded $" in str(answer.footer.render())

            for _ in range(10):  # the refund goes out after the answer: read the chain again
                if refunded():
                    break
                pilot.app.read_chain()
                await pilot.pause(0.5)
            footer = str(answer.footer.render())
            assert "refunded $" in footer and "· net $" in footer, footer
