"""`xrouter-tui export ID`: one saved conversation (or one of the demo's) on stdout, as Markdown
or JSON."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, PROG, Console
from xrouter_tui.commands.options import add_demo_history_option, id_argument

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="print one saved conversation as Markdown or JSON",
        description="Print one saved conversation to stdout: Markdown with a front-matter "
        "(model, tokens, cost, transactions) and the system prompt, or JSON.",
    )
    export.add_argument("id", type=id_argument, metavar="ID", help="the id `history` shows")
    export.add_argument("--format", choices=("md", "json"), default="md", help="default: md")
    add_demo_history_option(export, "one of the demo's conversations instead")


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    from xrouter_tui.history.export import export_json, export_markdown
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    demo = getattr(args, "demo", False)
    with Store.open(history_path(console.env, demo=demo)) as store:
        info = store.conversation(args.id)
        messages = store.messages(args.id) if info is not None else []
    if info is None:
        listing = f"{PROG} history --demo" if demo else f"{PROG} history"
        whose = " in the demo's history" if demo else ""
        console.error(f"no conversation with id {args.id}{whose} (`{listing}` lists them).")
        return EXIT_USAGE
    document = (
        export_json(info, messages) if args.format == "json" else export_markdown(info, messages)
    )
    console.stdout.write(document if document.endswith("\n") else document + "\n")
    console.stdout.flush()
    return EXIT_OK
