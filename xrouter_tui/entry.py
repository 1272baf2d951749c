"""The program's entry point (the `xrouter-tui` script, `python -m xrouter_tui`).

Loading the command line takes most of a second (the signer, httpx, the store); a Ctrl+C in that
time would print a long traceback of half-done imports. This module imports nothing heavy
itself, so that it can catch that, and end as an interrupted command does.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_INTERRUPTED = 130  # as cli.EXIT_INTERRUPTED, which cannot be imported before the catch


def main() -> int:
    """Run the command line with the process's arguments and streams; its exit code."""
    try:
        from xrouter_tui.cli import main as run

        return run()
    except KeyboardInterrupt:
        # Raised before cli.main's own handler runs (while importing, or parsing arguments).
        print("xrouter-tui: interrupted.", file=sys.stderr, flush=True)
        return _INTERRUPTED
