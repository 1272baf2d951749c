"""Whether a stream is a terminal: what the command line and the key commands both ask."""

from __future__ import annotations

from typing import IO

__all__ = ["is_terminal"]


def is_terminal(stream: IO[str]) -> bool:
    """True when `stream` is a terminal; False for pipes, files, and closed or fake streams."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
