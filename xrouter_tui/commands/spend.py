"""`xrouter-tui spend`: what was paid, as a table for people, JSON or CSV.

Only payments on the networks the settings allow are counted: a demo's test money is not the
user's money. Amounts are exact decimal strings, never floats.
"""

from __future__ import annotations

import json
from typing import Any

from xrouter_tui.commands.history import text_table, usd_text
from xrouter_tui.ledger import Spending, local_time, payments_csv
from xrouter_tui.payments import format_usd, short_address
from xrouter_tui.store import StoredPayment

__all__ = ["spend_csv", "spend_json", "spend_table"]


def spend_json(spending: Spending) -> str:
    """The totals, the spend per model and every payment (newest first), as a JSON object."""
    document = {
        "session_usd": None if spending.session_usd is None else usd_text(spending.session_usd),
        "today_usd": usd_text(spending.today_usd),
        "all_time_usd": usd_text(spending.all_time_usd),
        "uncertain_usd": usd_text(spending.uncertain_usd),
        "by_model": [
            {"model": spend.model, "usd": usd_text(spend.usd), "payments": spend.payments}
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
            local_time(p.created),
            p.model or "(unknown model)",
            format_usd(p.amount_usd),
            p.status,
            p.network,
            short_address(p.tx) if p.tx else "-",
        )
        for p in spending.payments
    ]
    blocks = [totals]
    if spending.by_model:
        blocks.append(text_table(models, right={1, 2}))
    blocks.append(text_table(payments, right={2}))
    return "\n\n".join(blocks)


def _payment(p: StoredPayment) -> dict[str, Any]:
    return {
        "amount_usd": usd_text(p.amount_usd),
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
