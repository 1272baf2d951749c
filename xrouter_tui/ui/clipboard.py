"""Copying to the clipboard: the terminal's OSC 52 and, where one is installed, the system's tool.

OSC 52 alone silently does nothing in some terminals and over some multiplexers, so a system
clipboard tool is used as well when one is on the PATH.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Mapping

__all__ = [
    "child_environment",
    "clipboard_command",
    "code_blocks",
    "copy_with_system_tool",
    "last_code_block",
]

# The program's own variables: the wallet key, the proxy's token and the rest. A clipboard tool
# needs none of them, and what a child process is given it may log or pass on.
_OWN_PREFIX = "XROUTER_"


def clipboard_command(env: Mapping[str, str] = os.environ) -> list[str] | None:
    """The system clipboard tool to run for this desktop, or None when there is none."""
    candidates: list[list[str]] = []
    if sys.platform == "darwin":
        candidates.append(["pbcopy"])
    if env.get("WAYLAND_DISPLAY"):
        candidates.append(["wl-copy"])
    if env.get("DISPLAY"):
        candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    # Windows, and WSL where Windows' own tool is reachable.
    candidates.append(["clip.exe"])
    for command in candidates:
        if shutil.which(command[0]):
            return command
    return None


def child_environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`env` without the program's own variables (`XROUTER_PRIVATE_KEY` above all): what a
    child process such as a clipboard tool is given."""
    return {name: value for name, value in env.items() if not name.startswith(_OWN_PREFIX)}


async def copy_with_system_tool(
    text: str, command: list[str] | None, env: Mapping[str, str] = os.environ
) -> bool:
    """Give `text` to the clipboard tool, run without the program's secrets in its
    environment; True when it took it."""
    if command is None:
        return False
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=child_environment(env),
        )
        await asyncio.wait_for(process.communicate(text.encode("utf-8")), timeout=3)
    except (OSError, TimeoutError):
        return False
    return process.returncode == 0


def code_blocks(markdown: str) -> list[str]:
    """The contents of the fenced and indented code blocks in `markdown`, in order."""
    from markdown_it import MarkdownIt  # loaded when first used, not for the first frame

    tokens = MarkdownIt("commonmark").parse(markdown)
    return [token.content for token in tokens if token.type in ("fence", "code_block")]


def last_code_block(markdown: str) -> str | None:
    """The content of the last fenced or indented code block in `markdown`, if any."""
    blocks = code_blocks(markdown)
    return blocks[-1] if blocks else None
