"""`xrouter-tui demo-server`: the local X-Router on loopback, for demos, tests and benchmarks."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, Console
from xrouter_tui.devserver.options import add_arguments, config_from_args

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    server = commands.add_parser(
        "demo-server",
        help="run the local X-Router (for demos and tests) on 127.0.0.1",
        description="Run the local X-Router: real x402 payments verified locally (with --chain "
        "also settled on a local EVM, the unused part refunded, its JSON-RPC at /rpc), a "
        "made-up Markdown reply, and switchable faults.",
    )
    add_arguments(server)


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    from xrouter_tui.devserver.server import serve

    try:
        serve(config_from_args(args), args.host, args.port)
    except OSError as exc:
        console.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.")
        return EXIT_USAGE
    return EXIT_OK
