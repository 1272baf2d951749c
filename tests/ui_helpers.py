"""Building the chat app against the local router, the way `xrouter-tui --demo` does, and
the waits and switches that make its screens the same in every run (snapshots, screenshots)."""

from __future__ import annotations

import hashlib
import html
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from textual.app import App
from textual.command import CommandPalette
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

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


@dataclass
class KeylessChat:
    """The chat as a start without a key in the environment meets it, and its local router."""

    app: ChatApp
    router: RunningDevServer


def make_keyless_app(url: str, *, env: Mapping[str, str] | None = None) -> ChatApp:
    """The chat app as `xrouter-tui` starts it with no key in the environment: not the demo,
    paying the router at `url` on Base Sepolia with whatever the (test's) keyring holds."""
    return ChatApp(load_settings(), RouterSetup(url, None, (BASE_SEPOLIA,)), env=env)


@contextmanager
def keyless_chat(
    config: DevServerConfig | None = None, *, env: Mapping[str, str] | None = None
) -> Iterator[KeylessChat]:
    """A local router and the keyless chat app pointed at it; the router stops with the block."""
    with start_dev_server(config or DevServerConfig(network=BASE_SEPOLIA.v1_name)) as router:
        yield KeylessChat(make_keyless_app(router.url, env=env), router)


class Posted:
    """Every message the app handled, with helpers to wait for one kind."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Message]:
        # A message is seen once per node it bubbles through: keep each one once.
        unique: dict[int, Message] = {}
        for message in self.messages:
            if isinstance(message, kind):
                unique[id(message)] = message
        return list(unique.values())


async def wait_for(
    pilot: Pilot, condition: Callable[[], bool], what: str, limit: float = 20
) -> None:
    """Let the app run until `condition` holds (a deadline, not a measurement)."""
    for _ in range(int(limit / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def run_command(pilot: Pilot, title: str) -> None:
    """Run a command palette entry by typing its title and pressing Enter at once, as a user
    who knows the title does (the palette runs the entry listed for the text as typed)."""
    app = pilot.app
    titles = [command.title.lower() for command in app.get_system_commands(app.screen)]
    assert title.lower() in titles, f"{title!r} is not in the palette now: {titles}"
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "the palette")
    await pilot.press(*title)
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(pilot.app.screen, CommandPalette), "it to close")
    await pilot.pause()


def stop_blinking(app: App) -> None:
    """Show every text cursor steadily: a blinking one is drawn or not by the clock's whim.

    Call it again after a new screen (the model picker) mounts its own input.
    """
    for screen in app.screen_stack:
        for widget in [*screen.query(TextArea), *screen.query(Input)]:
            widget.cursor_blink = False


class CountingNonces:
    """Stands in for `os` in `xrouter_tui.payments.signing`: `urandom` gives the same bytes in
    every run (1st, 2nd, ... call), so the nonce, and the transaction hash the local router
    derives from it, are stable on screen. Every other attribute is the real `os`'s."""

    def __init__(self) -> None:
        self.calls = 0

    def urandom(self, size: int) -> bytes:
        self.calls += 1
        # Distinct per call: the router refuses a nonce it has seen, as a replay.
        return hashlib.shake_256(f"xrouter-tui test nonce {self.calls}".encode()).digest(size)

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)


def visible_text(app: App) -> str:
    """The words on screen now, read from a screenshot: what a user sees, not what a widget
    holds. Runs of one style stay whole, so a phrase in one colour can be searched for."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", " ", svg)).replace("\N{NO-BREAK SPACE}", " ")
