"""`xrouter-tui spend`: what was paid, as a table for people, JSON or CSV.

Only payments on the networks the settings allow are counted: a demo's test money is not the
user's money. Amounts are exact decimal strings, never floats.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from xrouter_tui.ledger import Spending, payments_csv
from xrouter_tui.payments import format_usd
from xrouter_tui.store import StoredPayment

__all__ = ["spend_csv", "spend_json", "spend_table"]


def spend_json(spending: Spending) -> str:
    """The totals, the spend per model and every payment (newest first), as a JSON object."""
    document = {
        "session_usd": None if spending.session_usd is None else _usd(spending.session_usd),
        "today_usd": _usd(spending.today_usd),
        "all_time_usd": _usd(spending.all_time_usd),
        "uncertain_usd": _usd(spending.uncertain_usd),
        "by_model": [
            {"model": spend.model, "usd": _usd(spend.usd), "payments": spend.payments}
            for spend in spending.by_model
        ],
        "payments": [_payment(p) for p in spending.payments],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def spend_csv(spending: Spending) -> str:
    """The payments as CSV: the ledger screen's export, exactly."""
    return payments_csv(spending.payments)


def spend_table(spending: Spending) -> str:
    """Totals, then what each model cost, then every payment newest first, for people."""
    if not spending.payments:
        return "No payments yet."
    totals = (
        f"today {format_usd(spending.today_usd)} · all time {format_usd(spending.all_time_usd)}"
    )
    if spending.uncertain_usd > 0:
        totals += f" · {format_usd(spending.uncertain_usd)} of unknown outcome"
    models = [("MODEL", "PAYMENTS", "SPENT")]
    models += [(s.model, str(s.payments), format_usd(s.usd)) for s in spending.by_model]
    payments = [("TIME", "MODEL", "AMOUNT", "STATUS", "NETWORK", "TX")]
    payments += [
        (
            _local_time(p.created),
            p.model or "(unknown model)",
            format_usd(p.amount_usd),
            p.status,
            p.network,
            _short_tx(p.tx),
        )
        for p in spending.payments
    ]
    blocks = [totals]
    if spending.by_model:
        blocks.append(_table(models, right={1, 2}))
    blocks.append(_table(payments, right={2}))
    return "\n\n".join(blocks)


def _table(rows: list[tuple[str, ...]], *, right: set[int]) -> str:
    """Columns two spaces apart, numbers aligned right; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _payment(p: StoredPayment) -> dict[str, Any]:
    return {
        "amount_usd": _usd(p.amount_usd),
        "tx": p.tx,
        "network": p.network,
        "model": p.model or None,
        "status": p.status,
        "time": p.created,
        "conversation_id": p.conversation_id,
        "payer": p.payer,
        "pay_to": p.pay_to,
        "reason": p.reason or None,
    }


def _local_time(created: str) -> str:
    """A stored UTC time (`2026-11-25T09:14:03.512Z`) in local time, to the minute."""
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created[:16].replace("T", " ")
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _short_tx(tx: str | None) -> str:
    if not tx:
        return "-"
    return tx if len(tx) <= 14 else f"{tx[:6]}…{tx[-4:]}"


def _usd(amount: Decimal) -> str:
    """An exact dollar amount as a string: `0.015378`, `0`."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
