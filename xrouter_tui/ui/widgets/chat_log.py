"""The message log: questions, answers streamed as Markdown, and what each answer cost."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

__all__ = ["AnswerMarkdown", "AnswerMessage", "ChatLog", "ErrorBlock", "UserMessage"]

# Deltas that arrive within one frame are written to the Markdown together: a full-speed stream
# brings hundreds per frame, and each write re-parses the answer's last block.
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


class AnswerMarkdown(Markdown):
    """The answer's text, streamed through Textual's `MarkdownStream` one frame at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[str] = []
        self._stream: MarkdownStream | None = None
        self._timer: Timer | None = None

    def feed(self, text: str) -> None:
        """Queue `text` for the next frame (cheap: called once per delta)."""
        self._pending.append(text)
        if self._timer is None:
            self._timer = self.set_timer(FRAME_SECONDS, self._flush)

    async def _flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if self._stream is None:
            self._stream = Markdown.get_stream(self)
        await self._stream.write(text)

    async def finish(self) -> None:
        """Write what is queued and wait until all of it is on screen."""
        if self._timer is not None:
            self._timer.stop()
        await self._flush()
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None


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
