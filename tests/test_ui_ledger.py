"""The spending screen: totals, per model, every payment with its transaction; copy a hash,
export CSV, reload, close.

Driven by keyboard through Pilot against the local router, over the real history the chat
writes; what is expected comes from the router's own record of what it was paid.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.test_ui_history import notifications, send, turn
from tests.ui_helpers import Posted, demo_chat, run_command, visible_text, wait_for
from xrouter_tui.devserver.state import AcceptedPayment
from xrouter_tui.history.store import Store
from xrouter_tui.ledger import CSV_COLUMNS, Ledger
from xrouter_tui.payments import BASE_SEPOLIA, format_usd, short_address
from xrouter_tui.ui.messages import ResponseFailed
from xrouter_tui.ui.screens.chat import ChatScreen
from xrouter_tui.ui.screens.ledger import LedgerScreen

SIZE = (120, 36)
# The exported file's name comes from this moment (local time).
EXPORT_TIME = datetime(2026, 3, 14, 15, 9, 26).timestamp()


def usd(payments: list[AcceptedPayment]) -> Decimal:
    """What the router was paid, in dollars, exactly (USDC: 6 decimals)."""
    return sum((Decimal(p.amount).scaleb(-6) for p in payments), Decimal(0))


async def open_ledger(pilot: Pilot, ledger: Ledger | None = None, **options) -> LedgerScreen:
    """Open the screen (over the chat's ledger unless told) and wait until it shows what it
    read."""
    screen = LedgerScreen(ledger or pilot.app.ledger, **options)
    await pilot.app.push_screen(screen)
    await wait_for(pilot, lambda: screen.spending is not None, "the history to be read")
    await pilot.pause()
    return screen


def cells(screen: LedgerScreen) -> list[list[str]]:
    table = screen.query_one(DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def totals(screen: LedgerScreen) -> str:
    return str(screen.query_one("#ledger-totals", Static).render())


async def test_two_paid_turns_show_their_totals_and_transactions():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "Show me a table")
            await turn(pilot, posted, "And some Python")
            screen = await open_ledger(pilot)
            paid = chat.router.state.payments
            assert len(paid) == 2
            total = usd(paid)
            assert total > 0

            spending = screen.spending
            assert spending is not None
            assert spending.session_usd == spending.today_usd == spending.all_time_usd == total
            line = totals(screen)
            for label in ("This session", "Today", "All time"):
                assert f"{label} {format_usd(total)}" in line, line
            assert "unknown outcome" not in line
            shown = " ".join(visible_text(pilot.app).split())
            assert f"This session {format_usd(total)} · Today" in shown, shown

            rows = cells(screen)
            assert len(rows) == 2
            # Newest first, each marked as this session's, with its transaction shortened.
            for row, payment in zip(rows, reversed(paid), strict=True):
                mark, _time, amount, refund, status, tx, model, network = row
                assert refund == "—"  # no chain here: no refund seen
                assert mark == "•"
                assert model == payment.model
                assert amount == format_usd(Decimal(payment.amount).scaleb(-6))
                assert status == "settled"
                assert network == "Base Sepolia (test network)"
                assert tx == short_address(payment.transaction)
                assert tx.startswith(payment.transaction[:6]) and "…" in tx

            [by_model] = spending.by_model
            assert (by_model.model, by_model.payments, by_model.usd) == (paid[0].model, 2, total)

            # On an 80-column terminal amount, refund, status and transaction still show in full.
            await pilot.resize_terminal(80, SIZE[1])
            await pilot.pause()
            narrow = visible_text(pilot.app)
            for row in rows:
                assert f"{row[2]} {row[3]} settled {row[5]}" in " ".join(narrow.split()), narrow


async def test_c_and_enter_copy_the_highlighted_transaction_in_full():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "first")
            await turn(pilot, posted, "second")
            await open_ledger(pilot)
            first, second = chat.router.state.payments

            await pilot.press("c")
            await wait_for(pilot, lambda: pilot.app.clipboard == second.transaction, "the copy")
            assert f"Copied tx {short_address(second.transaction)}" in notifications(pilot)

            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: pilot.app.clipboard == first.transaction, "the copy")


async def test_x_exports_every_payment_as_csv_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "here"
    folder.mkdir()
    monkeypatch.chdir(folder)
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "first")
            await turn(pilot, posted, "second")
            await open_ledger(pilot, clock=lambda: EXPORT_TIME)

            await pilot.press("x")
            path = folder / "payments-20260314-150926.csv"
            await wait_for(pilot, path.exists, "the export")
            assert f"Saved as {path}" in notifications(pilot)
            exported = path.read_text(encoding="utf-8")

            await pilot.press("x")
            again = folder / "payments-20260314-150926-2.csv"
            await wait_for(pilot, again.exists, "the second export")
            assert f"Saved as {again}" in notifications(pilot)

    assert path.read_text(encoding="utf-8") == exported, "the first file is kept as it was"
    assert again.read_text(encoding="utf-8") == exported
    assert {p.name for p in folder.iterdir()} == {path.name, again.name}

    reader = csv.DictReader(io.StringIO(exported))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    paid = list(reversed(chat.router.state.payments))
    assert len(rows) == len(paid) == 2
    for row, payment in zip(rows, paid, strict=True):
        assert row["tx"] == payment.transaction
        assert row["amount_usd"] == f"{payment.amount // 10**6}.{payment.amount % 10**6:06d}"
        assert row["nonce"].lower() == payment.nonce.lower()
        assert row["payer"].lower() == payment.payer.lower()
        assert row["model"] == payment.model
        assert row["status"] == "settled"
        assert row["network"] == payment.network


async def test_a_refused_payment_is_shown_of_unknown_outcome_and_counted_apart():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "paid")
            chat.router.config.faults = {"reject-payment"}
            await send(pilot, "refused")
            await wait_for(pilot, lambda: posted.of(ResponseFailed), "the refusal")
            assert chat.router.state.rejections
            screen = await open_ledger(pilot)

            [paid] = chat.router.state.payments
            total = usd([paid])
            spending = screen.spending
            assert spending is not None
            assert spending.session_usd == spending.today_usd == spending.all_time_usd == total
            # Refused after it was handed over: it may still be charged until it expires.
            refused = spending.payments[0]
            assert spending.uncertain_usd == refused.amount_usd > 0
            for label in ("This session", "Today", "All time"):
                assert f"{label} {format_usd(total)}" in totals(screen)
            assert [(m.payments, m.usd) for m in spending.by_model] == [(1, total)]

            rejected, settled = cells(screen)
            assert rejected[4] == "unknown" and rejected[5] == "—"
            assert settled[4] == "settled" and settled[5] == short_address(paid.transaction)
            # It stands out: styled, where a settled payment is plain.
            table = screen.query_one(DataTable)
            status_cell = table.get_row_at(0)[4]
            assert isinstance(status_cell, Text) and status_cell.style
            assert not table.get_row_at(1)[4].style

            # Nothing to copy from it, and the user is told so.
            await pilot.press("c")
            await wait_for(pilot, lambda: "no transaction" in notifications(pilot), "the notice")


async def test_esc_and_q_return_to_the_chat():
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            for key in ("escape", "q"):
                await open_ledger(pilot)
                await pilot.press(key)
                await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), key)


async def test_an_empty_ledger_says_so_and_r_reads_it_again():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            screen = await open_ledger(pilot)
            assert "No payments yet" in visible_text(pilot.app)
            assert not screen.query_one(DataTable).display
            await pilot.press("x")
            assert "No payments to export" in notifications(pilot)
            await pilot.press("escape")

            await turn(pilot, posted, "now one")
            await pilot.app.push_screen(screen := LedgerScreen(pilot.app.ledger))
            await wait_for(pilot, lambda: screen.spending is not None, "the first read")
            before = screen.spending
            await pilot.press("r")
            await wait_for(pilot, lambda: screen.spending is not before, "the reload")
            assert len(cells(screen)) == 1
            assert "No payments yet" not in visible_text(pilot.app)
    assert len(chat.router.state.payments) == 1


async def test_a_history_that_cannot_be_read_or_opened_is_said_in_words(tmp_path: Path):
    broken = Store.open(tmp_path / "closed.sqlite3")
    broken.close()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE) as pilot:
            screen = LedgerScreen(Ledger(broken, (BASE_SEPOLIA,)))
            await pilot.app.push_screen(screen)
            await wait_for(
                pilot, lambda: "could not be read" in notifications(pilot), "the read's failure"
            )
            assert "The history could not be read." in str(
                screen.query_one("#ledger-totals", Static).render()
            )
            assert screen.spending is None
            await pilot.press("escape")

            await open_ledger(pilot, ledger=Ledger(None, (BASE_SEPOLIA,)))
            assert "past payments cannot be listed" in visible_text(pilot.app)


async def test_f3_and_the_palette_open_the_ledger():
    posted = Posted()
    with demo_chat() as chat:
        async with chat.app.run_test(size=SIZE, message_hook=posted) as pilot:
            await turn(pilot, posted, "What is x402?")
            await pilot.press("f3")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, LedgerScreen), "F3")
            screen = pilot.app.screen
            await wait_for(pilot, lambda: screen.spending is not None, "the history read")
            assert chat.router.state.payments[0].transaction[:6] in visible_text(pilot.app)
            await pilot.press("f3")
            assert pilot.app.screen is screen, "F3 again does not stack a second ledger"
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatScreen), "the chat")
            await run_command(pilot, "spending ledger")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, LedgerScreen), "palette")
