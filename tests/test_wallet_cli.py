"""The wallet on chain as a user meets it: the check before signing (nothing is signed for what
the balance cannot pay), `xrouter-tui wallet`, and `spend` reconciling what it can.

The router is the local one over real loopback HTTP; the chain is a node made for the test
(tests/rpc_helpers.py) or, with --demo, the local router's own."""

from __future__ import annotations

import pytest

from tests.rpc_helpers import FakeNode, fake_node, word
from xrouter_tui.api import RouterClient
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE, PaymentRefused, SpendingPolicy, WalletKey

MODEL = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "How much is left?"}]


@pytest.fixture(autouse=True)
def no_public_chain(monkeypatch):
    """Nothing in these tests reads a chain beyond 127.0.0.1: port 9 is closed."""
    monkeypatch.setenv("XROUTER_RPC_URL", "http://127.0.0.1:9/")


@pytest.fixture
def router():
    with start_dev_server(DevServerConfig(network="base", reply_deltas=5)) as server:
        yield server


# -- the check before signing, in the client -------------------------------------------------


async def chat(router, account, funds, **kwargs):
    signed = []
    asked = []

    async def confirm(quote):
        asked.append(quote)
        return True

    async with RouterClient(
        router.url, account=account, policy=SpendingPolicy(networks=(BASE,)), funds=funds
    ) as client:
        events = [
            event
            async for event in client.stream_chat(
                QUESTION,
                model=MODEL,
                max_tokens=64,
                confirm=confirm,
                on_signed=lambda payment, body: signed.append(payment),
                **kwargs,
            )
        ]
    return events, signed, asked


async def test_a_balance_below_the_amount_signs_nothing_and_names_what_to_fund(router):
    account = WalletKey.generate()
    seen = []

    async def funds(network, payer):
        seen.append((network, payer))
        return 1  # $0.000001

    with pytest.raises(PaymentRefused) as caught:
        await chat(router, account, funds)
    refusal = caught.value
    assert refusal.code == "insufficient_funds"
    assert seen == [(BASE, account.address)]
    message = refusal.message
    assert message.startswith("Not enough USDC: the wallet holds $0.000001 on Base")
    assert f"asks ${refusal.amount_usd:.6f}" in message and refusal.amount_usd > 0
    assert f"send USDC on Base to {account.address}" in message
    assert message.endswith("Nothing was signed.")
    # The router saw no paid request, and nobody was asked.
    assert router.state.paid_requests == 0 and router.state.payments == []


@pytest.mark.parametrize("balance", [None, 10_000_000, "raises"])
async def test_enough_or_an_unknown_balance_lets_the_payment_go(router, balance):
    account = WalletKey.generate()

    async def funds(network, payer):
        if balance == "raises":
            raise RuntimeError("the chain is on fire")
        return balance

    _events, signed, asked = await chat(router, account, funds)
    assert len(signed) == 1 and len(asked) == 1
    assert router.state.paid_requests == 1


async def test_the_check_comes_before_the_question_to_pay(router):
    # A payment the balance cannot cover is not put to the user at all.
    account = WalletKey.generate()

    async def funds(network, payer):
        return 0

    asked = []

    async def confirm(quote):
        asked.append(quote)
        return True

    async with RouterClient(
        router.url, account=account, policy=SpendingPolicy(networks=(BASE,))
    ) as client:
        with pytest.raises(PaymentRefused):
            await client.open_chat(
                {"model": MODEL, "messages": QUESTION, "max_tokens": 64, "stream": False},
                confirm=confirm,
                funds=funds,
            )
    assert asked == [] and router.state.paid_requests == 0


def test_the_fake_node_serves_base():
    with fake_node(FakeNode(answers={"eth_call": lambda r: word(1)})) as node:
        assert node.url.startswith("http://127.0.0.1:")
