"""`xrouter-tui history`: the saved conversations, newest first, as a table or JSON."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, Console

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
        help="only conversations whose title or a message contains every word of TEXT",
    )


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    from xrouter_tui.commands.history_table import history_json, history_table
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    with Store.open(history_path(console.env)) as store:
        conversations = store.conversations(search=args.search)
    shown = history_json(conversations) if args.json else history_table(conversations)
    print(shown, file=console.stdout)
    return EXIT_OK
