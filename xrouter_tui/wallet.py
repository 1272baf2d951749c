"""The wallet key: read it, check it, derive the address, and keep it out of every message.

The key comes from `XROUTER_PRIVATE_KEY` (the keyring comes with the key commands). Nothing here
ever puts the key, or any part of it, into an exception message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["ENV_KEY", "WalletError", "account_from_key", "load_account", "redact"]

ENV_KEY = "XROUTER_PRIVATE_KEY"
_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class WalletError(ValueError):
    """The key is missing or malformed. The message never contains the key."""


def account_from_key(text: str, *, source: str = "the key") -> LocalAccount:
    """An account from a hex private key (32 bytes, `0x` optional, surrounding space ignored)."""
    candidate = text.strip()
    if not _HEX_KEY.match(candidate):
        raise WalletError(
            f"{source} is not a private key: expected 64 hex digits (32 bytes), with or without 0x."
        )
    try:
        return Account.from_key(candidate if candidate.startswith("0x") else "0x" + candidate)
    except (ValueError, TypeError):
        # eth-keys refuses zero and keys beyond the curve order; its message may quote the key.
        raise WalletError(f"{source} is not a valid secp256k1 private key.") from None


def load_account(env: Mapping[str, str] = os.environ) -> LocalAccount | None:
    """The account from `XROUTER_PRIVATE_KEY`, or None when it is not set."""
    value = env.get(ENV_KEY)
    if not value:
        return None
    return account_from_key(value, source=ENV_KEY)


def redact(text: str, secret: str) -> str:
    """`text` with every spelling of `secret` (with or without 0x, any case) replaced."""
    bare = secret.strip().lower().removeprefix("0x")
    if not bare:
        return text
    return re.sub(re.escape(bare), "[redacted]", text, flags=re.IGNORECASE)
