"""The message log: questions, answers streamed as Markdown, and what each answer cost.

Everything shown here but the user's own words may come from the router; it goes through
`safe_text` on its way to the screen (and is never read as markup), while the conversation and
the history keep it as it was received.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

from xrouter_tui.resends import MIN_SECONDS_LEFT as RESEND_MARGIN
from xrouter_tui.resends import time_left
from xrouter_tui.safe_text import TerminalFilter, one_line, terminal_text

__all__ = [
    "AnswerFooter",
    "AnswerMessage",
    "ChatLog",
    "ContextMarker",
    "ErrorBlock",
    "RetryHint",
    "ShownMessage",
    "UserMessage",
]

# The model's reasoning is drawn at most once a frame.
FRAME_SECONDS = 1 / 60
# A resumed conversation shows its newest messages at once and mounts older ones this many at
# a time as the reader scrolls up: opening 2,000 messages costs what opening 40 does.
HISTORY_BATCH = 40
# How close to the top (in lines) the reader scrolls before the next older batch is mounted:
# far enough ahead that it is there before it is reached.
LOAD_AHEAD_LINES = 40


@dataclass(frozen=True, slots=True)
class ShownMessage:
    """A message of a resumed conversation, as the log shows it."""

    role: Literal["user", "assistant"]
    text: str
    model: str = ""
    # The dim line under an answer: tokens, what was paid, the transaction.
    footer: str = ""
    # What went wrong with this turn, shown in an error block under it.
    error: str = ""


class ChatLog(VerticalScroll):
    """The conversation, oldest at the top. It follows new text only while the reader is at the
    bottom: scrolling up releases it, scrolling back down or sending a message re-attaches it."""

    can_focus = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # A resumed conversation's messages not mounted yet, oldest first.
        self._unshown: list[ShownMessage] = []
        self._loading = False
        # Where the context marker goes (messages from the newest) and what it says.
        self._marker: tuple[int, str] | None = None

    def on_mount(self) -> None:
        self.anchor()

    def follow(self) -> None:
        """Jump to the newest message and follow it again."""
        self.scroll_end(animate=False, immediate=True)

    async def show_history(self, messages: Sequence[ShownMessage]) -> None:
        """Show a resumed conversation in place of what the log holds, scrolled to its end.

        Only the newest `HISTORY_BATCH` messages are mounted now; older ones follow, a batch
        at a time, as the reader scrolls up towards them.
        """
        await self.remove_children()
        self._unshown = list(messages)
        await self.mount_all(self._take_newest())
        self.anchor()
        self.follow()

    def messages(self) -> list[Widget]:
        """The mounted questions and answers, oldest first (the newest of a conversation: its
        older ones may not be mounted yet)."""
        return [child for child in self.children if isinstance(child, UserMessage | AnswerMessage)]

    async def mark_context(self, from_end: int | None, text: str) -> None:
        """Put the one context marker above the message `from_end` places from the newest (1:
        the newest), whether it is mounted yet or not; None: no marker."""
        self._marker = (from_end, text) if from_end is not None else None
        await self._place_marker()

    async def _place_marker(self) -> None:
        await self.query(ContextMarker).remove()
        if self._marker is None:
            return
        from_end, text = self._marker
        shown = self.messages()
        if from_end <= len(shown):  # else it is placed when its batch is mounted
            await self.mount(ContextMarker(text), before=shown[-from_end])

    @property
    def unshown(self) -> int:
        """How many older messages of a resumed conversation are not mounted yet."""
        return len(self._unshown)

    def _take_newest(self) -> list[Widget]:
        batch = self._unshown[-HISTORY_BATCH:]
        del self._unshown[-HISTORY_BATCH:]
        return [_message_widget(message) for message in batch]

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._unshown and not self._loading and new <= LOAD_AHEAD_LINES:
            self._loading = True
            self.call_later(self._load_older)

    async def _load_older(self) -> None:
        try:
            widgets = self._take_newest()
            if not widgets:
                return
            before = self.virtual_size.height
            first = self.children[0] if self.children else None
            await self.mount_all(widgets, before=first)
            if self._marker is not None and self._marker[0] > len(self.messages()) - len(widgets):
                await self._place_marker()  # its message came with this batch
            # Keep the lines the reader is looking at where they were: the new batch goes above.
            self.call_after_refresh(self._keep_place, before)
        finally:
            self._loading = False

    def _keep_place(self, height_before: int) -> None:
        grown = self.virtual_size.height - height_before
        if grown > 0:
            self.scroll_to(y=self.scroll_y + grown, animate=False, immediate=True)


class ContextMarker(Static):
    """A thin line above the oldest message still sent: what is older is not."""

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)


class UserMessage(Static):
    """A question, shown as typed (no Markdown: what was sent is what is shown), without
    control characters: a saved one may have been pasted, or written by another program."""

    def __init__(self, text: str) -> None:
        super().__init__(terminal_text(text), markup=False)
        self.border_title = "You"


class ErrorBlock(Static):
    """What went wrong with a turn, in plain words, under the turn (often the router's); or,
    `neutral`, why it was not sent (the user declined the payment), which is no error."""

    def __init__(self, text: str, *, neutral: bool = False) -> None:
        super().__init__(terminal_text(text), markup=False, classes="-neutral" if neutral else "")
        self.border_title = "Not sent" if neutral else "Error"


class RetryHint(Static):
    """Under a lost answer: the key that asks for it again with the same payment, and how long
    that payment stays valid (counted down; when it expires, it says so)."""

    def __init__(self, valid_before: int) -> None:
        super().__init__("", markup=False)
        self.valid_before = valid_before
        self.expired = False

    def on_mount(self) -> None:
        self._tick()
        self.set_interval(1.0, self._tick)

    def _tick(self) -> None:
        left = self.valid_before - time.time()
        if left >= RESEND_MARGIN:
            self.update(
                f"ctrl+r  retry with the same payment (valid {time_left(left)}): it cannot be "
                "charged twice"
            )
            return
        until = time.strftime("%H:%M:%S", time.localtime(self.valid_before))
        self.update(f"The payment expired at {until}: asking again is a new payment.")
        if not self.expired:
            self.expired = True
            self.post_message(self.Expired())

    class Expired(Message):
        """The payment can no longer be sent again."""


class AnswerFooter(Static):
    """The dim money line under an answer; a click copies its transaction hash."""

    class CopyTransaction(Message):
        """The user clicked a footer that names a transaction."""

        def __init__(self, tx: str) -> None:
            super().__init__()
            self.tx = tx

    def __init__(self) -> None:
        super().__init__("", classes="answer-footer", markup=False)
        self.tx: str | None = None

    def show(self, text: str) -> None:
        """Show the money line `text` (it quotes the router: a network, a reason)."""
        text = one_line(text)
        found = _TX.search(text)
        self.tx = found.group(1) if found else None
        self.tooltip = "Click to copy the transaction hash" if self.tx else None
        self.update(text)
        self.display = bool(text)

    def on_click(self) -> None:
        if self.tx:
            self.post_message(self.CopyTransaction(self.tx))


_TX = re.compile(r"\btx (0x[0-9a-fA-F]{64})\b")


class AnswerMessage(Vertical):
    """An answer: the model's reasoning if any, its Markdown text, a dim line of what it cost."""

    def __init__(self, model: str) -> None:
        super().__init__()
        # The model's id is the router's word: plain text, never markup.
        self.border_title = Content(one_line(model))
        # Imported with the first answer: Markdown's parser and Rich's renderer take ~25 ms to
        # load, and an empty chat's first frame does not wait for them.
        from xrouter_tui.ui.widgets.answer_markdown import AnswerMarkdown

        self.body = AnswerMarkdown()
        self.thinking = Static("", classes="reasoning", markup=False)
        self.footer = AnswerFooter()
        self._reasoning: list[str] = []
        # One filter for the whole reasoning: a sequence may be cut between two pieces.
        self._reasoning_filter = TerminalFilter()
        self._reasoning_timer: Timer | None = None
        # Set before mounting, for an answer of a resumed conversation that failed.
        self.error_text = ""

    def compose(self) -> ComposeResult:
        yield self.thinking
        yield self.body
        yield self.footer
        if self.error_text:
            yield ErrorBlock(self.error_text)

    def add_reasoning(self, text: str) -> None:
        """Queue a piece of reasoning; it is drawn once per frame, like the answer."""
        text = self._reasoning_filter.feed(text)
        if not text:
            return
        self._reasoning.append(text)
        if self._reasoning_timer is None:
            self._reasoning_timer = self.set_timer(FRAME_SECONDS, self._draw_reasoning)

    def _draw_reasoning(self) -> None:
        self._reasoning_timer = None
        self.thinking.update("".join(self._reasoning))
        self.thinking.display = True

    def set_footer(self, text: str) -> None:
        self.footer.show(text)

    async def show_error(self, text: str, *, neutral: bool = False) -> None:
        await self.mount(ErrorBlock(text, neutral=neutral))


def _message_widget(message: ShownMessage) -> Widget:
    if message.role == "user":
        return UserMessage(message.text)
    answer = AnswerMessage(message.model)
    answer.body.show(message.text)
    if not message.text:
        answer.body.display = False
    answer.set_footer(message.footer)
    if message.error:
        answer.error_text = message.error
    return answer
