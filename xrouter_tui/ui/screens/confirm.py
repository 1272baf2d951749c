"""A yes/no question before something that cannot be undone (forgetting or replacing a key)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

__all__ = ["ConfirmDialog"]


class ConfirmDialog(ModalScreen[bool]):
    """Returns True only for an explicit yes. "No" has the focus, so a stray Enter is safe."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", show=False),
        Binding("n,escape", "answer(False)", "No", show=False),
        Binding("left,shift+tab", "app.focus_previous", show=False),
        Binding("right,tab", "app.focus_next", show=False),
    ]

    def __init__(self, title: str, warning: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.warning = warning
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            # Plain text: a warning may quote a conversation's title, which is anybody's words.
            yield Label(self.title_text, id="confirm-title", markup=False)
            yield Static(self.warning, id="confirm-warning", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button("No", id="confirm-no")
                yield Button(f"{self.yes} (y)", id="confirm-yes", variant="error")
            yield Label("y yes · n or Esc no · ←→ move · Enter press", id="confirm-help")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
