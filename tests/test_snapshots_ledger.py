"""An SVG snapshot of the spending screen, over a history with fixed payments and times.

Regenerate the baseline after a deliberate change of look, and review it before committing:

    python -m pytest tests/test_snapshots_ledger.py --snapshot-update

The chat's own payments would carry today's date, so the screen is shown over a history of
its own: payments recorded through the ledger (this session's) or the store (earlier ones),
their times then set by plain SQL, the ledger's clock fixed, and local time pinned to UTC.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.test_snapshots import Scene
from tests.ui_helpers import demo_chat, visible_text, wait_for
from xrouter_tui.history.store import Store
from xrouter_tui.ledger import Ledger, payment_record
from xrouter_tui.payments import BASE, BASE_SEPOLIA, Network, Receipt, SignedPayment
from xrouter_tui.ui.screens.ledger import LedgerScreen

SIZE = (110, 34)
NOW = datetime(2026, 3, 14, 15, 30, tzinfo=UTC).timestamp()
PAYER = "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1"
PAY_TO = "0xeb4da07be74b26b2966b3cd07842cade70e47d53"


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC, so the times on screen are the same on every machine."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def signed(
    number: int, amount: int, network: Network = BASE_SEPOLIA, valid_before: int = int(NOW) + 600
) -> SignedPayment:
    return SignedPayment(
        x402_version=1,
        header_name="X-PAYMENT",
        header_value="",
        network=network,
        asset=network.usdc.address,
        pay_to=PAY_TO,
        payer=PAYER,
        amount=amount,
        nonce=f"0x{number:064x}",
        valid_after=0,
        valid_before=valid_before,
        signature="",
    )


def tx(number: int) -> str:
    return "0x" + f"{number:02x}" * 32


def fixed_ledger(path: Path) -> Ledger:
    """Seven payments: three earlier ones (one of them yesterday's), four of this session (one
    settled; one its receipt says failed and one whose answer was lost, both of unknown outcome
    and counted; one of unknown outcome whose authorization has expired, not charged), and one
    on another network, not shown."""
    store = Store.open(path)
    ledger = Ledger(store, (BASE_SEPOLIA,), clock=lambda: NOW)
    created: list[tuple[int, str]] = []

    def earlier(number: int, amount: int, model: str, when: str, **kw: Any) -> None:
        payment = signed(number, amount, **kw)
        payment_id = store.record_payment(None, payment_record(payment), model=model)
        store.update_payment(payment_id, "settled", tx=tx(number))
        created.append((payment_id, when))

    earlier(1, 135_168, "anthropic/claude-sonnet-4", "2026-03-12T09:14:03.512Z")
    earlier(2, 13_500, "openai/gpt-4o-mini", "2026-03-13T22:40:00.000Z")
    earlier(3, 250_000, "openai/gpt-4o", "2026-03-14T08:05:00.000Z", network=BASE)
    session = [
        (4, 31_326, "openai/gpt-4o", Receipt(success=True, transaction=tx(4))),
        (5, 31_326, "openai/gpt-4o", Receipt(success=False, error_reason="insufficient_funds")),
        (6, 9_001, "anthropic/claude-sonnet-4", None),
        (7, 4_200, "openai/gpt-4o-mini", None),
    ]
    for number, amount, model, receipt in session:
        expired = number == 7  # its validBefore passed a second ago: it can no longer settle
        payment = signed(number, amount, valid_before=int(NOW) - 1 if expired else int(NOW) + 600)
        ledger.signed(payment, model=model)
        if receipt is None:
            ledger.failed(payment, TimeoutError(), accepted=False)
        else:
            ledger.paid(payment, receipt)
    for minute, payment_id in enumerate(sorted(ledger.spending().session_ids)):
        created.append((payment_id, f"2026-03-14T15:{10 + minute:02d}:00.000Z"))
    with sqlite3.connect(path) as db:
        db.executemany("UPDATE payments SET created = ? WHERE id = ?", [(w, i) for i, w in created])
    db.close()
    return ledger


def test_the_spending_screen(snap_compare, tmp_path: Path, utc: None):
    ledger = fixed_ledger(tmp_path / "fixed.sqlite3")
    with demo_chat() as chat:

        async def steps(pilot: Pilot, seen: dict[str, Any]) -> None:
            screen = LedgerScreen(ledger)
            await pilot.app.push_screen(screen)
            await wait_for(pilot, lambda: screen.spending is not None, "the history to be read")
            await pilot.pause()
            seen["spending"] = screen.spending
            seen["rows"] = screen.query_one(DataTable).row_count
            seen["on screen"] = " ".join(visible_text(chat.app).split())

        scene = Scene(chat, steps)
        matches = snap_compare(chat.app, run_before=scene, terminal_size=SIZE)
    assert ledger.store is not None
    ledger.store.close()
    seen = scene.check()
    spending = seen["spending"]
    assert spending.session_usd == Decimal("0.031326")
    assert spending.today_usd == Decimal("0.031326"), "yesterday's and Base's are not today's"
    assert spending.all_time_usd == Decimal("0.179994")
    # The failed receipt's and the lost answer's, not the expired one's.
    assert spending.uncertain_usd == Decimal("0.040327")
    assert seen["rows"] == 6, "the Base payment is not this router's network"
    shown = seen["on screen"]
    assert "This session $0.031326 · Today $0.031326 · All time $0.179994" in shown, shown
    assert "$0.040327 of unknown outcome" in shown
    assert "2026-03-14 15:12" in shown and "2026-03-12 09:14" in shown
    assert "unknown" in shown and "expired, not charged" in shown and "rejected" not in shown
    assert matches
