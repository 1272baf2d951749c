"""Composing the prompt in the user's editor (`$VISUAL`, `$EDITOR`): the text goes out through a
private temporary file and comes back edited.

The editor is a child process: it runs without the program's own variables (the wallet key
above all), as the clipboard tool does.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from xrouter_tui.ui.clipboard import child_environment

__all__ = ["EditorError", "edit_in_editor", "editor_command"]

# What runs when neither $VISUAL nor $EDITOR names an editor: on every Unix.
DEFAULT_EDITOR = "vi"


class EditorError(Exception):
    """The editor could not run or failed; the message is one line for the user."""


def editor_command(env: Mapping[str, str]) -> list[str]:
    """The editor to run, as `$VISUAL` or `$EDITOR` spell it (words, options included)."""
    for name in ("VISUAL", "EDITOR"):
        value = env.get(name, "").strip()
        if value:
            try:
                words = shlex.split(value)
            except ValueError:
                raise EditorError(f"${name} cannot be read as a command: {value!r}") from None
            if words:
                return words
    return [DEFAULT_EDITOR]


def edit_in_editor(text: str, env: Mapping[str, str]) -> str:
    """Run the editor on `text` and return what it saved. The file is private (0600) and
    removed afterwards; raises `EditorError` when the editor is missing or fails."""
    command = editor_command(env)
    descriptor, name = tempfile.mkstemp(prefix="xrouter-prompt-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        try:
            result = subprocess.run([*command, name], env=child_environment(env), check=False)
        except FileNotFoundError:
            raise EditorError(
                f"No editor {command[0]!r} was found: set $VISUAL or $EDITOR."
            ) from None
        except OSError as exc:
            raise EditorError(f"The editor {command[0]!r} could not run: {exc.strerror}.") from None
        if result.returncode != 0:
            raise EditorError(
                f"The editor {command[0]!r} ended with status {result.returncode}: the prompt "
                "is left as it was."
            )
        edited = path.read_text(encoding="utf-8", errors="replace")
    finally:
        path.unlink(missing_ok=True)
    # Editors end a saved file with a newline; the prompt did not have it.
    return edited[:-1] if edited.endswith("\n") and not text.endswith("\n") else edited
