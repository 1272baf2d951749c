"""What `xrouter-tui key …` does: put the wallet key into the OS keyring, show its address,
export, forget.

The key is read from a hidden prompt on a terminal, or from stdin otherwise, and never from
the command line, where other users and shell history would see it. It is printed by
`key export` alone, on a terminal, after the user typed a confirmation.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO

from xrouter_tui.commands.terminal import is_terminal
from xrouter_tui.payments import WalletKey
from xrouter_tui.wallet import (
    ENV_KEY,
    WalletError,
    account_from_key,
    forget_key,
    funding_help,
    generate_key,
    keyring_name,
    store_key,
    stored_account,
)

__all__ = ["KeyIO", "run_key_command"]

EXPORT_WORD = "export"


@dataclass(slots=True)
class KeyIO:
    """Where a key command talks to the user, and how it reads what must stay hidden."""

    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]
    env: Mapping[str, str]
    read_hidden: Callable[[str], str] = getpass.getpass

    def interactive(self) -> bool:
        """Whether input and prompts are on a terminal, so that a dialogue can take place."""
        return is_terminal(self.stdin) and is_terminal(self.stderr)

    def say(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)

    def ask(self, question: str) -> str:
        """A line typed at the terminal in answer to `question` ('' at end of input)."""
        self.stderr.write(question)
        self.stderr.flush()
        return self.stdin.readline().strip()


class KeyCommandError(WalletError):
    """A key command refused or could not do what was asked (a plain sentence)."""


def run_key_command(action: str, io: KeyIO, *, assume_yes: bool = False) -> None:
    """Do `action` (import, generate, show, export, delete); refusals raise `WalletError`."""
    {
        "import": _import,
        "generate": _generate,
        "show": _show,
        "export": _export,
        "delete": _delete,
    }[action](io, assume_yes)


def _import(io: KeyIO, assume_yes: bool) -> None:
    if io.interactive():
        text = io.read_hidden("Private key (hex; the input is hidden): ")
    else:
        text = io.stdin.read()
    account = account_from_key(text, source="the input")
    _confirm_replacing(io, account, assume_yes)
    store_key(text)
    print(account.address, file=io.stdout, flush=True)
    io.say(f"The key of {account.address} is now in the keyring ({keyring_name()}).")
    _warn_if_overridden(io)


def _generate(io: KeyIO, assume_yes: bool) -> None:
    _confirm_replacing(io, None, assume_yes)
    account = generate_key()
    print(account.address, file=io.stdout, flush=True)
    io.say(f"A new key is in the keyring ({keyring_name()}).\n{funding_help(account.address)}")
    _warn_if_overridden(io)


def _show(io: KeyIO, _assume_yes: bool) -> None:
    value = io.env.get(ENV_KEY)
    if value:
        account = account_from_key(value, source=ENV_KEY)
        print(account.address, file=io.stdout, flush=True)
        io.say(f"(from {ENV_KEY}, which overrides the keyring)")
        return
    print(_stored_or_explain().address, file=io.stdout, flush=True)


def _export(io: KeyIO, _assume_yes: bool) -> None:
    if not (io.interactive() and is_terminal(io.stdout)):
        raise KeyCommandError(
            "key export prints the key only on a terminal, after you confirm; it never "
            "writes it to a pipe or a file."
        )
    account = _stored_or_explain()
    answer = io.ask(
        f"This shows the private key of {account.address}. Anyone who sees it can spend "
        f"the wallet's money. Type {EXPORT_WORD!r} to show it: "
    )
    if answer != EXPORT_WORD:
        raise KeyCommandError("Not confirmed: the key was not shown.")
    print("0x" + bytes(account.key).hex(), file=io.stdout, flush=True)


def _delete(io: KeyIO, assume_yes: bool) -> None:
    account = stored_account()
    if account is None:
        io.say("There is no key in the keyring; nothing to delete.")
        return
    if not assume_yes:
        _confirm(
            io,
            f"Forget the key of {account.address}? Its money stays on chain, but only a copy "
            "of the key can spend it.",
        )
    forget_key()
    io.say(f"The key of {account.address} is gone from the keyring.")
    _warn_if_overridden(io)


def _confirm_replacing(io: KeyIO, new: WalletKey | None, assume_yes: bool) -> None:
    """Replacing a stored key loses it unless the user has a copy: ask first."""
    old = stored_account()
    if old is None or (new is not None and new.address == old.address) or assume_yes:
        return
    _confirm(
        io,
        f"The keyring already holds the key of {old.address}. Replacing it loses that "
        "wallet unless you have a copy of its key (see `xrouter-tui key export`).",
    )


def _confirm(io: KeyIO, warning: str) -> None:
    if not io.interactive():
        raise KeyCommandError(f"{warning} Add --yes to go ahead.")
    if io.ask(f"{warning} Go ahead? [y/N] ").lower() not in ("y", "yes"):
        raise KeyCommandError("Not confirmed: nothing changed.")


def _stored_or_explain() -> WalletKey:
    account = stored_account()
    if account is None:
        raise KeyCommandError(
            "There is no key in the keyring. Store yours with `xrouter-tui key import`, or make "
            "a new one with `xrouter-tui key generate`."
        )
    return account


def _warn_if_overridden(io: KeyIO) -> None:
    if io.env.get(ENV_KEY):
        io.say(f"Note: {ENV_KEY} is set, and it wins over the keyring until you unset it.")
