"""Parsing JSON that a router, an RPC endpoint or a proxy client sent: never a crash.

Importing eth-account (it pulls in py_ecc; the local router and the tests import it, the
program's own signer does not) raises the interpreter's recursion limit to 100,000, so the C
JSON parser runs off the stack on a document nested 100,000 deep and the process dies (exit
139) instead of raising RecursionError. `loads` brings the limit back to a depth the stack can
hold before every parse, whatever was imported before, and turns a document too deep into the
ValueError every caller already handles for bad JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["SANE_RECURSION_LIMIT", "loads", "restore_recursion_limit"]

# Python's own default: deep enough for any document a router has reason to send.
SANE_RECURSION_LIMIT = 1000


def restore_recursion_limit() -> None:
    """Undo a raised recursion limit (see the module's docstring)."""
    if sys.getrecursionlimit() > SANE_RECURSION_LIMIT:
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)


def loads(data: bytes | bytearray | str) -> Any:
    """`json.loads`, raising ValueError for a document nested too deeply as for bad JSON."""
    restore_recursion_limit()
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("the JSON document is nested too deeply") from None
