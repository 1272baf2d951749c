"""`xrouter-tui history`: the saved conversations (or the demo's), newest first, as a table or
JSON."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, Console
from xrouter_tui.commands.options import add_demo_history_option

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    history = commands.add_parser(
        "history",
        help="list the saved conversations, newest first",
        description="List the saved conversations, the most recently changed first.",
    )
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    history.add_argument(
        "--search",
        metavar="TEXT",
        help="only conversations in which every word of TEXT occurs (in the title, the system "
        "prompt or any message; 'ship' finds 'ships' and 'shipping')",
    )
    add_demo_history_option(history, "the demo's conversations instead")


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    from xrouter_tui.commands.history_table import history_json, history_table, nothing_listed
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    demo = getattr(args, "demo", False)
    # `--search ""` (a variable left empty in a script) searches for nothing: all are listed.
    search = args.search if args.search is not None and args.search.strip() else None
    with Store.open(history_path(console.env, demo=demo)) as store:
        conversations = store.conversations(search=search)
        # A search that finds nothing must not read as an empty history, nor the other way.
        empty = not conversations and store.latest_conversation_id() is None
    if args.json:
        shown = history_json(conversations)
    elif conversations:
        shown = history_table(conversations)
    else:
        shown = nothing_listed(None if empty else search, demo=demo)
    print(shown, file=console.stdout)
    return EXIT_OK
