"""`xrouter-tui spend`: what was paid on the allowed networks, or what the demo paid (its own
history, on its test network), as tables, JSON or CSV; the payments whose outcome or refund is
open are first reconciled from the chain (`reconcile`)."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, Console
from xrouter_tui.commands.options import add_demo_history_option

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    spend = commands.add_parser(
        "spend",
        help="show what was paid: totals, per model, and every payment",
        description="Show what was paid on the allowed networks (allowed_networks): today, in "
        "all, per model, and every payment newest first with its status and transaction. "
        "Payments stay here when their conversation is deleted.",
    )
    add_demo_history_option(spend, "the demo's payments instead, on its test network")
    spend_format = spend.add_mutually_exclusive_group()
    spend_format.add_argument("--json", action="store_true", help="print JSON instead of tables")
    spend_format.add_argument(
        "--csv", action="store_true", help="print the payments as CSV (one row each)"
    )


def run(args: argparse.Namespace, console: Console) -> int:
    """The ledger of payments on the allowed networks, or the demo's (in its own history): no
    session, so no session total."""
    # Imported when it runs, as in every command: the options alone are read at start.
    # The demo's network (commands.demo.DEMO_NETWORK) without loading the local router.
    from xrouter_tui.commands.spend_table import (
        not_counted_note,
        spend_csv,
        spend_json,
        spend_table,
        unchecked_note,
    )
    from xrouter_tui.config import load_settings
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.payments import BASE_SEPOLIA as DEMO_NETWORK
    from xrouter_tui.reconcile import reconcile_now

    demo = getattr(args, "demo", False)
    settings = load_settings(console.env)
    networks = (DEMO_NETWORK,) if demo else settings.networks
    with Store.open(history_path(console.env, demo=demo)) as store:
        # What the chain says first: outcomes settled, refunds seen. The demo's payments were
        # made on local chains that ended with their demo: nothing to look up.
        errors = [] if demo else reconcile_now(store, settings.rpc_urls, networks).errors
        ledger = Ledger(store, networks)
        spending = ledger.spending(session=False)
        # For people only: what the table leaves out (scripts asked for the allowed networks).
        plain_table = not (demo or args.json or args.csv)
        elsewhere = (
            [p for p in store.payments() if p.network not in ledger.networks] if plain_table else []
        )
    # Said only where it matters: payments whose outcome is still open.
    unchecked = errors[0] if errors and spending.uncertain_usd > 0 else None
    stdout = console.stdout
    if args.csv:
        stdout.write(spend_csv(spending))
    elif args.json:
        print(spend_json(spending, chain_error=unchecked), file=stdout)
    elif demo:
        heading = f"Demo, on {DEMO_NETWORK.label}"
        print(spend_table(spending, heading=heading, empty="No demo payments yet."), file=stdout)
    else:
        notes = [not_counted_note(elsewhere, _demo_payments(console)), unchecked_note(unchecked)]
        note = "\n".join(n for n in notes if n) or None
        print(spend_table(spending, note=note), file=stdout)
    stdout.flush()
    return EXIT_OK


def _demo_payments(console: Console) -> int:
    """How many payments the demo's own history holds (0 when there is none, or it cannot be
    read: a note for people must not fail the ledger)."""
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store, StoreError

    path = history_path(console.env, demo=True)
    if not path.exists():
        return 0  # no demo was run: nothing to create
    try:
        with Store.open(path) as store:
            return len(store.payments())
    except StoreError:
        return 0
