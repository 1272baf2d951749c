"""What every command shares about talking to the user: its streams and environment, the exit
codes, and the one-line error.

Exit codes (a contract scripts rely on): 0 done; 1 request or stream failed; 2 usage or
configuration error; 3 payment refused by the spending policy (nothing signed); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from xrouter_tui.safe_text import one_line

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "PROG",
    "Console",
    "silence_stdout",
]

PROG = "xrouter-tui"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Console:
    """Where a command reads and writes, and the environment it runs in (a test passes its
    own)."""

    env: Mapping[str, str]
    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]

    def error(self, message: str) -> None:
        """One error line on stderr. Many quote a router (its error body, a model id): on one
        line, with nothing a terminal would obey."""
        print(f"{PROG}: {one_line(message)}", file=self.stderr, flush=True)


def silence_stdout(stdout: IO[str] | None = None) -> None:
    """The reader of stdout went away: point it at /dev/null. Python flushes stdout at exit, and
    with the pipe gone that would print a traceback. A stream of the caller's own (a test's) is
    left alone: nothing flushes it at exit."""
    if stdout is not None and stdout is not sys.stdout:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
