"""One conversation's own settings: its system prompt, temperature and max_tokens, kept with it
in the history (and used by `ask -c`); blank means the user's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

__all__ = ["ConversationSettings", "SettingsDialog"]

MAX_OUTPUT_TOKENS = 128_000


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """What a conversation asks for itself; None: the user's default."""

    system_prompt: str
    temperature: float | None = None
    max_tokens: int | None = None


class SettingsDialog(ModalScreen[ConversationSettings | None]):
    """Edit a conversation's settings; returns them, or None when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=False),
        Binding("ctrl+s", "save", "Save", show=False),
    ]

    def __init__(self, current: ConversationSettings, defaults: ConversationSettings) -> None:
        super().__init__()
        self.current = current
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        current, defaults = self.current, self.defaults
        with Vertical(id="settings-dialog"):
            yield Label("This conversation's settings", id="settings-title")
            yield Label("System prompt", classes="settings-label")
            yield TextArea(current.system_prompt, id="settings-system", soft_wrap=True)
            with Horizontal(id="settings-numbers"):
                yield Label("Temperature", classes="settings-label")
                yield Input(
                    "" if current.temperature is None else f"{current.temperature:g}",
                    placeholder=_default(defaults.temperature),
                    id="settings-temperature",
                )
                yield Label("max_tokens", classes="settings-label")
                yield Input(
                    "" if current.max_tokens is None else str(current.max_tokens),
                    placeholder=_default(defaults.max_tokens),
                    id="settings-max-tokens",
                )
            yield Label("", id="settings-error", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Cancel", id="settings-cancel")
                yield Button("Save (ctrl+s)", id="settings-save", variant="primary")
            yield Label("Blank: your default · ctrl+s saves · Esc cancels", id="settings-help")

    def on_mount(self) -> None:
        self.query_one("#settings-system", TextArea).focus()

    @on(Button.Pressed, "#settings-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#settings-save")
    def action_save(self) -> None:
        error = self.query_one("#settings-error", Label)
        try:
            temperature = _number(
                self.query_one("#settings-temperature", Input).value, float, 0, 2, "Temperature"
            )
            max_tokens = _number(
                self.query_one("#settings-max-tokens", Input).value,
                int,
                1,
                MAX_OUTPUT_TOKENS,
                "max_tokens",
            )
        except ValueError as exc:
            error.update(str(exc))
            return
        self.dismiss(
            ConversationSettings(
                system_prompt=self.query_one("#settings-system", TextArea).text,
                temperature=temperature,
                max_tokens=max_tokens,
            )
        )


def _default(value: float | int | None) -> str:
    return f"default ({value:g})" if value is not None else "default (the router's)"


def _number(text: str, kind: type[int] | type[float], low: float, high: float, name: str) -> Any:
    """`text` as a number from `low` to `high`; None when blank."""
    text = text.strip()
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        what = "whole number" if kind is int else "number"
        raise ValueError(f"{name} must be a {what} from {low:g} to {high:g}, or blank.")
    return value
