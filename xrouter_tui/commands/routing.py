"""Which router a command talks to, with which wallet, on which networks: the demo's or the
user's, from the settings and the command's options."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO

from xrouter_tui.api import ModelInfo
from xrouter_tui.commands.console import PROG
from xrouter_tui.config import Settings, apply_settings, data_dir, load_settings
from xrouter_tui.model_catalog import FALLBACK_MODELS, ModelCatalog
from xrouter_tui.payments import Network, WalletKey
from xrouter_tui.wallet import ENV_KEY, load_account

__all__ = ["RouterChoice", "command_settings", "no_wallet", "router_for"]

# Where requests go, with which wallet, on which networks, and the models' prices as last known.
RouterChoice = tuple[str, WalletKey | None, tuple[Network, ...], Sequence[ModelInfo]]


def command_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """The user's settings, with --base-url applied when given."""
    settings = load_settings(env)
    if getattr(args, "base_url", None):
        settings = apply_settings(settings, {"base_url": args.base_url}, source="--base-url")
    return settings


@contextmanager
def router_for(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    stderr: IO[str] | None,
    *,
    need_key: bool = True,
) -> Iterator[RouterChoice]:
    """The demo's router (for as long as the block runs) or the user's; no request is made for
    the models' prices."""
    if getattr(args, "demo", False):
        # Imported here: the local router is a server of its own, needed only by the demo.
        from xrouter_tui.commands.demo import demo_router

        with demo_router(stderr=stderr) as demo:
            yield demo.base_url, demo.account, (demo.network,), demo.models
        return
    account = load_account(env) if need_key else None
    models = ModelCatalog(data_dir(env)).cached(settings.base_url) or FALLBACK_MODELS
    yield settings.base_url, account, settings.networks, models


def no_wallet(command: str) -> str:
    """What to say when `command` needs a wallet key and there is none."""
    return (
        f"no wallet key. Store yours in the keyring with `{PROG} key import`, or make a "
        f"new one with `{PROG} key generate` (or set {ENV_KEY}); to try it offline: "
        f"{PROG} {command} --demo"
    )
