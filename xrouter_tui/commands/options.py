"""The options several commands take (where the router is, which model, how long an answer)
and the argument types that check what is typed."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

__all__ = [
    "add_demo_history_option",
    "add_model_options",
    "add_router_options",
    "id_argument",
    "max_tokens_argument",
    "port_argument",
    "usd_argument",
    "whole_number",
]


def add_router_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use a local router on a free port with a throwaway wallet (no real money)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the router's URL (XROUTER_BASE_URL)",
    )


def add_demo_history_option(parser: argparse.ArgumentParser, what: str) -> None:
    """`--demo` for a command that reads what is kept: the demo's own history instead of the
    user's (`what` says what it then shows)."""
    parser.add_argument(
        "--demo",
        action="store_true",
        # Unset unless given here: `xrouter-tui --demo history` sets it before the command.
        default=argparse.SUPPRESS,
        help=f"{what} (the demo keeps a history of its own; no real money)",
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--model", default=argparse.SUPPRESS, help="the model id, e.g. openai/gpt-4o-mini"
    )
    parser.add_argument(
        "--max-tokens",
        type=max_tokens_argument,
        metavar="N",
        default=argparse.SUPPRESS,
        help="the answer's length limit; the router charges up front for it (default 1024)",
    )


def whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; `what` names it when it is not
    one ("a port number")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


max_tokens_argument = whole_number(1, 128_000, "a whole number")
port_argument = whole_number(0, 65_535, "a port number")


def id_argument(text: str) -> int:
    """An argparse type: a conversation id (a whole number from 1)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a conversation id: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a conversation id: {text!r}")
    return value


def usd_argument(text: str) -> Decimal:
    """An argparse type: an amount in dollars above 0 ("0.05" or "$0.05")."""
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in dollars: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be an amount above 0, got {text!r}")
    return value
