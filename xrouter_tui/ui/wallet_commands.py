"""The wallet in the app: the keyring read at start, and the palette's wallet commands.

Every keyring call runs in a thread worker: a Secret Service may block, or ask to be unlocked,
and the screen must keep drawing meanwhile. Results come back through `call_from_thread`; a
failure nobody expected is turned into words by `ChatApp` from the worker's state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from textual.app import SystemCommand

from xrouter_tui.payments import WalletKey
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.screens.wallet_setup import KEYRING_GROUP, WalletSetup
from xrouter_tui.ui.widgets.status_bar import StatusBar
from xrouter_tui.wallet import (
    ENV_KEY,
    KeyringUnavailable,
    WalletError,
    forget_key,
    key_source,
    stored_account,
)

if TYPE_CHECKING:
    from xrouter_tui.ui.app import ChatApp

__all__ = ["KEYRING_GROUP", "WalletCommands"]

EXPORT_HINT = "`xrouter-tui key export` shows it"


class WalletCommands:
    """Opens the keyring at start; runs "Show wallet address", "Replace key", "Forget key"."""

    def __init__(self, app: ChatApp) -> None:
        self.app = app

    def commands(self) -> Iterator[SystemCommand]:
        """The palette's wallet entries ("Set up wallet" stands for "Replace key" while the
        chat has no wallet: there is nothing to replace)."""
        yield SystemCommand(
            "Show wallet address",
            "Show the address that pays for answers, and copy it",
            self.show_address,
        )
        if self.app.router.account is None:
            title, help_text = "Set up wallet", "Import or generate the key that pays for answers"
        else:
            title, help_text = "Replace key", "Import or generate another wallet key (asks first)"
        yield SystemCommand(title, help_text, self.replace_key)
        yield SystemCommand(
            "Forget key", "Delete the wallet key from the keyring (asks first)", self.forget_key
        )

    # -- at start ------------------------------------------------------------------------

    def open_keyring(self) -> None:
        """Take the wallet from the keyring; with none, or no keyring, open the setup."""
        self._status().opening_keyring = True
        self._in_thread(self._read_at_start, "read the key at start")

    def _read_at_start(self) -> None:
        try:
            account = stored_account()
        except WalletError as exc:  # no keyring, a locked one, or a damaged entry
            self.app.call_from_thread(self._opened, None, str(exc))
            return
        self.app.call_from_thread(self._opened, account, "")

    def _opened(self, account: WalletKey | None, problem: str) -> None:
        self._status().opening_keyring = False
        if account is not None:
            self.app.use_account(account)
        else:
            self._open_setup(problem=problem)

    def failed(self, error: BaseException | None) -> None:
        """A keyring call failed in a way nobody expected: say so by its kind (never its
        words, which might quote what the keyring was given)."""
        self._status().opening_keyring = False
        self.app.notify(
            f"The keyring failed ({type(error).__name__}); the wallet did not change.",
            title="Keyring",
            severity="error",
        )

    # -- the palette ---------------------------------------------------------------------

    async def show_address(self) -> None:
        """Say which address pays for answers, and copy it."""
        app = self.app
        address = app.router.address
        if app.router.demo:
            app.notify(
                f"The demo pays from a throwaway wallet, {address}, on a test network. "
                "Your keyring is not touched.",
                title="Demo wallet",
            )
            return
        if not address:
            app.notify(
                "No wallet: answers cannot be paid. 'Set up wallet' in the command palette "
                "(ctrl+p) imports or generates a key.",
                title="Wallet",
                severity="warning",
            )
            return
        how = await app.copy_text(address)
        source = (
            f"\nIt comes from {ENV_KEY}, which overrides the keyring."
            if key_source(app.env) == "environment"
            else ""
        )
        app.notify(f"{address}\nCopied {how}.{source}", title="Wallet address", timeout=8)

    def replace_key(self) -> None:
        """Open the setup to import or generate a key, after a warning if one would be lost."""
        if self._refused("replace"):
            return
        if any(isinstance(screen, WalletSetup) for screen in self.app.screen_stack):
            return
        self._in_thread(self._read_before_replacing, "read the key before replacing it")

    def _read_before_replacing(self) -> None:
        try:
            old = stored_account()
        except KeyringUnavailable as exc:
            self.app.call_from_thread(self._open_setup, str(exc))
            return
        except WalletError:
            old = None  # a damaged entry: there is no wallet to lose
        self.app.call_from_thread(self._confirm_replacing, old)

    def _open_setup(self, problem: str = "", replacing: str = "") -> None:
        # One at a time: a slow keyring at start may answer after the palette opened one.
        if not any(isinstance(screen, WalletSetup) for screen in self.app.screen_stack):
            self.app.push_screen(WalletSetup(problem=problem, replacing=replacing))

    def _confirm_replacing(self, old: WalletKey | None) -> None:
        if old is None:
            self._open_setup()
            return
        address = old.address

        def answered(yes: bool | None) -> None:
            if yes:
                self._open_setup(replacing=address)

        self.app.push_screen(
            ConfirmDialog(
                "Replace the wallet key?",
                f"The keyring holds the key of {address}. Replacing it loses that wallet, and "
                f"the money on it, unless you have a copy of its key ({EXPORT_HINT}).",
                yes="Replace it",
            ),
            answered,
        )

    def forget_key(self) -> None:
        """Delete the key from the keyring, after a confirmation; the chat then has no wallet."""
        if self._refused("forget"):
            return
        self._in_thread(self._read_before_forgetting, "read the key before forgetting it")

    def _read_before_forgetting(self) -> None:
        try:
            account = stored_account()
        except KeyringUnavailable as exc:
            self.app.call_from_thread(self._say_error, str(exc))
            return
        except WalletError:
            self.app.call_from_thread(self._confirm_forgetting, "")  # a damaged entry
            return
        if account is None:
            self.app.call_from_thread(
                self.app.notify,
                "There is no key in the keyring: nothing to forget.",
                title="Wallet",
            )
            return
        self.app.call_from_thread(self._confirm_forgetting, account.address)

    def _confirm_forgetting(self, address: str) -> None:
        if address:
            warning = (
                f"Forget the key of {address}? Its money stays on chain, but only a copy of the "
                f"key can spend it ({EXPORT_HINT}). The chat then has no wallet."
            )
        else:
            warning = "The keyring holds an entry that is not a valid key. Forget it?"

        def answered(yes: bool | None) -> None:
            if yes:
                self._in_thread(lambda: self._forget(address), "forget the key")

        self.app.push_screen(
            ConfirmDialog("Forget the wallet key?", warning, yes="Forget it"), answered
        )

    def _forget(self, address: str) -> None:
        try:
            forget_key()
        except WalletError as exc:
            self.app.call_from_thread(self._say_error, str(exc))
            return
        self.app.call_from_thread(self._forgotten, address)

    def _forgotten(self, address: str) -> None:
        self.app.use_account(None)
        what = f"The key of {address}" if address else "The entry"
        self.app.notify(
            f"{what} is gone from the keyring. The chat has no wallet now: 'Set up wallet' in "
            "the command palette (ctrl+p) imports or generates one.",
            title="Wallet",
        )

    # -- helpers -------------------------------------------------------------------------

    def _refused(self, doing: str) -> bool:
        """Whether `doing` makes no sense here (the demo, or a key from the environment),
        said to the user."""
        app = self.app
        if app.router.demo:
            message = (
                f"The demo pays from a throwaway wallet: there is no key to {doing}, and your "
                "keyring is not touched."
            )
        elif key_source(app.env) == "environment":
            message = (
                f"{ENV_KEY} is set and overrides the keyring, so there is nothing to {doing} "
                f"here. Unset it to use the keyring (`xrouter-tui key …` manages the key there)."
            )
        else:
            return False
        app.notify(message, title="Wallet", severity="warning")
        return True

    def _say_error(self, message: str) -> None:
        self.app.notify(message, title="Keyring", severity="error", timeout=10)

    def _in_thread(self, work: Callable[[], None], description: str) -> None:
        self.app.run_worker(
            work,
            thread=True,
            group=KEYRING_GROUP,
            description=description,
            exit_on_error=False,
        )

    def _status(self) -> StatusBar:
        return self.app.chat.query_one(StatusBar)
