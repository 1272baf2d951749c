"""Reconciliation: each payment's fate and refund read from a chain, over real loopback HTTP.

The chain here is a node made for the test that answers as a node does (eth_call by selector,
eth_getLogs filtered by address, topics and blocks); its blocks come every 2 seconds, as Base's.
The devserver's real chain is tested in test_wallet_cli.py.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tests.rpc_helpers import FakeNode, fake_node, topic, word
from xrouter_tui.chain import ChainReaders
from xrouter_tui.chain.usdc import AUTHORIZATION_USED_TOPIC, TRANSFER_TOPIC
from xrouter_tui.history import store as store_module
from xrouter_tui.history.store import EXPIRED, PaymentRecord, Store
from xrouter_tui.ledger import Ledger, payments_csv
from xrouter_tui.payments import BASE
from xrouter_tui.reconcile import REFUND_WINDOW, RunLimits, reconcile

WALLET = "0x2C7536E3605D9C16a7a3D7b1898e529396a65c23"
PAY_TO = "0xeb4da07be74b26b2966b3cd07842cade70e47d53"
STRANGER = "0x1111111111111111111111111111111111111111"
USDC = BASE.usdc.address.lower()
LATEST = 1_000_000


@dataclass
class Chain:
    """What the node knows: used nonces, logs, the latest block (Base's pace: 2 s a block)."""

    latest: int = LATEST
    used: set[str] = field(default_factory=set)
    logs: list[dict] = field(default_factory=list)
    # The latest block's time: the chain's clock.
    now: float = field(default_factory=time.time)

    def use(self, nonce: str, block: int, tx: str) -> None:
        self.used.add(nonce.lower())
        self.logs.append(
            _log(block, tx, [AUTHORIZATION_USED_TOPIC, topic(WALLET), nonce.lower()], "0x")
        )
        self.transfer(WALLET, PAY_TO, 0, block, tx)

    def transfer(self, sender: str, recipient: str, value: int, block: int, tx: str) -> None:
        self.logs.append(
            _log(block, tx, [TRANSFER_TOPIC, topic(sender), topic(recipient)], word(value))
        )

    def node(self) -> FakeNode:
        return FakeNode(
            answers={
                "eth_getBlockByNumber": lambda r: {
                    "number": hex(self.latest),
                    "timestamp": hex(int(self.now)),
                },
                "eth_call": self._call,
                "eth_getLogs": self._get_logs,
            }
        )

    def _call(self, request):
        data = request["params"][0]["data"]
        if data.startswith("0xe94a0102"):
            return word(int("0x" + data[-64:] in self.used))
        return word(5_000_000)

    def _get_logs(self, request):
        query = request["params"][0]
        low = int(query["fromBlock"], 16)
        high = self.latest if query["toBlock"] == "latest" else int(query["toBlock"], 16)
        found = []
        for log in self.logs:
            if log["address"] != query["address"].lower():
                continue
            if not low <= int(log["blockNumber"], 16) <= high:
                continue
            wanted = query["topics"]
            if all(
                want is None or log["topics"][i] in (want if isinstance(want, list) else [want])
                for i, want in enumerate(wanted)
            ):
                found.append(log)
        return found


def _log(block: int, tx: str, topics: list[str], data: str) -> dict:
    return {
        "address": USDC,
        "topics": topics,
        "data": data,
        "blockNumber": hex(block),
        "logIndex": hex(len(topics) + len(data)),
        "transactionHash": tx,
    }


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def nonce(n: int) -> str:
    return "0x" + f"{n:064x}"


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "history.sqlite3") as opened:
        yield opened


def pay(store: Store, n: int, *, status: str, amount: int = 13_500, valid_for: int = 120) -> int:
    record = PaymentRecord(
        network="base",
        asset=BASE.usdc.address,
        amount=amount,
        decimals=6,
        pay_to=PAY_TO,
        payer=WALLET,
        nonce=nonce(n),
        valid_before=int(time.time()) + valid_for,
    )
    payment_id = store.record_payment(None, record, model="m/one")
    if status != "signed":
        store.update_payment(payment_id, status, tx=tx(900 + n) if status == "settled" else None)
    return payment_id


def row(store: Store, payment_id: int):
    [payment] = store.payments(ids=[payment_id])
    return payment


async def run(store: Store, node: FakeNode, **kwargs):
    readers = ChainReaders({"base": node.url})
    try:
        return await reconcile(store, readers, [BASE], **kwargs)
    finally:
        await readers.aclose()


# -- outcomes ----------------------------------------------------------------------------------


async def test_a_used_authorization_is_settled_with_the_transaction_that_used_it(store):
    unknown = pay(store, 1, status="unknown")
    crashed = pay(store, 2, status="signed")
    no_receipt = pay(store, 3, status="sent")
    chain = Chain()
    for n in (1, 2, 3):
        chain.use(nonce(n), LATEST - 10 + n, tx(n))
    with fake_node(chain.node()) as node:
        found = await run(store, node)
    assert (found.settled, found.expired, found.errors) == (3, 0, [])
    for n, payment_id in enumerate((unknown, crashed, no_receipt), start=1):
        payment = row(store, payment_id)
        assert (payment.status, payment.tx) == ("settled", tx(n))
        assert "used on chain" in payment.reason


async def test_an_authorization_unused_past_valid_before_is_not_charged_and_not_asked_again(store):
    expired = pay(store, 1, status="unknown", valid_for=-60)
    sent = pay(store, 2, status="sent", valid_for=-60)
    pending = pay(store, 3, status="unknown", valid_for=600)
    ledger = Ledger(store, [BASE], daily_budget_usd=Decimal(1))
    assert ledger.today_at_risk() == Decimal("0.027000")  # the sent one and the pending one
    with fake_node(Chain().node()) as node:
        found = await run(store, node)
        assert (found.settled, found.expired) == (0, 2)
        for payment_id in (expired, sent):
            payment = row(store, payment_id)
            assert payment.shown_status == EXPIRED and payment.expired_seen
            assert "expired unused (seen on chain)" in payment.reason
        assert row(store, pending).status == "unknown" and not row(store, pending).expired_seen
        assert ledger.today_at_risk() == Decimal("0.013500")  # the pending one only
        asked = node.methods().count("eth_call")
        await run(store, node)
        assert node.methods().count("eth_call") == asked + 1  # the pending one, again


async def test_expiry_is_judged_by_the_chains_clock_not_this_computers(store):
    payment_id = pay(store, 1, status="unknown", valid_for=-60)
    chain = Chain(now=time.time() - 120)  # the chain's time is before its validBefore
    with fake_node(chain.node()) as node:
        assert (await run(store, node)).expired == 0
        assert row(store, payment_id).expired_seen is None
        chain.now = time.time()
        assert (await run(store, node)).expired == 1


async def test_nothing_to_look_up_asks_nothing(store):
    pay(store, 1, status="rejected")
    with fake_node(Chain().node()) as node:
        found = await run(store, node)
    assert not found.changed and node.calls == []


async def test_a_chain_that_cannot_be_read_is_one_line_and_changes_nothing(store):
    payment_id = pay(store, 1, status="unknown", valid_for=-60)
    readers = ChainReaders({"base": "http://127.0.0.1:9/rpc/KEY"})
    try:
        found = await reconcile(store, readers, [BASE])
    finally:
        await readers.aclose()
    [error] = found.errors
    assert "could not be reached" in error and "KEY" not in error
    assert row(store, payment_id).expired_seen is None


async def test_a_hostile_chain_is_an_error_not_a_crash(store):
    pay(store, 1, status="unknown")
    node = Chain().node()
    node.answers["eth_getLogs"] = lambda r: [{"address": USDC, "topics": "0x" + "f" * 10**5}]
    with fake_node(node):
        found = await run(store, node)
    [error] = found.errors
    assert "malformed topics" in error and len(error) < 300


async def test_only_payments_since_the_given_time_are_looked_at(store):
    pay(store, 1, status="unknown", valid_for=-60)
    chain = Chain()
    with fake_node(chain.node()) as node:
        found = await run(store, node, since="2999-01-01T00:00:00.000Z")
    assert not found.changed and node.calls == []


# -- refunds -----------------------------------------------------------------------------------


async def test_usdc_back_from_the_payee_after_a_payment_is_its_refund(store):
    payment_id = pay(store, 1, status="settled")
    chain = Chain()
    chain.use(nonce(1), LATEST - 20, tx(1))
    chain.transfer(PAY_TO, WALLET, 9_000, LATEST - 25, tx(2))  # before it: not its refund
    chain.transfer(STRANGER, WALLET, 9_000, LATEST - 18, tx(3))  # another sender
    chain.transfer(PAY_TO, WALLET, 99_000, LATEST - 17, tx(4))  # more than it paid
    chain.transfer(PAY_TO, WALLET, 4_000, LATEST - 15, tx(5))
    ledger = Ledger(store, [BASE], daily_budget_usd=Decimal(1))
    with fake_node(chain.node()) as node:
        found = await run(store, node)
    assert (found.refunds, found.refunded) == (1, 4_000)
    payment = row(store, payment_id)
    assert (payment.refund, payment.refund_tx) == (4_000, tx(5))
    assert payment.net_usd == Decimal("0.009500")
    # Budgets count the net once the refund is seen.
    assert ledger.today_at_risk() == Decimal("0.009500")
    spending = ledger.spending()
    assert spending.today_usd == Decimal("0.013500")
    assert spending.today_refunded_usd == spending.all_time_refunded_usd == Decimal("0.004")
    header, line = payments_csv(spending.payments).splitlines()
    assert header.endswith(",refund_usd,refund_tx")
    assert line.endswith(f",0.004000,{tx(5)}")


async def test_each_refund_goes_to_the_latest_payment_before_it_once(store):
    first = pay(store, 1, status="settled")
    second = pay(store, 2, status="unknown")  # its outcome and its refund in one run
    third = pay(store, 3, status="settled")
    chain = Chain()
    chain.use(nonce(1), LATEST - 50, tx(1))
    chain.use(nonce(2), LATEST - 40, tx(2))
    chain.transfer(PAY_TO, WALLET, 3_000, LATEST - 39, tx(12))  # the second's
    chain.use(nonce(3), LATEST - 30, tx(3))
    # The first's never came; the third's did.
    chain.transfer(PAY_TO, WALLET, 2_000, LATEST - 29, tx(13))
    with fake_node(chain.node()) as node:
        found = await run(store, node)
        assert (found.settled, found.refunds) == (1, 2)
        assert row(store, first).refund is None  # still looked for, in its window
        assert (row(store, second).refund, row(store, second).refund_tx) == (3_000, tx(12))
        assert (row(store, third).refund, row(store, third).refund_tx) == (2_000, tx(13))
        # Seen once: a later run does not hand them to the first.
        again = await run(store, node)
    assert again.refunds == 0 and row(store, first).refund is None


async def test_a_refund_window_that_passed_with_none_seen_is_closed(store):
    payment_id = pay(store, 1, status="settled")
    later = time.time() + REFUND_WINDOW + 3600
    chain = Chain(latest=LATEST + int((later - time.time()) / 2), now=later)
    chain.use(nonce(1), LATEST, tx(1))
    with fake_node(chain.node()) as node:
        await run(store, node)
        assert row(store, payment_id).refund == 0
        calls = len(node.calls)
        await run(store, node)
        assert len(node.calls) == calls  # nothing left to look up: not even the block
    assert row(store, payment_id).net_usd == Decimal("0.013500")


async def test_a_run_reads_no_more_than_its_limits(store):
    for n in range(1, 6):
        pay(store, n, status="unknown")
    chain = Chain()
    with fake_node(chain.node()) as node:
        await run(store, node, limits=RunLimits(state_calls=2, log_calls=2, log_blocks=100))
    methods = node.methods()
    assert methods.count("eth_call") == 2 and methods.count("eth_getLogs") == 2


# -- the history -------------------------------------------------------------------------------


def test_a_schema_4_history_gains_the_refund_columns_and_keeps_its_payments(tmp_path):
    path = tmp_path / "history.sqlite3"
    with sqlite3.connect(path, isolation_level=None) as db:
        for statements in store_module._MIGRATIONS[:4]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 4")
        db.execute(
            "INSERT INTO payments (network, asset, amount, decimals, pay_to, payer, nonce, "
            "valid_before, status, tx) VALUES ('base', 'usdc', 13500, 6, 'to', 'from', 'n', 1, "
            f"'settled', '{tx(1)}')"
        )
    os.chmod(path, 0o600)
    with Store.open(path) as store:
        assert store.schema_version == 5
        [payment] = store.payments()
    assert (payment.status, payment.tx, payment.amount) == ("settled", tx(1), 13_500)
    assert (payment.refund, payment.refund_tx, payment.expired_seen) == (None, None, None)
    assert payment.net_usd == payment.amount_usd


async def test_a_chat_session_reads_the_balance_and_reconciles_one_run_at_a_time(store):
    import asyncio

    from xrouter_tui.reconcile import ChainSession

    payment_id = pay(store, 1, status="unknown")
    chain = Chain()
    chain.use(nonce(1), LATEST - 3, tx(1))
    with fake_node(chain.node()) as node:
        session = ChainSession({"base": node.url}, [BASE])
        try:
            balance = await session.refresh(WALLET)
            assert balance is not None and balance.atomic == 5_000_000
            assert session.last(WALLET) == balance
            assert await session.funds(BASE, WALLET) == 5_000_000
            first, second = await asyncio.gather(session.reconcile(store), session.reconcile(store))
        finally:
            await session.aclose()
    assert (first.settled, second.settled) == (1, 0)
    assert row(store, payment_id).status == "settled"
