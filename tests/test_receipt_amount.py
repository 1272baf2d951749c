"""The amount a receipt (PAYMENT-RESPONSE) names is kept in the ledger beside the signed one,
and shown in the money line only where it differs; a hostile figure cannot break the ledger."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_account import Account

from xrouter_tui.api import RouterClient
from xrouter_tui.charges import Charge
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.history.store import Store
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import BASE_SEPOLIA, SpendingPolicy

QUESTION = [{"role": "user", "content": "what does it cost?"}]


@pytest.fixture(scope="module")
def v2_router():
    config = DevServerConfig(network=BASE_SEPOLIA.v1_name, x402_version=2, reply_deltas=5)
    with start_dev_server(config) as server:
        yield server


async def paid_turn(router, store):
    ledger = Ledger(store, (BASE_SEPOLIA,))
    policy = SpendingPolicy(networks=(BASE_SEPOLIA,))
    async with RouterClient(router.url, account=Account.create(), policy=policy) as client:
        done = await client.complete(
            QUESTION, model="openai/gpt-4o-mini", max_tokens=64, on_signed=ledger.signed
        )
    return ledger, done


async def test_the_receipts_amount_is_kept_with_the_payment(v2_router, tmp_path):
    with Store.open(tmp_path / "history.sqlite3") as store:
        ledger, done = await paid_turn(v2_router, store)
        assert done.receipt is not None and done.receipt.amount == done.payment.amount
        ledger.paid(done.payment, done.receipt)
        [saved] = store.payments()
    assert saved.status == "settled"
    assert saved.receipt_amount == done.payment.amount
    assert saved.receipt_amount_usd == done.payment.amount_usd
    # The same figure as signed is not said twice.
    assert not any(
        "receipt says" in part for part in Charge.of(done.payment, done.receipt, None).parts()
    )


async def test_a_receipt_naming_another_amount_is_shown_and_a_hostile_one_is_dropped(
    v2_router, tmp_path
):
    with Store.open(tmp_path / "history.sqlite3") as store:
        ledger, done = await paid_turn(v2_router, store)
        other = replace(done.receipt, amount=done.payment.amount // 2)
        parts = Charge.of(done.payment, other, None).parts()
        assert parts[0].startswith("charged $") and parts[1].startswith("receipt says $")
        # Larger than any column: the payment is still recorded settled, without the figure.
        ledger.paid(done.payment, replace(done.receipt, amount=2**200))
        [saved] = store.payments()
    assert saved.status == "settled" and saved.receipt_amount is None
