"""The message cursor: one question or answer of the log selected by keyboard (alt+Up/alt+Down),
highlighted and scrolled into view, for the keys that act on it (copy, code, edit, regenerate).

The log's message widgets stand for the conversation's messages one for one, the newest last;
a resumed conversation's oldest may not be mounted yet, so widgets are matched from the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.widget import Widget

from xrouter_tui.chat import ChatMessage

__all__ = ["SELECTED", "MessageCursor"]

# The class a selected message carries (the app's CSS draws it).
SELECTED = "-selected"


class MessageCursor:
    """Which message is selected, and which of its code blocks `b` copies next."""

    def __init__(self) -> None:
        self.widget: Widget | None = None
        # The next code block `b` copies, of the selected message.
        self.code_index = 0

    @property
    def active(self) -> bool:
        return self.widget is not None and self.widget.is_attached

    def move(self, shown: Sequence[Widget], step: int) -> Widget | None:
        """Select the message `step` places from the selected one (from below the newest when
        none is): -1 is the one above. Returns the selected widget."""
        if not shown:
            self.clear()
            return None
        if self.active and self.widget in shown:
            index = shown.index(self.widget) + step
        else:
            index = len(shown) + step if step < 0 else len(shown) - 1
        self.select(shown[max(0, min(len(shown) - 1, index))])
        return self.widget

    def select(self, widget: Widget) -> None:
        if widget is not self.widget:
            self.clear()
            self.widget = widget
            self.code_index = 0
        widget.add_class(SELECTED)
        widget.scroll_visible(animate=False)

    def clear(self) -> None:
        if self.widget is not None:
            self.widget.remove_class(SELECTED)
        self.widget = None
        self.code_index = 0

    def message(
        self, shown: Sequence[Widget], messages: Sequence[ChatMessage]
    ) -> tuple[int, ChatMessage] | None:
        """The selected message and its index in `messages` (matched from the newest)."""
        if not self.active or self.widget not in shown:
            return None
        index = len(messages) - len(shown) + list(shown).index(self.widget)
        if not 0 <= index < len(messages):
            return None
        return index, messages[index]
