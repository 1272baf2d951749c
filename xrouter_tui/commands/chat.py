"""`xrouter-tui` with no command: the full-screen chat, against the demo router or the user's."""

from __future__ import annotations

import argparse

from xrouter_tui.commands.console import EXIT_OK, EXIT_USAGE, PROG, Console

__all__ = ["run"]


def run(args: argparse.Namespace, console: Console) -> int:
    # Imported when it runs, as in every command: the options alone are read at start.
    import logging
    import sys

    from xrouter_tui.commands.routing import command_settings, router_for
    from xrouter_tui.commands.terminal import is_terminal
    from xrouter_tui.ui import ChatApp, RouterSetup
    from xrouter_tui.wallet import load_account

    env = console.env
    settings = command_settings(args, env)
    if not is_terminal(sys.stdout):
        console.error(f"the chat needs a terminal; for pipes and scripts use: {PROG} ask")
        return EXIT_USAGE
    # The demo router logs through the root logger; on the chat's screen that would draw over
    # the app, so while it runs log records go nowhere unless XROUTER_DEBUG asks for them.
    if not env.get("XROUTER_DEBUG"):
        logging.getLogger().addHandler(logging.NullHandler())
    with router_for(args, settings, env, None, need_key=False) as (base_url, account, networks, _):
        if not args.demo:
            # The environment only: a keyring may block or ask to be unlocked, so the app reads
            # it in a thread once it is on screen (and offers a setup when it holds no key).
            account = load_account(env, use_keyring=False)
        router = RouterSetup(base_url, account, networks, demo=args.demo)
        opened = "latest" if args.open_latest else args.open_cid
        app = ChatApp(
            settings,
            router,
            env=env,
            model=args.model,
            max_tokens=args.max_tokens,
            conversation=opened,
        )
        app.run()
    return EXIT_OK
