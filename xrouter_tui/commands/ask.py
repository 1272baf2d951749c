"""`xrouter-tui ask`: one paid question, the answer streamed to stdout as it arrives (drawn as
Markdown on a terminal), or one JSON document at the end.

Its options, read at every start (so `--help` and the other commands load nothing more); the run
is in `ask_run`, imported when the command runs.
"""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import Console
from xrouter_tui.commands.options import (
    add_model_options,
    add_router_options,
    id_argument,
    usd_argument,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    ask = commands.add_parser(
        "ask",
        help="ask one question; the answer streams to stdout",
        description="Ask one question and stream the answer to stdout: drawn as Markdown on a "
        "terminal, plain text to a pipe or a file. The prompt comes from the arguments, or "
        "stdin when none is given or it is '-'; piped stdin is appended to a given prompt.",
    )
    ask.add_argument("prompt", nargs="*", help="the question (default: read stdin)")
    add_model_options(ask)
    ask.add_argument("-s", "--system", help="a system prompt for this question")
    output = ask.add_mutually_exclusive_group()
    output.add_argument(
        "--raw",
        action="store_true",
        help="write the answer exactly as the router sent it, escape sequences and control "
        "characters included, never drawn as Markdown (by default they are removed: they could "
        "set the window title, the clipboard or clear the screen)",
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print nothing while the answer streams, then one JSON document: answer, model, "
        "tokens_in, tokens_out, amount_usd, network, tx, conversation_id, status (complete, "
        "failed or stopped), finish_reason, and error when it did not complete",
    )
    ask.add_argument(
        "--max-price",
        type=usd_argument,
        metavar="USD",
        help="refuse to pay more than this for this request (tightens max_per_request_usd)",
    )
    saved = ask.add_mutually_exclusive_group()
    saved.add_argument(
        "-c",
        "--continue",
        dest="continue_latest",
        action="store_true",
        help="continue the most recent conversation: its earlier exchanges are sent too, and "
        "its model and system prompt are kept unless -m or -s is given",
    )
    saved.add_argument(
        "--cid", type=id_argument, metavar="ID", help="continue the conversation with this id"
    )
    saved.add_argument(
        "--no-history",
        action="store_true",
        help="save nothing of this question or its answer (its payment is still kept in the "
        "ledger, so that budgets hold)",
    )
    ask.add_argument(
        "--retry",
        action="store_true",
        help="with -c or --cid: send the conversation's last question whose paid answer was lost "
        "again, with the very payment signed for it (its nonce can be charged once at most, so "
        "this cannot pay twice); exits 3 without sending when that payment has expired",
    )
    ask.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="pay above confirm_above_usd without asking (needed when there is no terminal to "
        "ask on); caps and budgets still hold",
    )
    add_router_options(ask)


def run(args: argparse.Namespace, console: Console) -> int:
    from xrouter_tui.commands.ask_run import run_ask

    return run_ask(args, console)
