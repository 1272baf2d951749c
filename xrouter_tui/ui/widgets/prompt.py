"""The prompt box: Enter sends, Shift+Enter or ctrl+j starts a new line, Up recalls; a large
paste shows as one line ("[pasted 2,345 lines]") and is sent whole."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import EditResult

__all__ = ["PASTE_LINES", "PromptInput"]

# A paste of more lines than this shows collapsed: the box stays usable, the text is all sent.
PASTE_LINES = 20


class PromptInput(TextArea):
    """A multi-line prompt that sends on Enter and remembers what was sent."""

    class Submitted(Message):
        """The user sent `text` (never empty or blank)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, compact=True)
        self.placeholder = "Ask anything · Enter sends · Shift+Enter or ctrl+j for a new line"
        self._sent: list[str] = []
        # Where Up/Down browsing stands in `_sent`; None when the box holds the user's own text.
        self._recalled: int | None = None
        # Keys that are not text while a message of the log is selected (its c, b, e, r): the
        # screen's bindings get them. Any other key is typed, and leaves the selection.
        self.cursor_keys: frozenset[str] = frozenset()
        # The collapsed pastes in the box: what each placeholder stands for.
        self._pastes: dict[str, str] = {}

    def check_consume_key(self, key: str, character: str | None = None) -> bool:
        if key in self.cursor_keys:
            return False
        return super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            self._stop(event)
            self.submit()
        elif key in ("shift+enter", "ctrl+j"):
            self._stop(event)
            self.insert("\n")
        elif key == "up" and self._may_recall_older():
            self._stop(event)
            self._recall(len(self._sent) - 1 if self._recalled is None else self._recalled - 1)
        elif key == "down" and self._recalled is not None and self._on_last_row():
            self._stop(event)
            self._recall(self._recalled + 1)
        else:
            await super()._on_key(event)

    def remember(self, earlier: list[str]) -> None:
        """Add prompts of earlier runs (newest first) before this run's, for Up to recall."""
        known = set(self._sent)
        older = [text for text in reversed(earlier) if text not in known]
        self._sent[:0] = older

    @property
    def full_text(self) -> str:
        """What the box holds, each collapsed paste in full: what is sent."""
        text = self.text
        for placeholder, pasted in self._pastes.items():
            text = text.replace(placeholder, pasted)
        return text

    async def _on_paste(self, event: events.Paste) -> None:
        if event.text.count("\n") + 1 <= PASTE_LINES or self.read_only:
            await super()._on_paste(event)
            return
        event.stop()
        event.prevent_default()
        self.insert(self._collapsed(event.text))

    def _collapsed(self, text: str) -> str:
        """A placeholder for `text`, remembered until the box is cleared."""
        placeholder = f"[pasted {text.count(chr(10)) + 1:,} lines]"
        number = 1
        while placeholder in self._pastes and self._pastes[placeholder] != text:
            number += 1
            placeholder = f"[pasted {text.count(chr(10)) + 1:,} lines #{number}]"
        self._pastes[placeholder] = text
        return placeholder

    def show_text(self, text: str) -> None:
        """Put `text` in the box in place of what is there (collapsed when it is long)."""
        self._pastes.clear()
        self.load_text(text if text.count("\n") + 1 <= PASTE_LINES else self._collapsed(text))
        self.move_cursor(self.document.end)

    def clear(self) -> EditResult:
        self._pastes.clear()
        return super().clear()

    def submit(self) -> None:
        """Send what is in the box, unless it is blank."""
        text = self.full_text
        if not text.strip():
            return
        if not self._sent or self._sent[-1] != text:
            self._sent.append(text)
        self._recalled = None
        self.clear()
        self.post_message(self.Submitted(text))

    def restore(self, text: str) -> None:
        """Put `text` back in the box (a turn that failed), unless the user typed meanwhile."""
        if self.text.strip():
            return
        self.show_text(text)
        self._recalled = None

    def _may_recall_older(self) -> bool:
        if not self._sent:
            return False
        if self._recalled is None:
            return not self.text
        return self._recalled > 0 and self.cursor_location[0] == 0

    def _on_last_row(self) -> bool:
        return self.cursor_location[0] == self.document.line_count - 1

    def _recall(self, index: int) -> None:
        if index >= len(self._sent):
            self._recalled = None
            self.clear()
            return
        self._recalled = index
        self.show_text(self._sent[index])

    @staticmethod
    def _stop(event: events.Key) -> None:
        event.stop()
        event.prevent_default()
