"""`xrouter-tui key import|generate|show|export|delete`: the wallet key in the OS keyring.

The options; what each action does is in `key_actions`, imported when the command runs.
"""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, Console

__all__ = ["ENV_KEY", "add_parser", "run"]

# As wallet.ENV_KEY, named here for the help text without loading the keyring.
ENV_KEY = "XROUTER_PRIVATE_KEY"


def add_parser(commands: argparse._SubParsersAction) -> None:
    key = commands.add_parser(
        "key",
        help="keep the wallet key in the OS keyring: import, generate, show, export, delete",
        description="The wallet key lives in the OS keyring (service 'xrouter-tui'). import "
        "reads it from a hidden prompt, or from stdin when stdin is not a terminal (never "
        "from the command line); generate makes a new one; show prints the address; export "
        "prints the key, on a terminal only, after you confirm; delete forgets it. "
        f"{ENV_KEY}, when set, overrides the keyring (less safe: for headless machines).",
    )
    key.add_argument("action", choices=("import", "generate", "show", "export", "delete"))
    # Caught to refuse it without echoing it: a key typed here would sit in the shell's history.
    key.add_argument("given", nargs="*", help=argparse.SUPPRESS)
    key.add_argument(
        "-y", "--yes", action="store_true", help="replace or delete a stored key without asking"
    )


def run(args: argparse.Namespace, console: Console) -> int:
    if args.given:
        console.error(
            "key commands take no arguments: the key is read from a hidden prompt, or "
            "from stdin, never from the command line (it would stay in your shell's "
            "history and show in the list of processes)."
        )
        return EXIT_USAGE
    # Imported when it runs, as in every command: the options alone are read at start.
    from xrouter_tui.commands.key_actions import KeyIO, run_key_command

    io = KeyIO(console.stdin, console.stdout, console.stderr, console.env)
    run_key_command(args.action, io, assume_yes=args.yes)
    return EXIT_OK
