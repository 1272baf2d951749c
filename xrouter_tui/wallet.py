"""The wallet key: kept in the OS keyring, checked, turned into an address, never shown.

The key lives in the keyring (Secret Service, Keychain, Credential Locker) under the service
`xrouter-tui`, and nowhere else: no backend, or one that keeps secrets in a plain file, is an
error, never a fallback. `XROUTER_PRIVATE_KEY` overrides the keyring, the less safe choice for
headless machines. Nothing here ever puts the key, or any part of it, into an exception message.

Keyring calls may block (a Secret Service can prompt to unlock): the app makes them in threads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from xrouter_tui.payments.signer import WalletKey

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = [
    "ENV_KEY",
    "KEYRING_SERVICE",
    "KeyringUnavailable",
    "WalletError",
    "account_from_key",
    "forget_key",
    "funding_help",
    "generate_key",
    "key_source",
    "keyring_name",
    "load_account",
    "redact",
    "store_key",
    "stored_account",
]

ENV_KEY = "XROUTER_PRIVATE_KEY"
KEYRING_SERVICE = "xrouter-tui"
# The keyring's name for the one entry this program keeps under its service.
KEYRING_ENTRY = "wallet-key"
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")

HOW_TO_FIX = (
    "Install and unlock a Secret Service (GNOME Keyring or KeePassXC; on a headless machine "
    "`gnome-keyring-daemon --unlock` in a D-Bus session), or set "
    f"{ENV_KEY} instead (less safe: the key then sits in your environment)."
)


class WalletError(ValueError):
    """The key is missing or malformed. The message never contains the key."""


class KeyringUnavailable(WalletError):
    """There is no keyring to keep the key in, or it is locked or refused the request."""


def account_from_key(text: str, *, source: str = "the key") -> WalletKey:
    """An account from a hex private key (32 bytes, `0x` optional, surrounding space ignored)."""
    candidate = text.strip()
    if not _HEX_KEY.match(candidate):
        raise WalletError(
            f"{source} is not a private key: expected 64 hex digits (32 bytes), with or without 0x."
        )
    try:
        return WalletKey.from_hex(candidate)
    except ValueError:
        # Zero, or not below the curve order.
        raise WalletError(f"{source} is not a valid secp256k1 private key.") from None


def load_account(
    env: Mapping[str, str] = os.environ, *, use_keyring: bool = True
) -> WalletKey | None:
    """The account from `XROUTER_PRIVATE_KEY`, else from the keyring; None when neither has one.

    Raises `KeyringUnavailable` when the keyring is needed and cannot be read.
    """
    value = env.get(ENV_KEY)
    if value:
        return account_from_key(value, source=ENV_KEY)
    return stored_account() if use_keyring else None


def key_source(env: Mapping[str, str] = os.environ) -> Literal["environment", "keyring"]:
    """Where `load_account` takes the key from."""
    return "environment" if env.get(ENV_KEY) else "keyring"


def keyring_name() -> str:
    """The keyring in use, in words (for messages), or raise `KeyringUnavailable`."""
    return _backend().name


def stored_account() -> WalletKey | None:
    """The account whose key is in the keyring, or None."""
    backend = _backend()
    with _keyring_errors("read the key from"):
        value = backend.get_password(KEYRING_SERVICE, KEYRING_ENTRY)
    if value is None:
        return None
    return account_from_key(value, source="the key in the keyring")


def store_key(text: str) -> WalletKey:
    """Check `text` is a private key, keep it in the keyring, and return its account."""
    account = account_from_key(text)
    backend = _backend()
    with _keyring_errors("store the key in"):
        backend.set_password(KEYRING_SERVICE, KEYRING_ENTRY, "0x" + bytes(account.key).hex())
    return account


def generate_key() -> WalletKey:
    """A new random key, kept in the keyring."""
    return store_key("0x" + WalletKey.generate().key.hex())


def forget_key() -> bool:
    """Delete the key from the keyring; False when there was none."""
    backend = _backend()
    try:
        with _keyring_errors("delete the key from"):
            backend.delete_password(KEYRING_SERVICE, KEYRING_ENTRY)
    except _NoSuchEntry:
        return False
    return True


class _NoSuchEntry(Exception):
    """The keyring has no key to delete."""


# Where a Secret Service's own errors come from, besides keyring's.
_KEYRING_PACKAGES = ("secretstorage", "jeepney", "dbus")


@contextmanager
def _keyring_errors(doing: str) -> Iterator[None]:
    """Turns a keyring's errors into `KeyringUnavailable`, in words, without the key."""
    import keyring.errors

    try:
        yield
    except keyring.errors.PasswordDeleteError:
        raise _NoSuchEntry from None
    except keyring.errors.KeyringLocked:
        raise KeyringUnavailable(
            f"Could not {doing} the keyring: it is locked. Unlock it (log in to the desktop, or "
            f"run `gnome-keyring-daemon --unlock`), or set {ENV_KEY} instead."
        ) from None
    except Exception as exc:
        package = type(exc).__module__.split(".")[0]
        if isinstance(exc, keyring.errors.KeyringError | OSError) or package in _KEYRING_PACKAGES:
            # The backend's own words may quote what it was given: name the kind only.
            raise KeyringUnavailable(
                f"Could not {doing} the keyring ({type(exc).__name__}). {HOW_TO_FIX}"
            ) from None
        raise


def _backend() -> KeyringBackend:
    """The keyring to use: one that keeps secrets safe, or `KeyringUnavailable`."""
    # Imported on first use: loading keyring takes tens of milliseconds, and a start with the
    # key in the environment (or the chat's first frame) does not need it.
    import keyring

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken PYTHON_KEYRING_BACKEND or keyringrc
        raise KeyringUnavailable(
            f"The keyring could not be loaded ({type(exc).__name__}). {HOW_TO_FIX}"
        ) from None
    backends = getattr(backend, "backends", None) or [backend]
    unsafe = [item for item in backends if _keeps_plain_secrets(item)]
    if unsafe or not backends or all(_is_empty_backend(item) for item in backends):
        raise KeyringUnavailable(
            "No keyring to keep the wallet key in"
            + (f" ({unsafe[0].name} keeps secrets in a plain file)" if unsafe else "")
            + f". {HOW_TO_FIX}"
        )
    return backend


def _is_empty_backend(backend: KeyringBackend) -> bool:
    # keyring's stand-ins when nothing better is there: one fails every call, one forgets.
    return type(backend).__module__ in ("keyring.backends.fail", "keyring.backends.null")


def _keeps_plain_secrets(backend: KeyringBackend) -> bool:
    # keyrings.alt's file backends write secrets to disk in the clear or barely encoded.
    name = type(backend).__name__
    return any(word in name for word in ("Plaintext", "Base64", "Insecure"))


def redact(text: str, secret: str) -> str:
    """`text` with every spelling of `secret` (with or without 0x, any case) replaced."""
    bare = secret.strip().lower().removeprefix("0x")
    if not bare:
        return text
    return re.sub(re.escape(bare), "[redacted]", text, flags=re.IGNORECASE)


def funding_help(address: str) -> str:
    """How to put money on `address`, in a few plain lines."""
    return (
        f"To pay for answers, send USDC on Base (chain id 8453) to:\n  {address}\n"
        "No ETH is needed: each request is paid with a signed USDC authorization, and the "
        "router pays the network fee."
    )
