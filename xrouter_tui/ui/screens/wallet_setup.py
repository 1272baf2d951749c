"""The wallet setup: import or generate the key that pays for answers, then where to fund it.

Shown at a first start with no key, and by the palette's "Replace key". The key is typed into a
masked box and goes to the keyring in a thread (a Secret Service may block, or ask to be
unlocked); only its address is ever shown.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, ContentSwitcher, Input, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from xrouter_tui.payments import WalletKey, format_usd
from xrouter_tui.payments.networks import atomic_to_usd
from xrouter_tui.wallet import (
    WalletError,
    account_from_key,
    funding_help,
    generate_key,
    store_key,
)

if TYPE_CHECKING:
    from xrouter_tui.ui.app import ChatApp

__all__ = ["KEYRING_GROUP", "KeyInput", "WalletSetup"]

# The worker group of every keyring call in the app, here and in `WalletCommands`.
KEYRING_GROUP = "keyring"

INTRO = (
    "Each answer is paid for when you ask, in USDC, from a wallet of your own. Its private key "
    "is kept in your OS keyring, never in a file, and never shown on screen."
)
CHOOSE_HELP = "↑↓ move · Enter choose · i import · g generate · Esc chat without a wallet"
IMPORT_TEXT = (
    "Paste or type the wallet's private key: 64 hex digits, with or without 0x. "
    "It stays hidden, and goes nowhere but into the keyring."
)
AFTER_PROBLEM = (
    "Once that is fixed, choose below; or chat without a wallet for now, and come back with "
    "'Set up wallet' in the command palette (ctrl+p)."
)
BUSY = "Opening the keyring… (it may ask you to unlock it)"
# Set apart from the rest of the text: the one thing the user has to copy somewhere else.
ADDRESS_STYLE = "wallet-setup--address"
# How often the new address's balance is read again while it waits to be funded.
BALANCE_EVERY = 5.0


class KeyInput(Input):
    """A masked box for a private key that never gives the key back: no copy, no cut."""

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, password=True, id=id)

    def action_copy(self) -> None:
        """Nothing: a key copied out of here would sit in the clipboard."""

    def action_cut(self) -> None:
        """Nothing, for the same reason as copy."""


class WalletSetup(ModalScreen[None]):
    """Import a key or generate one; then the address to fund. The chat's wallet changes as
    soon as the key is in the keyring; Esc leaves at any point, without a wallet if none was
    stored."""

    COMPONENT_CLASSES = {ADDRESS_STYLE}

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("i", "choose('import')", "Import", show=False),
        Binding("g", "choose('generate')", "Generate", show=False),
        Binding("c", "copy_address", "Copy address", show=False),
    ]

    # Not on_mount: the steps' own widgets may not be mounted yet when the screen is.
    AUTO_FOCUS = "#setup-options"

    app: ChatApp

    def __init__(self, *, problem: str = "", replacing: str = "") -> None:
        """`problem`: why the keyring could not be read, to say first. `replacing`: the
        address whose key the new one replaces (the user has agreed to lose it)."""
        super().__init__()
        self.problem = problem
        self.replacing = replacing
        self.address = ""
        self._view = "setup-choose"

    def compose(self) -> ComposeResult:
        title = "Replace the wallet key" if self.replacing else "Set up a wallet to pay for answers"
        with Vertical(id="setup"):
            yield from self._views(title)
            yield _hidden(Static(BUSY, id="setup-busy"))

    def _views(self, title: str) -> ComposeResult:
        with ContentSwitcher(initial="setup-choose", id="setup-views"):
            with Vertical(id="setup-choose"):
                yield Label(title, classes="setup-title")
                yield Static(INTRO, classes="setup-text")
                if self.replacing:
                    yield Static(
                        f"The key of {self.replacing} is replaced once the new one is stored.",
                        classes="setup-text",
                    )
                # Plain text: a keyring's error message is not markup.
                problem = Static(
                    f"{self.problem}\n{AFTER_PROBLEM}" if self.problem else "",
                    id="setup-problem",
                    classes="setup-error",
                    markup=False,
                )
                yield problem if self.problem else _hidden(problem)
                yield OptionList(
                    Option("Import a key I have   (the input is hidden)", id="import"),
                    Option("Generate a new key", id="generate"),
                    id="setup-options",
                )
                yield Label(CHOOSE_HELP, classes="setup-help")
            with Vertical(id="setup-import"):
                yield Label("Import a key I have", classes="setup-title")
                yield Static(IMPORT_TEXT, classes="setup-text")
                yield KeyInput(placeholder="private key (hidden as you type)", id="setup-key")
                yield _hidden(Static("", id="setup-key-error", classes="setup-error", markup=False))
                yield Label("Enter store it · Esc back", classes="setup-help")
            with Vertical(id="setup-ready"):
                yield Label("Your wallet is ready: fund it", classes="setup-title")
                yield Static("", id="setup-kept", classes="setup-text")
                yield Static("", id="setup-funding", classes="setup-text")
                yield Static("", id="setup-balance", classes="setup-text", markup=False)
                with Horizontal(id="setup-buttons"):
                    yield Button("Start chatting", id="setup-start", variant="primary")
                    yield Button("Copy address (c)", id="setup-copy")
                yield Label("Enter start chatting · c copy the address", classes="setup-help")

    @property
    def view(self) -> str:
        """Which step is on screen: setup-choose, setup-import or setup-ready."""
        return self._view

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose":
            return self.view == "setup-choose"
        if action == "copy_address":
            return self.view == "setup-ready"
        return True

    # -- choosing ------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#setup-options")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.action_choose(event.option.id or "")

    def action_choose(self, choice: str) -> None:
        """Go on with `choice`: "import" opens the masked box, "generate" makes a key."""
        if self.is_busy:
            return
        if choice == "import":
            self._switch("setup-import")
            self.query_one(KeyInput).focus()
        elif choice == "generate":
            self._set_busy(True)
            self._generate()

    def action_back(self) -> None:
        """Esc: from the key box back to the choices; from anywhere else, out of setup."""
        if self.view == "setup-import":
            self.query_one(KeyInput).clear()
            self._show_key_error("")
            self._switch("setup-choose")
            self.query_one(OptionList).focus()
            return
        self.dismiss(None)

    # -- the keyring (threads) -----------------------------------------------------------

    @property
    def is_busy(self) -> bool:
        """True while a key is being stored."""
        return any(worker.is_running for worker in self.workers if worker.group == KEYRING_GROUP)

    @on(KeyInput.Submitted, "#setup-key")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.is_busy:
            return
        key_input = self.query_one(KeyInput)
        text = key_input.value
        # Out of the widget at once: nothing on screen, and nothing to undo back into it.
        key_input.clear()
        self._show_key_error("")
        self._set_busy(True)
        self._store(text)

    # A fixed description: by default Textual describes a worker with its arguments' repr,
    # and logs it.
    @work(thread=True, group=KEYRING_GROUP, exit_on_error=False, description="store the key")
    def _store(self, text: str) -> None:
        try:
            account_from_key(text, source="That")
            account = store_key(text)
        except WalletError as exc:  # its message never holds the key
            self.app.call_from_thread(self._import_failed, str(exc))
            return
        self.app.call_from_thread(self._stored, account, False)

    @work(thread=True, group=KEYRING_GROUP, exit_on_error=False, description="generate a key")
    def _generate(self) -> None:
        try:
            account = generate_key()
        except WalletError as exc:
            self.app.call_from_thread(self._generate_failed, str(exc))
            return
        self.app.call_from_thread(self._stored, account, True)

    @on(Worker.StateChanged)
    def _keyring_failed(self, event: Worker.StateChanged) -> None:
        # What no except clause above expected: said by its kind only, which cannot hold a key.
        if event.worker.group != KEYRING_GROUP or event.state is not WorkerState.ERROR:
            return
        self._set_busy(False)
        message = f"The keyring failed ({type(event.worker.error).__name__}); nothing was stored."
        if self.view == "setup-import":
            self._show_key_error(message)
        else:
            self._show_problem(message)

    def _import_failed(self, message: str) -> None:
        if not self.is_attached:  # left with Esc meanwhile
            return
        self._set_busy(False)
        self._show_key_error(f"{message[:1].upper()}{message[1:]} Nothing was stored.")
        self.query_one(KeyInput).focus()

    def _generate_failed(self, message: str) -> None:
        if not self.is_attached:
            return
        self._set_busy(False)
        self._show_problem(message)

    def _stored(self, account: WalletKey, generated: bool) -> None:
        # First, even if the user left with Esc meanwhile: the keyring holds this key now.
        self.app.use_account(account)
        if not self.is_attached:
            return
        self._set_busy(False)
        self.address = account.address
        if generated:
            kept = (
                "A new key is in your keyring, and nowhere else: `xrouter-tui key export` "
                "shows it, so you can keep a copy somewhere safe."
            )
        else:
            kept = "The key is in your keyring now."
        self.query_one("#setup-kept", Static).update(kept)
        funding = Text(funding_help(account.address))
        funding.highlight_words([account.address], self.get_component_rich_style(ADDRESS_STYLE))
        self.query_one("#setup-funding", Static).update(funding)
        self._switch("setup-ready")
        self.query_one("#setup-start", Button).focus()
        self._watch_balance()

    @work(exclusive=True, group="setup-balance", exit_on_error=False)
    async def _watch_balance(self) -> None:
        """The new address's balance, read from the chain again every few seconds until USDC
        arrives (or the screen closes): the user sees the funding land."""
        shown = self.query_one("#setup-balance", Static)
        while self.is_attached:
            chain = self.app.chain
            balance = await chain.refresh(self.address) if chain is not None else None
            if balance is None:
                shown.update("Balance: reading the chain…")
            elif balance.atomic is None:
                shown.update("Balance: the chain cannot be read just now; trying again.")
            else:
                usd = atomic_to_usd(balance.atomic, balance.network.usdc.decimals)
                where = balance.network.label
                if balance.atomic > 0:
                    shown.update(f"Balance: {format_usd(usd)} USDC on {where}. Ready to pay.")
                    return
                shown.update(f"Balance: {format_usd(usd)} on {where}; waiting for USDC to arrive…")
            await asyncio.sleep(BALANCE_EVERY)

    # -- the funded address --------------------------------------------------------------

    @on(Button.Pressed, "#setup-start")
    def _start_chatting(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#setup-copy")
    async def _copy_pressed(self) -> None:
        await self.action_copy_address()

    async def action_copy_address(self) -> None:
        """Copy the new wallet's address, to paste where the USDC is sent from."""
        if self.address:
            how = await self.app.copy_text(self.address)
            self.notify(f"Copied {self.address} {how}.", title="Wallet address", timeout=4)

    # -- drawing -------------------------------------------------------------------------

    def _switch(self, view: str) -> None:
        self._view = view
        self.query_one(ContentSwitcher).current = view

    def _set_busy(self, busy: bool) -> None:
        self.query_one("#setup-busy").display = busy
        self.query_one(KeyInput).disabled = busy

    def _show_key_error(self, message: str) -> None:
        line = self.query_one("#setup-key-error", Static)
        line.update(message)
        line.display = bool(message)

    def _show_problem(self, message: str) -> None:
        line = self.query_one("#setup-problem", Static)
        line.update(message)
        line.display = bool(message)


def _hidden(widget: Static) -> Static:
    """`widget`, not shown until there is something to say in it."""
    widget.display = False
    return widget
