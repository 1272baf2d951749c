"""The wallet on chain as a user meets it: the check before signing (nothing is signed for what
the balance cannot pay), `xrouter-tui wallet`, and `spend` reconciling what it can.

The router is the local one over real loopback HTTP; the chain is a node made for the test
(tests/rpc_helpers.py) or, with --demo, the local router's own."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from tests import test_cli
from tests.rpc_helpers import FakeNode, fake_node, word
from tests.test_cli import run
from xrouter_tui.api import RouterClient
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.payments import BASE, PaymentRefused, SpendingPolicy, WalletKey

# test_cli's fixture: a fresh wallet key (hex, address).
key = test_cli.key
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


# -- the check in `ask` ----------------------------------------------------------------------


def test_ask_refuses_what_the_balance_cannot_pay_exit_3_nothing_signed(router, monkeypatch):
    secret = "0x" + "5a" * 32
    address = WalletKey.from_hex(secret).address
    node = FakeNode(answers={"eth_call": lambda r: word(2_500)})  # $0.0025
    with fake_node(node):
        monkeypatch.setenv("XROUTER_RPC_URL", node.url)
        result = run(
            "ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret}
        )
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("xrouter-tui: Not enough USDC: the wallet holds $0.002500 on Base")
    assert f"send USDC on Base to {address}" in line and "Nothing was signed." in line
    assert router.state.paid_requests == 0 and router.state.unpaid_requests == 1
    # The balance was read once, with the chain checked first; never the key anywhere.
    assert node.methods()[:2] == ["eth_chainId", "eth_call"]
    assert secret[2:] not in result.stdout + result.stderr


def test_ask_pays_when_the_balance_is_unknown(router, key):
    # Port 9 is closed: the balance cannot be read, and the turn goes on as before.
    secret, _ = key
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 0, result.stderr
    assert router.state.paid_requests == 1


# -- the check in the proxy ------------------------------------------------------------------


async def test_the_proxy_answers_402_in_openais_shape_and_signs_nothing(router, tmp_path):
    import httpx

    from xrouter_tui.chain import BalanceWatch
    from xrouter_tui.history.store import Store
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.proxy.app import ProxySetup, create_proxy_app
    from xrouter_tui.proxy.record import ProxyHistory

    account = WalletKey.generate()
    node = FakeNode(answers={"eth_call": lambda r: word(0)})
    with fake_node(node), Store.open(tmp_path / "history.sqlite3") as store:
        setup = ProxySetup(
            client=RouterClient(
                router.url, account=account, policy=SpendingPolicy(networks=(BASE,))
            ),
            ledger=Ledger(store, [BASE]),
            history=ProxyHistory(store),
            model=MODEL,
            max_tokens=64,
            temperature=None,
            confirm_above_usd=Decimal(1),
            balances=BalanceWatch({"base": node.url}),
        )
        app = create_proxy_app(setup, token="t0ken")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8400"
        ) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": QUESTION},
                headers={"Authorization": "Bearer t0ken"},
            )
        await setup.client.aclose()
        await setup.balances.aclose()
        assert store.payments() == []
    assert response.status_code == 402
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("payment_refused", "insufficient_funds")
    assert error["message"].startswith("Not enough USDC: the wallet holds $0.000000 on Base")
    assert account.address in error["message"]
    assert router.state.paid_requests == 0


# -- `xrouter-tui wallet` and `spend`, reconciling -------------------------------------------


def wallet(*args: str, env_extra: dict | None = None):
    result = run("wallet", *args, env_extra=env_extra)
    assert "Traceback" not in result.stderr
    return result


def test_wallet_without_a_key_says_how_to_get_one():
    result = wallet()
    assert result.returncode == 2 and result.stdout == ""
    assert "no wallet key" in result.stderr and "xrouter-tui wallet --demo" in result.stderr


def test_wallet_shows_the_balance_the_risk_and_the_refunds_seen_today(monkeypatch, key):
    from tests.test_reconcile import LATEST, PAY_TO, Chain, nonce, pay, tx
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    secret, address = key
    with Store.open(history_path()) as store:
        refunded = pay(store, 1, status="settled")
        pay(store, 2, status="unknown", amount=20_000)  # may yet be charged
    chain = Chain()
    chain.use(nonce(1), LATEST - 10, tx(1))
    chain.transfer(PAY_TO, "0x2C7536E3605D9C16a7a3D7b1898e529396a65c23", 4_000, LATEST - 9, tx(7))
    node = chain.node()
    node.answers["eth_call"] = lambda r: (
        word(12_345_678) if r["params"][0]["data"].startswith("0x70a08231") else word(0)
    )
    with fake_node(node):
        monkeypatch.setenv("XROUTER_RPC_URL", node.url)
        env = {"XROUTER_PRIVATE_KEY": secret}
        document = json.loads(wallet("--json", env_extra=env).stdout)
        text = wallet(env_extra=env)
    assert document == {
        "address": address,
        "network": "base",
        "balance_usd": "12.345678",
        "at_risk_usd": "0.020000",
        "at_risk_payments": 1,
        "refunds_today_usd": "0.004000",
        "rpc": node.url.split("/")[2],
    }
    assert text.returncode == 0 and text.stderr == ""
    assert text.stdout.splitlines() == [
        f"Address  {address}",
        "Network  Base",
        f"Balance  $12.345678 USDC (read from {node.url.split('/')[2]})",
        "At risk  $0.020000 in 1 payment of unknown outcome",
        "Refunds  $0.004000 seen on chain today",
    ]
    with Store.open(history_path()) as store:
        [payment] = store.payments(ids=[refunded])
    assert (payment.refund, payment.refund_tx) == (4_000, tx(7))
    # The ledger shows it too.
    spent = json.loads(run("spend", "--json").stdout)
    assert spent["today_refunded_usd"] == spent["all_time_refunded_usd"] == "0.004000"
    shown = next(p for p in spent["payments"] if p["status"] == "settled")
    assert (shown["refund_usd"], shown["refund_tx"]) == ("0.004000", tx(7))
    table = run("spend").stdout
    assert "refunded $0.004000 today, $0.004000 in all (seen on chain)" in table
    assert "REFUND" in table and "$0.004000" in table


def test_wallet_with_a_chain_that_cannot_be_read_shows_the_balance_unknown(key):
    secret, address = key
    result = wallet("--json", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["balance_usd"] is None and document["address"] == address
    [note] = result.stderr.splitlines()
    assert note.startswith("xrouter-tui: the balance could not be read: The chain's RPC at")


# -- on the local router's real chain ----------------------------------------------------------


@pytest.fixture
def chain_router(monkeypatch):
    """The local router on Base (by name) with its real chain, read at its /rpc."""
    config = DevServerConfig(network="base", chain=True, reply_deltas=30)
    with start_dev_server(config) as server:
        monkeypatch.setenv("XROUTER_RPC_URL", server.rpc_url)
        yield server


def fund(router, key, dollars: str) -> str:
    """Mint `dollars` of USDC for the key's wallet on the chain (started now); its secret."""
    secret, address = key
    router.config.fund = {address: int(Decimal(dollars) * 10**6)}
    assert router.chain is not None
    return secret


def ask_on(router, secret: str, *args: str):
    return run(
        "ask", "--base-url", router.url, *args, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret}
    )


def spent(*args: str) -> dict:
    result = run("spend", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_paid_answer_moves_the_balance_by_the_ledgers_amount_less_its_refund(chain_router, key):
    from tests.test_devserver import wait_for

    secret = fund(chain_router, key, "1")
    _, address = key
    assert (
        json.loads(wallet("--json", env_extra={"XROUTER_PRIVATE_KEY": secret}).stdout)[
            "balance_usd"
        ]
        == "1.000000"
    )
    result = ask_on(chain_router, secret)
    assert result.returncode == 0, result.stderr
    [accepted] = chain_router.state.payments
    assert wait_for(lambda: chain_router.state.refund_of(address, accepted.nonce) is not None)
    sent = chain_router.state.refund_of(address, accepted.nonce)

    [payment] = spent()["payments"]
    assert payment["status"] == "settled" and payment["tx"] == accepted.transaction
    assert payment["refund_tx"] == sent.transaction
    amount, refund = Decimal(payment["amount_usd"]), Decimal(payment["refund_usd"])
    assert refund == Decimal(sent.amount) / 10**6 and 0 < refund < amount
    shown = json.loads(wallet("--json", env_extra={"XROUTER_PRIVATE_KEY": secret}).stdout)
    assert Decimal(shown["balance_usd"]) == 1 - amount + refund
    assert shown["refunds_today_usd"] == payment["refund_usd"]

    async def receipt():
        from xrouter_tui.chain import UsdcReader

        async with UsdcReader(chain_router.rpc_url, BASE) as chain:
            return await chain.receipt(accepted.transaction)

    import asyncio

    mined = asyncio.run(receipt())
    assert mined is not None and mined.succeeded
    assert [t.value for t in mined.transfers] == [int(amount * 10**6)]


def test_a_wallet_funded_below_the_price_is_refused_before_signing(chain_router, key):
    secret = fund(chain_router, key, "0.00001")
    result = ask_on(chain_router, secret)
    assert result.returncode == 3, result.stderr
    assert "Not enough USDC: the wallet holds $0.000010 on Base" in result.stderr
    assert chain_router.state.paid_requests == 0  # the router never saw a signature
    assert spent()["payments"] == []


def test_a_dropped_answer_whose_payment_settled_is_reconciled_as_settled(chain_router, key):
    secret = fund(chain_router, key, "1")
    _, address = key
    chain_router.config.faults = {"drop-paid-settled"}
    result = ask_on(chain_router, secret)
    assert result.returncode == 1, result.stderr
    [payment] = spent()["payments"]
    assert payment["status"] == "settled"
    assert "used on chain" in payment["reason"]
    nonce = chain_router.state.payments[0].nonce if chain_router.state.payments else None
    settled = [
        tx for (payer, _), tx in chain_router.state.settlements.items() if payer == address.lower()
    ]
    assert payment["tx"] in settled or nonce is not None


def test_an_unsettled_payment_is_expired_not_charged_once_the_chain_passes_it(chain_router, key):
    import time

    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    secret = fund(chain_router, key, "1")
    chain_router.config.faults = {"drop-paid-unsettled"}
    assert ask_on(chain_router, secret).returncode == 1
    [lost] = spent()["payments"]
    assert lost["status"] == "unknown" and Decimal(spent()["uncertain_usd"]) > 0
    # Some minutes later, as far as the record goes: its validBefore behind the chain's clock
    # (the latest block's time), while on chain its nonce stays unused.
    with Store.open(history_path()) as store:
        store._db.execute("UPDATE payments SET valid_before = ?", (int(time.time()) - 300,))
    ledger = spent()
    [expired] = ledger["payments"]
    assert expired["status"] == "expired, not charged"
    assert "expired unused (seen on chain)" in expired["reason"]
    assert ledger["uncertain_usd"] == "0.000000"  # released from the budgets
    with Store.open(history_path()) as store:
        [payment] = store.payments()
    assert payment.expired_seen is not None and not payment.at_risk


def test_wallet_demo_shows_the_throwaway_wallets_test_usdc():
    result = wallet("--demo", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["network"], document["balance_usd"]) == ("base-sepolia", "5.000000")
    assert document["rpc"].startswith("127.0.0.1:")


def test_ask_demo_keeps_its_refund_seen_on_the_demos_chain():
    result = run("ask", "--demo", "hello")
    assert result.returncode == 0, result.stderr
    [payment] = spent("--demo")["payments"]
    assert payment["status"] == "settled" and payment["refund_tx"].startswith("0x")
    assert 0 < Decimal(payment["refund_usd"]) < Decimal(payment["amount_usd"])
    # The summary's estimate of the refund is what came back.
    assert f"refund ~${payment['refund_usd']}" in result.stderr


def test_wallet_piped_into_head_ends_quietly(key):
    import shlex
    import subprocess

    from tests.test_cli import PROGRAM

    secret, address = key
    result = subprocess.run(
        f"{shlex.quote(PROGRAM)} wallet 2>/dev/null | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        env={**os.environ, "XROUTER_PRIVATE_KEY": secret},
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, f"Address  {address}\n")
