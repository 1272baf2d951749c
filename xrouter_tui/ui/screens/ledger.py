"""The ledger: what was paid, this session, today and ever, per model, and every payment with
its transaction; copy a transaction hash, export every payment as CSV.

The history is read in a thread (it may be big, or busy with another process's write), and
the screen shows what it read when it is done; `r` reads it again. What the router said (the
transaction, the model) is shown through `safe_text`: a transaction only when it is a hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static
from textual.worker import Worker, WorkerState

from xrouter_tui.history.store import EXPIRED, StoredPayment
from xrouter_tui.ledger import Ledger, Spending, local_time, payments_csv
from xrouter_tui.payments import format_usd, network_label, short_address
from xrouter_tui.safe_text import MALFORMED, one_line, valid_tx
from xrouter_tui.ui.history import write_new_file

if TYPE_CHECKING:
    from xrouter_tui.ui.app import ChatApp

__all__ = ["LedgerScreen", "export_payments", "totals_line"]

# Marks, in the first column, a payment this session made.
SESSION_MARK = "•"
# What was paid and its transaction first: a narrow terminal cuts the model (shown per model
# above too) and the network, never the amount or the transaction.
# "Refund": the transfer back from the payee seen on chain (X-Router's mechanism is not
# documented: what the chain shows, never a promise).
_COLUMNS = ("", "Time", "Amount", "Refund", "Status", "Tx", "Model", "Network")
_WORKER = "ledger-read"
# The costliest models, one line each; the rest share one line.
_MODELS_SHOWN = 5


class LedgerScreen(Screen[None]):
    """Every payment, newest first, with the totals. Closes with Esc or q (returns nothing)."""

    DEFAULT_CSS = """
    LedgerScreen {
        padding: 0 1;
    }
    #ledger {
        height: 1fr;
    }
    #ledger-title {
        text-style: bold;
        margin-top: 1;
    }
    #ledger-totals {
        margin-bottom: 1;
    }
    #ledger-models {
        height: auto;
        margin-bottom: 1;
    }
    #ledger-payments-title {
        text-style: bold;
    }
    #ledger-payments {
        height: 1fr;
    }
    #ledger-empty {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("c", "copy_tx", "Copy tx", key_display="c/⏎"),
        Binding("x", "export", "Export CSV"),
        Binding("r", "reload", "Reload"),
    ]

    app: ChatApp

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        """`clock` names the exported file (its local date and time)."""
        super().__init__()
        self.ledger = ledger
        self.clock = clock
        # What the last read found; None until the first read ends.
        self.spending: Spending | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="ledger"):
            yield Label("Spending", id="ledger-title")
            yield Static("Reading the history…", id="ledger-totals")
            yield Static(id="ledger-models")
            yield Label(
                f"Payments, newest first ({SESSION_MARK} this session)", id="ledger-payments-title"
            )
            table: DataTable[Text] = DataTable(id="ledger-payments", cursor_type="row")
            table.add_columns(*_COLUMNS)
            yield table
            yield Static(id="ledger-empty")
        yield Footer()

    def on_mount(self) -> None:
        for widget_id in ("#ledger-models", "#ledger-payments-title", "#ledger-empty"):
            self.query_one(widget_id).display = False
        self.query_one(DataTable).focus()
        self._read()

    # -- reading -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, name=_WORKER, exit_on_error=False)
    def _read(self) -> Spending:
        return self.ledger.spending()

    @on(Worker.StateChanged)
    def _read_ended(self, event: Worker.StateChanged) -> None:
        """One place for the read's outcome: shown, or said in a notice."""
        worker = event.worker
        if worker.name != _WORKER:
            return
        if event.state is WorkerState.SUCCESS and isinstance(worker.result, Spending):
            self._show(worker.result)
        elif event.state is WorkerState.ERROR:
            self.query_one("#ledger-totals", Static).update("The history could not be read.")
            self.notify(str(worker.error), title="Spending", severity="error")

    def _show(self, spending: Spending) -> None:
        table = self.query_one(DataTable)
        keep = self._highlighted()
        self.spending = spending
        self.query_one("#ledger-totals", Static).update(totals_line(spending))
        models = self.query_one("#ledger-models", Static)
        models.display = bool(spending.by_model)
        models.update(_models_table(spending))

        styles = self._status_styles()
        table.clear()
        for payment in spending.payments:
            table.add_row(
                *_row(
                    payment,
                    spending.status_of(payment),
                    session=payment.id in spending.session_ids,
                    styles=styles,
                ),
                key=str(payment.id),
            )
        if keep is not None and str(keep.id) in table.rows:
            table.move_cursor(row=table.get_row_index(str(keep.id)))

        has_rows = bool(spending.payments)
        table.display = has_rows
        self.query_one("#ledger-payments-title").display = has_rows
        empty = self.query_one("#ledger-empty", Static)
        empty.display = not has_rows
        if self.ledger.store is None:
            empty.update(
                "The history could not be opened, so past payments cannot be listed; "
                "this session's total is kept in memory."
            )
        else:
            empty.update("No payments yet. Each paid answer is listed here, with its transaction.")

    def _status_styles(self) -> dict[str, Style]:
        """Statuses that need a second look, in the theme's colours."""
        colours = self.app.get_css_variables()
        error = Style(color=colours.get("text-error", "red"), bold=True)
        warning = Style(color=colours.get("text-warning", "yellow"), bold=True)
        dim = Style(dim=True)
        return {"rejected": error, "unknown": warning, "signed": warning, EXPIRED: dim}

    def _highlighted(self) -> StoredPayment | None:
        if self.spending is None or not self.spending.payments:
            return None
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        row = table.cursor_row
        payments = self.spending.payments
        return payments[row] if 0 <= row < len(payments) else None

    # -- keys ----------------------------------------------------------------------------

    def action_close(self) -> None:
        """Esc or q: back to the chat."""
        self.dismiss(None)

    def action_reload(self) -> None:
        """r: read the history again, once the chain was asked what is open (outcomes of
        uncertain payments, refunds)."""
        self._reconcile_then_read()

    @work(exclusive=True, group="ledger-chain", exit_on_error=False)
    async def _reconcile_then_read(self) -> None:
        chain, store = getattr(self.app, "chain", None), self.ledger.store
        if chain is not None and store is not None:
            found = await chain.reconcile(store)
            if found.errors:
                self.notify(found.errors[0], title="Chain", severity="warning")
        self._read()

    async def action_copy_tx(self) -> None:
        """c or Enter: copy the highlighted payment's transaction hash, in full."""
        payment = self._highlighted()
        if payment is None:
            self.notify("No payment to copy.", title="Spending", severity="warning")
            return
        if not payment.tx:
            self.notify(
                f"This payment has no transaction (it is {self.spending.status_of(payment)}).",
                title="Spending",
                severity="warning",
            )
            return
        tx = valid_tx(payment.tx)
        if tx is None:
            # The router's word, and not a hash: pasted anywhere it could do harm.
            self.notify(
                f"This payment's transaction is {MALFORMED}: the router did not send a "
                "transaction hash, so nothing was copied.",
                title="Spending",
                severity="warning",
            )
            return
        how = await self.app.copy_text(tx)
        self.notify(f"Copied tx {short_address(tx)} {how}.", title="Spending", timeout=4)

    @on(DataTable.RowSelected, "#ledger-payments")
    async def _row_selected(self) -> None:
        await self.action_copy_tx()

    def action_export(self) -> None:
        """x: every payment as CSV, to the current folder (else the data folder), never over
        an existing file."""
        if self.spending is None or not self.spending.payments:
            self.notify("No payments to export.", title="Export", severity="warning")
            return
        document = payments_csv(self.spending.payments, now=self.spending.read_at)
        stamp = datetime.fromtimestamp(self.clock()).strftime("%Y%m%d-%H%M%S")
        self.app.save_export(
            "payments", lambda folder: export_payments(document, folder, f"payments-{stamp}")
        )


def export_payments(document: str, folder: Path, stem: str) -> Path:
    """Write the CSV `document` to `stem.csv` in `folder`, never over an existing file."""
    return write_new_file(folder, stem, ".csv", document)


def totals_line(spending: Spending) -> Text:
    """This session $X · Today $Y · All time $Z, and what may yet be charged."""
    parts: list[tuple[str, Decimal | None]] = [
        ("This session", spending.session_usd),
        ("Today", spending.today_usd),
        ("All time", spending.all_time_usd),
    ]
    line = Text()
    for label, usd in parts:
        if usd is None:
            continue
        if line:
            line.append(" · ", style="dim")
        line.append(f"{label} ")
        line.append(format_usd(usd), style="bold")
    if spending.uncertain_usd > 0:
        line.append(" · ", style="dim")
        line.append(f"{format_usd(spending.uncertain_usd)} of unknown outcome", style="italic")
    return line


def _row(
    payment: StoredPayment, status: str, *, session: bool, styles: dict[str, Style]
) -> tuple[Text, ...]:
    return (
        Text(SESSION_MARK if session else " ", style="bold"),
        Text(local_time(payment.created)),
        Text(format_usd(payment.amount_usd), justify="right"),
        _refund_cell(payment),
        Text(status, style=styles.get(status, "")),
        _tx_cell(payment.tx),
        Text(one_line(payment.model) or "(unknown model)"),
        Text(one_line(network_label(payment.network))),
    )


def _refund_cell(payment: StoredPayment) -> Text:
    """The refund seen on chain; `—` while none is (or none was found in time)."""
    if not payment.refund:
        return Text("—", style="dim", justify="right")
    return Text(format_usd(payment.refund_usd), justify="right")


def _tx_cell(tx: str | None) -> Text:
    """A transaction as its cell shows it: shortened when it is a hash, `(malformed)` when the
    router sent something else (which could hold escapes, or be long enough to hide the row)."""
    if not tx:
        return Text("—", style="dim")
    valid = valid_tx(tx)
    if valid is None:
        return Text(MALFORMED, style="italic")
    return Text(short_address(valid))


def _models_table(spending: Spending) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0), expand=False, header_style="bold")
    table.add_column("Model")
    table.add_column("Payments", justify="right")
    table.add_column("Spent", justify="right")
    for spend in spending.by_model[:_MODELS_SHOWN]:
        table.add_row(Text(one_line(spend.model)), str(spend.payments), format_usd(spend.usd))
    hidden = spending.by_model[_MODELS_SHOWN:]
    if hidden:
        rest = sum((spend.usd for spend in hidden), Decimal(0))
        table.add_row(
            Text(f"… {len(hidden)} more", style="dim"),
            str(sum(spend.payments for spend in hidden)),
            format_usd(rest),
        )
    return table
