"""`xrouter-tui models`: the router's models with their prices, as a table or JSON."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_FAILED, EXIT_OK, Console
from xrouter_tui.commands.options import add_router_options

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser(
        "models",
        help="list the router's models and prices",
        description="List the models the router offers, with their prices (per million "
        "tokens, in and out) and context lengths, as a table or JSON. Listing them costs "
        "nothing.",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_router_options(models)


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    import asyncio

    from xrouter_tui.api import Limits, ModelInfo, RouterClient, RouterError, Timeouts
    from xrouter_tui.commands.model_table import models_json, models_table
    from xrouter_tui.commands.routing import command_settings, router_for

    settings = command_settings(args, console.env)

    async def fetch(base_url: str) -> list[ModelInfo]:
        async with RouterClient(
            base_url, timeouts=Timeouts.of(settings), limits=Limits.of(settings)
        ) as client:
            return await client.list_models()

    with router_for(args, settings, console.env, console.stderr, need_key=False) as choice:
        try:
            models = asyncio.run(fetch(choice[0]))
        except RouterError as exc:
            console.error(exc.message)
            return EXIT_FAILED
    shown = models_json(models) if args.json else models_table(models)
    print(shown, file=console.stdout, flush=True)
    return EXIT_OK
