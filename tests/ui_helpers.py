"""Building the chat app against the local router, the way `xrouter-tui --demo` does."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from xrouter_tui.config import Settings, load_settings
from xrouter_tui.devserver import DevServerConfig, RunningDevServer, start_dev_server
from xrouter_tui.payments import BASE_SEPOLIA
from xrouter_tui.ui import ChatApp, RouterSetup

# A fixed test-only key, so the wallet shown on screen is the same in every run.
TEST_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@dataclass
class DemoChat:
    app: ChatApp
    router: RunningDevServer
    account: LocalAccount


def make_app(
    url: str,
    account: LocalAccount | None = None,
    *,
    settings: Settings | None = None,
    model: str | None = None,
    demo: bool = True,
) -> ChatApp:
    """The chat app paying the router at `url` on Base Sepolia, with the settings on disk."""
    account = account or Account.from_key(TEST_KEY)
    setup = RouterSetup(url, account, (BASE_SEPOLIA,), demo=demo)
    return ChatApp(settings or load_settings(), setup, model=model)


@contextmanager
def demo_chat(config: DevServerConfig | None = None, **app_options) -> Iterator[DemoChat]:
    """A local router and the chat app pointed at it; the router stops with the block."""
    config = config or DevServerConfig(network=BASE_SEPOLIA.v1_name)
    account = Account.from_key(TEST_KEY)
    with start_dev_server(config) as router:
        yield DemoChat(make_app(router.url, account, **app_options), router, account)
