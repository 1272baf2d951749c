"""`xrouter-tui proxy`: OpenAI's chat and model endpoints on this machine, paid upstream.

The options and the run; the server itself is in `proxy_server`, imported when it runs.
"""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, Console
from xrouter_tui.commands.options import add_model_options, add_router_options, port_argument

__all__ = ["DEFAULT_PORT", "TOKEN_VARIABLE", "add_parser", "run"]

DEFAULT_PORT = 8403
TOKEN_VARIABLE = "XROUTER_PROXY_TOKEN"


def add_parser(commands: argparse._SubParsersAction) -> None:
    proxy = commands.add_parser(
        "proxy",
        help="serve an OpenAI-compatible API on this machine that pays X-Router per request",
        description="Serve POST /v1/chat/completions and GET /v1/models on this machine for "
        "any OpenAI-compatible tool, paying X-Router for each request with the wallet key in "
        "the keyring, under your caps and budgets (no one is asked: a payment above "
        "confirm_above_usd is refused unless --yes). Clients send a token as their API key. "
        "Every request lands in the history and the ledger.",
    )
    proxy.add_argument(
        "--host",
        default="127.0.0.1",
        help="where to listen (default 127.0.0.1; anything but loopback needs --allow-remote)",
    )
    proxy.add_argument(
        "--port",
        type=port_argument,
        default=DEFAULT_PORT,
        help=f"the port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    proxy.add_argument(
        "--token",
        help=f"the API key clients must send (default: {TOKEN_VARIABLE}, else a new one, "
        "printed at start)",
    )
    proxy.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (they can spend with the token)",
    )
    proxy.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="pay above confirm_above_usd without asking, up to max_per_request_usd",
    )
    add_model_options(proxy)
    add_router_options(proxy)


def run(args: argparse.Namespace, console: Console) -> int:
    """Serve the paying OpenAI-compatible endpoint until Ctrl+C."""
    # Imported when it runs, as in every command: the options alone are read at start.
    from dataclasses import replace

    from xrouter_tui.api import Timeouts
    from xrouter_tui.commands.proxy_server import ProxyOptions, ProxyRefused, ProxyRouter, serve
    from xrouter_tui.commands.routing import command_settings, no_wallet, router_for
    from xrouter_tui.history.journal import history_path
    from xrouter_tui.history.store import Store

    settings = command_settings(args, console.env)
    settings = replace(
        settings,
        model=args.model or settings.model,
        max_tokens=args.max_tokens or settings.max_tokens,
    )
    options = ProxyOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        allow_remote=args.allow_remote,
        pay_without_asking=args.yes,
    )
    env, stderr = console.env, console.stderr
    with (
        Store.open(history_path(env)) as store,
        router_for(args, settings, env, stderr) as (base_url, account, networks, models),
    ):
        if account is None:
            console.error(no_wallet("proxy"))
            return EXIT_USAGE
        rpc_urls = (
            {network.v1_name: f"{base_url}/rpc" for network in networks}
            if args.demo
            else settings.rpc_urls
        )
        router = ProxyRouter(base_url, account, networks, models, Timeouts.of(settings), rpc_urls)
        try:
            serve(options, router, settings, store, env, out=console.stdout, log=stderr)
        except ProxyRefused as exc:
            console.error(str(exc))
            return EXIT_USAGE
        except OSError as exc:
            console.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.")
            return EXIT_USAGE
    return EXIT_OK
