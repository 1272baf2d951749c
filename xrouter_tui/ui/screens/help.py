"""The help screen (F1): every key the chat answers to, with what it does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

__all__ = ["HelpScreen", "binding_rows"]


class HelpScreen(ModalScreen[None]):
    """A table of keys; Esc, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q", "app.pop_screen", "Close")]

    def __init__(self, rows: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("what it does")
        for key, description in self.rows:
            table.add_row(key, description)
        with VerticalScroll(id="help"):
            yield Label("Keys", id="help-title")
            yield Static(table)
            yield Label("Esc closes", id="help-close")


def binding_rows(bindings: Iterable[Binding]) -> list[tuple[str, str]]:
    """(keys, description) for each binding that has a description, keys shown as typed."""
    rows: list[tuple[str, str]] = []
    for binding in bindings:
        description = binding.tooltip or binding.description
        if description:
            keys = " / ".join(_key_name(key) for key in binding.key.split(","))
            rows.append((keys, description))
    return rows


def _key_name(key: str) -> str:
    names = {
        "escape": "Esc",
        "enter": "Enter",
        "up": "Up",
        "down": "Down",
        "pageup": "PageUp",
        "pagedown": "PageDown",
        "ctrl+home": "ctrl+Home",
        "ctrl+end": "ctrl+End",
        "alt+up": "alt+Up",
        "alt+down": "alt+Down",
    }
    key = key.strip()
    if key in names:
        return names[key]
    if key.startswith("f") and key[1:].isdigit():
        return key.upper()
    return key
