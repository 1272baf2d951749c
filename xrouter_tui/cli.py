"""The command line: the global options, the table of commands, and the one place that turns
an error into a line and an exit code.

Each command's module (in `commands/`) owns its options (`add_parser`) and its `run(args,
console)`; what a run needs is imported when it runs, so `--version`, `--help` and a short
command load next to nothing. Exit codes are in `commands/console.py`. Errors are one or two
plain lines on stderr, never a traceback (set XROUTER_DEBUG=1 for one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import IO

from xrouter_tui import __version__
from xrouter_tui.commands.console import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    PROG,
    Console,
    silence_stdout,
)
from xrouter_tui.commands.options import add_model_options, add_router_options, id_argument

__all__ = [
    "COMMANDS",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

# The command words, in the order `--help` lists them, and the modules that parse and run them.
COMMANDS: dict[str, str] = {
    "ask": "xrouter_tui.commands.ask",
    "history": "xrouter_tui.commands.history",
    "export": "xrouter_tui.commands.export",
    "spend": "xrouter_tui.commands.spend",
    "wallet": "xrouter_tui.commands.wallet",
    "models": "xrouter_tui.commands.models",
    "key": "xrouter_tui.commands.key",
    "proxy": "xrouter_tui.commands.proxy",
    "demo-server": "xrouter_tui.commands.demo_server",
}
# No command word: the full-screen chat.
CHAT = "xrouter_tui.commands.chat"
# The commands that only print what is kept or listed: a closed stdout ends them quietly and
# well (`history --json | head`).
_LISTINGS = frozenset({"history", "export", "models", "spend", "wallet"})
# The errors whose message is the whole story, by module, class and exit code.
_USER_ERRORS = (
    ("xrouter_tui.config", "ConfigError", EXIT_USAGE),
    ("xrouter_tui.wallet", "WalletError", EXIT_USAGE),
    ("xrouter_tui.commands.ask_turn", "PromptError", EXIT_USAGE),
    ("xrouter_tui.history.store", "StoreError", EXIT_FAILED),
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `design.md` holds its contract."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A terminal chat for X-Router that pays for each request with x402 (USDC).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_router_options(parser)
    add_model_options(parser)
    # The chat's own (each command has its options after its word).
    opened = parser.add_mutually_exclusive_group()
    opened.add_argument(
        "-c",
        "--continue",
        dest="open_latest",
        action="store_true",
        help="open the chat on the most recent conversation",
    )
    opened.add_argument(
        "--cid", dest="open_cid", type=id_argument, metavar="ID", help="open this conversation"
    )
    # The options exist before and after the command word; only a given one may set them, or
    # the command's silent default would undo `xrouter-tui --demo ask …`.
    parser.set_defaults(demo=False, base_url=None, model=None, max_tokens=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(commands)
    return parser


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: an option it does not know is reported with its usage
    (`usage: xrouter-tui history …`), not the program's, which would not name it."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line and return its exit code."""
    console = Console(
        env=os.environ if env is None else env,
        stdin=sys.stdin if stdin is None else stdin,
        stdout=sys.stdout if stdout is None else stdout,
        stderr=sys.stderr if stderr is None else stderr,
    )
    args = build_parser().parse_args(argv)  # usage errors exit 2 from argparse itself
    try:
        code = importlib.import_module(COMMANDS.get(args.command, CHAT)).run(args, console)
        # Flushed here, inside the try, for every command: a reader that went away is then met
        # below, not at exit, where Python would print a traceback.
        console.stdout.flush()
        return code
    except BrokenPipeError as exc:
        # The reader of stdout went away: a listing gave it what it wanted; an answer's turn is
        # over, stopped (exit 1). Nothing is said either way.
        lists = _lists(args)
        if not (lists or args.command == "ask"):
            return _unexpected(exc, console)
        silence_stdout(console.stdout)
        return EXIT_OK if lists else EXIT_FAILED
    except KeyboardInterrupt:
        console.error("interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one plain line, never a traceback
        code = _expected(exc)
        if code is None:
            return _unexpected(exc, console)
        console.error(str(exc))
        return code


def _lists(args: argparse.Namespace) -> bool:
    if args.command == "key":
        return args.action == "show"
    return args.command in _LISTINGS


def _expected(exc: Exception) -> int | None:
    """The exit code of an error a command raises for the user to read (its message is that
    line), or None for anything else. Looked up in the modules loaded already: the module of an
    error that was raised is, and a run that went well needs none of them."""
    for module, name, code in _USER_ERRORS:
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return code
    return None


def _unexpected(exc: BaseException, console: Console) -> int:
    if console.env.get("XROUTER_DEBUG"):
        traceback.print_exception(exc, file=console.stderr)
    message = f"unexpected error: {type(exc).__name__}: {exc}"
    from xrouter_tui.wallet import ENV_KEY, redact

    key = console.env.get(ENV_KEY)
    console.error(redact(message, key) if key else message)
    return EXIT_FAILED
