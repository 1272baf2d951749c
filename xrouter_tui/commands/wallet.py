"""`xrouter-tui wallet`: the wallet as the chain holds it: its address, network and USDC
balance, the money at risk (payments of unknown outcome), and the refunds seen today.

The balance is read from the network's RPC endpoint (`rpc_url_base`, `XROUTER_RPC_URL`; the
demo's local chain with --demo), while the payments whose outcome or refund is open are
reconciled from the same chain. A chain that cannot be read is one note on stderr, never a
failure: the balance is then unknown (null in JSON).
"""

from __future__ import annotations

import argparse
from typing import Any

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, Console

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    wallet = commands.add_parser(
        "wallet",
        help="show the wallet: address, USDC balance, money at risk, refunds seen today",
        description="Show the wallet's address, its network and USDC balance as the chain "
        "holds it (rpc_url_base, XROUTER_RPC_URL), the money at risk (payments of unknown "
        "outcome, checked on chain first) and the refunds seen on chain today.",
    )
    wallet.add_argument(
        "--demo",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the demo's throwaway wallet on its local chain (no real money)",
    )
    wallet.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    import asyncio

    from xrouter_tui.chain import Balance, BalanceWatch, ChainReaders, rpc_host
    from xrouter_tui.commands.routing import command_settings, no_wallet, router_for
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store
    from xrouter_tui.ledger import Ledger
    from xrouter_tui.reconcile import COMMAND_DEADLINE, Reconciled, reconcile_within

    demo = getattr(args, "demo", False)
    settings = command_settings(args, console.env)
    with router_for(args, settings, console.env, console.stderr) as (base_url, account, nets, _):
        if account is None:
            console.error(no_wallet("wallet"))
            return EXIT_USAGE
        network = nets[0]
        # The demo's chain is the local router's, on its own port, as new as its wallet.
        rpc_urls = {network.v1_name: f"{base_url}/rpc"} if demo else settings.rpc_urls
        address = account.address
        with Store.open(history_path(console.env, demo=demo)) as store:

            async def look() -> tuple[Balance, Reconciled]:
                readers = ChainReaders(rpc_urls)
                watch = BalanceWatch(readers)
                try:
                    balance = watch.read(network, address)
                    if demo:
                        # Its payments were made on chains that are gone: nothing to look up.
                        return await balance, Reconciled()
                    checked = reconcile_within(store, readers, nets, deadline=COMMAND_DEADLINE)
                    return await asyncio.gather(balance, checked)  # type: ignore[return-value]
                finally:
                    await watch.aclose()
                    await readers.aclose()

            balance, reconciled = asyncio.run(look())
            spending = Ledger(store, nets).spending(session=False)
    uncertain = [p for p in spending.payments if p.at_risk_at(spending.read_at) and not p.taken]
    document = {
        "address": address,
        "network": network.v1_name,
        "balance_usd": None if balance.atomic is None else _usd(balance.atomic),
        "at_risk_usd": _usd(spending.uncertain_usd),
        "at_risk_payments": len(uncertain),
        "refunds_today_usd": _usd(spending.today_refunded_usd),
        "rpc": rpc_host(rpc_urls.get(network.v1_name, "")),
    }
    if not balance.known:
        console.error(f"the balance could not be read: {balance.error}")
    elif reconciled.errors:
        console.error(f"payments could not be checked on chain: {reconciled.errors[0]}")
    if args.json:
        from xrouter_tui.safe_text import json_text

        print(json_text(document), file=console.stdout)
    else:
        label = network.label + (", on the demo's local chain" if demo else "")
        print(_text(document, label), file=console.stdout)
    console.stdout.flush()
    return EXIT_OK


def _text(document: dict[str, Any], network: str) -> str:
    """The wallet for people: one line a fact."""
    from decimal import Decimal

    from xrouter_tui.commands.history_table import text_table
    from xrouter_tui.payments import format_usd

    balance = document["balance_usd"]
    count = document["at_risk_payments"]
    rows = [
        ("Address", document["address"]),
        ("Network", network),
        (
            "Balance",
            f"{format_usd(Decimal(balance))} USDC (read from {document['rpc']})"
            if balance is not None
            else "unknown",
        ),
        (
            "At risk",
            f"{format_usd(Decimal(document['at_risk_usd']))} in {count} "
            f"payment{'' if count == 1 else 's'} of unknown outcome"
            if count
            else "none: no payment of unknown outcome",
        ),
        ("Refunds", f"{format_usd(Decimal(document['refunds_today_usd']))} seen on chain today"),
    ]
    return text_table(rows, right=set())


def _usd(amount: Any) -> str:
    """Atomic units (an int) or dollars (a Decimal) as USDC's six-decimal text."""
    from xrouter_tui.payments.networks import atomic_to_usd, usd_text

    return usd_text(atomic_to_usd(amount) if isinstance(amount, int) else amount)
