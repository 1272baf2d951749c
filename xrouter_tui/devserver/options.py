"""The local router's command-line options (`xrouter-tui demo-server`), read at every start of
the program: this module loads nothing of the server itself."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from xrouter_tui.devserver.state import DEFAULT_PORT, FAULTS, DevServerConfig
from xrouter_tui.payments.networks import find_network, usd_to_atomic

__all__ = ["add_arguments", "config_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the dev server's options to `parser` (host and port included)."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else is reachable from outside)",
    )
    parser.add_argument(
        "--port",
        type=_non_negative(int),
        default=DEFAULT_PORT,
        help=f"port to listen on, 0 for any free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--x402-version",
        type=int,
        choices=(1, 2),
        default=1,
        help="x402 protocol version to speak (default 1, as X-Router does today)",
    )
    parser.add_argument(
        "--network",
        type=_network,
        # X-Router's own network by default, so `ask` pays it under the default policy; this
        # server never settles on a real network.
        default="base",
        help="network to ask payment on: base (default, as X-Router; nothing is settled on it) "
        "or base-sepolia",
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="run a local EVM with the network's chain id and USDC at its address: payments "
        "settle on it, the unused part is refunded, and its JSON-RPC is served at /rpc",
    )
    parser.add_argument(
        "--fund",
        type=_funding,
        action="append",
        default=[],
        metavar="ADDRESS=USD",
        help="mint test USDC on the local chain for ADDRESS, repeatable (implies --chain)",
    )
    parser.add_argument(
        "--models-shape",
        choices=("xrouter", "openai"),
        default="xrouter",
        help="answer /v1/models as X-Router ({total, models}) or OpenAI ({data}) does",
    )
    parser.add_argument(
        "--fault",
        action="append",
        choices=tuple(FAULTS),
        default=[],
        metavar="NAME",
        help="inject a fault, repeatable: " + ", ".join(FAULTS),
    )
    parser.add_argument(
        "--deltas",
        type=_non_negative(int),
        default=None,
        help="stream exactly this many content deltas (default: about 200)",
    )
    parser.add_argument(
        "--reply-bytes",
        type=_non_negative(int),
        default=None,
        metavar="N",
        help="make the reply at least N bytes of Markdown, in --deltas pieces however many "
        "bytes each takes (default: pieces of 1-6 characters)",
    )
    parser.add_argument(
        "--delay",
        type=_non_negative(float),
        default=0.0,
        help="seconds between deltas (default 0)",
    )
    parser.add_argument(
        "--fault-after",
        type=_non_negative(int),
        default=5,
        help="content deltas sent before a mid-stream fault strikes (default 5)",
    )
    parser.add_argument(
        "--stall",
        type=_non_negative(float),
        default=30.0,
        help="seconds a stall fault lasts (default 30)",
    )
    parser.add_argument(
        "--huge-bytes",
        type=_non_negative(int),
        default=DevServerConfig.huge_bytes,
        metavar="N",
        help="bytes the huge-* faults and endless-line send (default 16 MiB)",
    )
    parser.add_argument(
        "--drip-seconds",
        type=_non_negative(float),
        default=DevServerConfig.drip_seconds,
        metavar="S",
        help="seconds between the lines or bytes of a drip-* fault (default 2)",
    )


def config_from_args(args: argparse.Namespace) -> DevServerConfig:
    """The configuration that parsed arguments from `add_arguments` ask for."""
    defaults = DevServerConfig()
    fund: dict[str, int] = {}
    for address, atomic in getattr(args, "fund", None) or ():
        fund[address] = fund.get(address, 0) + atomic
    return DevServerConfig(
        x402_version=getattr(args, "x402_version", defaults.x402_version),
        network=getattr(args, "network", defaults.network),
        faults=set(getattr(args, "fault", None) or ()),
        reply_deltas=getattr(args, "deltas", defaults.reply_deltas),
        reply_bytes=getattr(args, "reply_bytes", defaults.reply_bytes),
        delta_delay=getattr(args, "delay", defaults.delta_delay),
        fault_after=getattr(args, "fault_after", defaults.fault_after),
        stall_seconds=getattr(args, "stall", defaults.stall_seconds),
        models_shape=getattr(args, "models_shape", defaults.models_shape),
        huge_bytes=getattr(args, "huge_bytes", defaults.huge_bytes),
        drip_seconds=getattr(args, "drip_seconds", defaults.drip_seconds),
        chain=bool(getattr(args, "chain", False) or fund),
        fund=fund,
    )


_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _funding(value: str) -> tuple[str, int]:
    """ADDRESS=USD as (address, atomic USDC)."""
    address, equals, usd = value.partition("=")
    address, usd = address.strip(), usd.strip().removeprefix("$")
    if not equals or not _ADDRESS.match(address):
        raise argparse.ArgumentTypeError(
            f"expected ADDRESS=USD (0x and 40 hex digits), not {value!r}"
        )
    try:
        amount = Decimal(usd)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount of dollars: {usd!r}") from None
    if not amount.is_finite() or amount < 0 or amount > 10**12:
        raise argparse.ArgumentTypeError(f"a dollar amount from 0 to 10^12, not {usd!r}")
    return address, usd_to_atomic(amount)


def _network(value: str) -> str:
    if find_network(value) is None:
        raise argparse.ArgumentTypeError(
            f"unknown network {value!r} (use base-sepolia, base, eip155:84532 or eip155:8453)"
        )
    return value


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value >= 0:  # NaN too
            raise argparse.ArgumentTypeError(f"must be zero or more: {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse
