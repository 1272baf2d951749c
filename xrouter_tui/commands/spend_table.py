"""What `xrouter-tui spend` prints: what was paid, as a table for people, JSON or CSV.

Only payments on the networks the settings allow are counted: a demo's test money is not the
user's money (the demo keeps its own history; `spend --demo` shows it). Amounts are exact
decimal strings, never floats. Model names, transactions and reasons came from a router: the
table shows them through `safe_text`, a malformed transaction as `(malformed)`; the JSON keeps
them as recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xrouter_tui.commands.history_table import text_table
from xrouter_tui.history.store import StoredPayment
from xrouter_tui.ledger import Spending, local_time, payments_csv
from xrouter_tui.payments import format_usd, network_label, short_address
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.safe_text import MALFORMED, json_text, one_line, valid_tx

__all__ = ["not_counted_note", "spend_csv", "spend_json", "spend_table", "unchecked_note"]


def spend_json(spending: Spending, *, chain_error: str | None = None) -> str:
    """The totals, the spend per model and every payment (newest first), as a JSON object;
    `chain_error` says why payments of unknown outcome could not be checked on chain."""
    document = {
        "session_usd": None if spending.session_usd is None else usd_text(spending.session_usd),
        "today_usd": usd_text(spending.today_usd),
        "all_time_usd": usd_text(spending.all_time_usd),
        "uncertain_usd": usd_text(spending.uncertain_usd),
        # Refunds seen on chain: USDC back from a payment's payee after it.
        "today_refunded_usd": usd_text(spending.today_refunded_usd),
        "all_time_refunded_usd": usd_text(spending.all_time_refunded_usd),
        "chain_error": chain_error,
        "by_model": [
            {"model": spend.model, "usd": usd_text(spend.usd), "payments": spend.payments}
            for spend in spending.by_model
        ],
        "payments": [_payment(p, spending.status_of(p)) for p in spending.payments],
    }
    return json_text(document)


def spend_csv(spending: Spending) -> str:
    """The payments as CSV: the ledger screen's export, exactly."""
    return payments_csv(spending.payments, now=spending.read_at)


def spend_table(
    spending: Spending,
    *,
    heading: str = "",
    empty: str = "No payments yet.",
    note: str | None = None,
) -> str:
    """Totals, then what each model cost, then every payment newest first, for people.
    `heading` says whose payments these are where that is not plain; `note` ends the page."""
    blocks = _spend_blocks(spending, heading) if spending.payments else [empty]
    if note:
        blocks.append(note)
    return "\n\n".join(blocks)


def not_counted_note(elsewhere: Sequence[StoredPayment], demo_payments: int = 0) -> str | None:
    """The lines on the payments left out: those on a network that is not an allowed one, and
    the demo's (kept in its own history), so that an empty ledger after a paid demo does not
    look like a lost one. None when nothing was left out."""
    lines = []
    if elsewhere:
        labels = [one_line(network_label(name)) for name in sorted({p.network for p in elsewhere})]
        lines.append(
            f"Not counted: {_payments(len(elsewhere))} on {', '.join(labels)}, "
            "not in allowed_networks."
        )
    if demo_payments:
        lines.append(
            f"Not counted: {_payments(demo_payments)} of the demo, kept in its own history; "
            "`xrouter-tui spend --demo` lists them."
        )
    return "\n".join(lines) or None


def unchecked_note(error: str | None) -> str | None:
    """The line on payments of unknown outcome the chain could not be asked about."""
    if not error:
        return None
    return f"Not checked on chain: {one_line(error, 300)}"


def _payments(count: int) -> str:
    return f"{count} payment{'s' if count != 1 else ''}"


def _spend_blocks(spending: Spending, heading: str) -> list[str]:
    totals = (
        f"today {format_usd(spending.today_usd)} · all time {format_usd(spending.all_time_usd)}"
    )
    if heading:
        totals = f"{heading}: {totals}"
    if spending.uncertain_usd > 0:
        totals += f" · {format_usd(spending.uncertain_usd)} of unknown outcome"
    if spending.all_time_refunded_usd > 0:
        totals += (
            f" · refunded {format_usd(spending.today_refunded_usd)} today, "
            f"{format_usd(spending.all_time_refunded_usd)} in all (seen on chain)"
        )
    models = [("MODEL", "PAYMENTS", "SPENT")]
    models += [(one_line(s.model), str(s.payments), format_usd(s.usd)) for s in spending.by_model]
    refunds = any(p.refund for p in spending.payments)
    payments = [("TIME", "MODEL", "AMOUNT", "STATUS", "NETWORK", "TX", *(("REFUND",) * refunds))]
    payments += [
        (
            local_time(p.created),
            one_line(p.model) or "(unknown model)",
            format_usd(p.amount_usd),
            spending.status_of(p),
            one_line(network_label(p.network)),
            _tx(p.tx),
            *((format_usd(p.refund_usd) if p.refund else "-",) * refunds),
        )
        for p in spending.payments
    ]
    blocks = [totals]
    if spending.by_model:
        blocks.append(text_table(models, right={1, 2}))
    blocks.append(text_table(payments, right={2, 6}))
    return blocks


def _tx(tx: str | None) -> str:
    """A transaction as the table shows it: shortened when it is a hash, else said so."""
    if not tx:
        return "-"
    valid = valid_tx(tx)
    return short_address(valid) if valid else MALFORMED


def _payment(p: StoredPayment, status: str) -> dict[str, Any]:
    return {
        "amount_usd": usd_text(p.amount_usd),
        "tx": p.tx,
        "network": p.network,
        "model": p.model or None,
        "status": status,
        "time": p.created,
        "conversation_id": p.conversation_id,
        "payer": p.payer,
        "pay_to": p.pay_to,
        "reason": p.reason or None,
        # USDC seen back from its payee after it, on chain (null: none seen).
        "refund_usd": usd_text(p.refund_usd) if p.refund else None,
        "refund_tx": p.refund_tx if p.refund else None,
    }
