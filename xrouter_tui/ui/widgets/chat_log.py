"""The message log: questions, answers streamed as Markdown, and what each answer cost."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Static

from xrouter_tui.ui.widgets.answer_markdown import AnswerMarkdown

__all__ = [
    "AnswerMarkdown",
    "AnswerMessage",
    "ChatLog",
    "ErrorBlock",
    "UserMessage",
]

# The model's reasoning is drawn at most once a frame.
FRAME_SECONDS = 1 / 60


class ChatLog(VerticalScroll):
    """The conversation, oldest at the top. It follows new text only while the reader is at the
    bottom: scrolling up releases it, scrolling back down or sending a message re-attaches it."""

    can_focus = False

    def on_mount(self) -> None:
        self.anchor()

    def follow(self) -> None:
        """Jump to the newest message and follow it again."""
        self.scroll_end(animate=False, immediate=True)


class UserMessage(Static):
    """A question, shown as typed (no Markdown: what was sent is what is shown)."""

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)
        self.border_title = "You"


class ErrorBlock(Static):
    """What went wrong with a turn, in plain words, under the turn."""

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)
        self.border_title = "Error"


class AnswerMessage(Vertical):
    """An answer: the model's reasoning if any, its Markdown text, a dim line of what it cost."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.border_title = model
        self.body = AnswerMarkdown()
        self.thinking = Static("", classes="reasoning", markup=False)
        self.footer = Static("", classes="answer-footer", markup=False)
        self._reasoning: list[str] = []
        self._reasoning_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield self.thinking
        yield self.body
        yield self.footer

    def add_reasoning(self, text: str) -> None:
        """Queue a piece of reasoning; it is drawn once per frame, like the answer."""
        self._reasoning.append(text)
        if self._reasoning_timer is None:
            self._reasoning_timer = self.set_timer(FRAME_SECONDS, self._draw_reasoning)

    def _draw_reasoning(self) -> None:
        self._reasoning_timer = None
        self.thinking.update("".join(self._reasoning))
        self.thinking.display = True

    def set_footer(self, text: str) -> None:
        self.footer.update(text)
        self.footer.display = bool(text)

    async def show_error(self, text: str) -> None:
        await self.mount(ErrorBlock(text))
