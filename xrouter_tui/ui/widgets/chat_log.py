"""The message log: questions, answers streamed as Markdown, and what each answer cost.

Everything shown here but the user's own words may come from the router; it goes through
`safe_text` on its way to the screen (and is never read as markup), while the conversation and
the history keep it as it was received.
"""

from __future__ import annotations

import asyncio
import re
import time
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.style import Style as RichStyle
from textual import events, work
from textual.app import ComposeResult
from textual.await_remove import AwaitRemove
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.css.query import QueryType
from textual.geometry import Offset, Size
from textual.layout import DockArrangeResult
from textual.message import Message
from textual.reactive import Reactive
from textual.selection import Selection
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.timer import Timer
from textual.visual import Visual
from textual.widget import Widget
from textual.widgets import Static

from xrouter_tui.resends import MIN_SECONDS_LEFT as RESEND_MARGIN
from xrouter_tui.resends import time_left
from xrouter_tui.safe_text import TerminalFilter, one_line, terminal_text

if TYPE_CHECKING:
    from xrouter_tui.ui.markdown_lines import BlockPainter
    from xrouter_tui.ui.widgets.answer_markdown import DrawnAnswer

__all__ = [
    "AnswerFooter",
    "AnswerMessage",
    "ChatLog",
    "ContextMarker",
    "ErrorBlock",
    "RetryHint",
    "SavedAnswer",
    "ShownMessage",
    "UserMessage",
]

# The model's reasoning is drawn at most once a frame.
FRAME_SECONDS = 1 / 60
# A resumed conversation shows its newest messages at once, and mounts older ones as the reader
# scrolls up to them: opening 2,000 messages costs what opening 40 does.
HISTORY_BATCH = 40
# Older messages mounted at a time. Every batch is one layout of the whole screen, which walks
# every widget mounted: a few messages (more than a page of most) cost 30-50 ms, where 40 took
# 200-300 ms (benchmarks/bench_history.py), and a batch that falls short of the distance read
# ahead is followed by the next at once.
OLDER_BATCH = 6
# How close to the top (in lines) the reader scrolls before the next older batch is mounted:
# far enough ahead that it is there before it is reached.
LOAD_AHEAD_LINES = 40
# The longest the answers of the next older batch are drawn ahead without letting the loop in
# (a key, a frame); drawing them when the batch mounts is what made paging up stall.
DRAW_SLICE = 0.002
# How long after a batch mounts the next one starts being drawn: once the frames that lay the
# batch out are on screen, so as not to delay them.
DRAW_DELAY = 0.1


def _virtual_size() -> Reactive[Size]:
    """`Widget.virtual_size` (the size a widget scrolls over), which each layout of the screen
    sets, without the second layout (and repaint) Textual asks for when it changes: a widget
    that does not scroll never needs it, nor does the log (its scroll bar asks for a layout of
    its own when it comes or goes). Textual's made every batch of older messages lay the whole
    screen out twice."""
    return Reactive(Size(0, 0), layout=False, repaint=False)


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
    bottom: scrolling up releases it, scrolling back down or sending a message re-attaches it.

    It never takes the focus (the prompt keeps it): the chat's keys scroll it through
    `page_up`, `page_down`, `to_first` and `to_last`. Whatever mounts or grows above the
    message at the top of the view leaves that message where it is on screen."""

    can_focus = False
    virtual_size = _virtual_size()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        # A resumed conversation's messages not mounted yet, oldest first.
        self._unshown: list[ShownMessage] = []
        # A batch is on its way (scrolling near the top asked for it).
        self._loading = False
        self._mounting = asyncio.Lock()
        # The answers of the next older batch, drawn ahead of their widgets.
        self._drawn: dict[ShownMessage, DrawnAnswer] = {}
        self._draw_timer: Timer | None = None
        # Where the context marker goes (messages from the newest) and what it says.
        self._marker: tuple[int, str] | None = None
        # The children's places as last laid out, to keep the reader's place by.
        self._arranged: DockArrangeResult | None = None

    def on_mount(self) -> None:
        self.anchor()

    def follow(self) -> None:
        """Jump to the newest message and follow it again."""
        self.scroll_end(animate=False, immediate=True)

    # -- reading by keyboard ---------------------------------------------------------------

    def page_up(self) -> None:
        """Scroll up by a page (older batches mount as the top comes near)."""
        self._scroll_by(-self._page)

    def page_down(self) -> None:
        """Scroll down by a page; at the bottom, the log follows the newest text again."""
        self._scroll_by(self._page)

    async def to_first(self) -> None:
        """Jump to the first message of the conversation, mounting every older one first."""
        await self._mount_older(len(self._unshown))
        # Every place below moved: the top is the top of what is mounted now.
        self._arranged = None
        self.scroll_home(animate=False, immediate=True)

    def to_last(self) -> None:
        """Jump to the newest message and follow the stream again."""
        self.follow()

    @property
    def _page(self) -> int:
        # A line of the last page stays in view, as a pager keeps one.
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_by(self, lines: int) -> None:
        self.scroll_to(y=self.scroll_target_y + lines, animate=False, immediate=True)

    # -- a resumed conversation ------------------------------------------------------------

    async def show_history(self, messages: Sequence[ShownMessage]) -> None:
        """Show a resumed conversation in place of what the log holds, scrolled to its end.

        Only the newest `HISTORY_BATCH` messages are mounted now; older ones follow, a batch
        at a time, as the reader scrolls up towards them, their answers drawn ahead.
        """
        await self.remove_children()
        self._unshown = list(messages)
        self._drawn.clear()
        # The last answer stays a whole `AnswerMessage`: the turn may go on from it (a retry
        # hint under it, an error). The others are drawn by one widget each.
        last = next((m for m in reversed(messages) if m.role == "assistant"), None)
        await self.mount_all(self._take_newest(HISTORY_BATCH, whole=last))
        self.anchor()
        self.follow()
        # Once the newest answers are laid out (their width is the one to draw at), the next
        # batch is drawn: the reader may page up at once.
        self.call_after_refresh(self._draw_older)

    def remove_children(
        self, selector: str | type[QueryType] | Iterable[Widget] = "*"
    ) -> AwaitRemove:
        """Remove children; removing them all (a new chat) also forgets the older messages of
        the conversation that was shown, not mounted yet: they are not this one's."""
        if selector == "*":
            self._unshown.clear()
            self._drawn.clear()
        return super().remove_children(selector)

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
        await self.query_children(ContextMarker).remove()
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

    def _take_newest(self, count: int, *, whole: ShownMessage | None = None) -> list[Widget]:
        """Widgets for the newest `count` messages not mounted yet (the answer `whole` as an
        `AnswerMessage`), taken off the list."""
        if count <= 0:
            return []
        batch = self._unshown[-count:]
        del self._unshown[-count:]
        drawn = self._drawn
        widgets = [
            _message_widget(message, drawn.pop(message, None), saved=message is not whole)
            for message in batch
        ]
        drawn.clear()  # drawn for a batch that is gone (the width changed, or a new history)
        return widgets

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._load_when_near_the_top()

    def _load_when_near_the_top(self) -> None:
        if self._unshown and not self._loading and self.scroll_y <= LOAD_AHEAD_LINES:
            self._loading = True
            # A task of its own, not a callback of the log's: the log's own messages (the
            # batch's mount ending) go on meanwhile, and make no layout of their own after it.
            self.run_worker(self._load_older, group="older-messages")

    async def _load_older(self) -> None:
        try:
            await self._mount_older(OLDER_BATCH)
        finally:
            self._loading = False
        self._draw_later()
        # A batch shorter than the distance read ahead: the next one comes too.
        self.call_after_refresh(self._load_when_near_the_top)

    async def _mount_older(self, count: int) -> None:
        """Mount the next `count` older messages above those mounted; the reader's place is
        kept as they are laid out (see `arrange`)."""
        async with self._mounting:  # one batch at a time, each above the one before
            widgets = self._take_newest(count)
            if not widgets:
                return
            first = self.children[0] if self.children else None
            # No frame until the batch is all mounted: one layout of the log for all of it.
            with self.app.batch_update():
                await self.mount_all(widgets, before=first)
                marker = self._marker
                if marker is not None and marker[0] > len(self.messages()) - len(widgets):
                    await self._place_marker()  # its message came with this batch

    def _draw_later(self) -> None:
        if self._draw_timer is not None:
            self._draw_timer.stop()
        self._draw_timer = self.set_timer(DRAW_DELAY, self._draw_older)

    @work(exclusive=True, group="draw-older", exit_on_error=False)
    async def _draw_older(self) -> None:
        """Draw the answers of the next older batch before the reader reaches it, newest
        first, letting the loop in every `DRAW_SLICE`: mounting the batch then costs no
        Markdown. Drawn for the width of the newest answer laid out; a change of width or
        theme before the batch mounts only means it is drawn again, as it was before."""
        painter = self._painter()
        if painter is None:
            return
        from xrouter_tui.ui.widgets.answer_markdown import draw_answer

        loop = asyncio.get_running_loop()
        since = loop.time()
        for message in reversed(self._unshown[-OLDER_BATCH:]):
            if message.role != "assistant" or not message.text or message in self._drawn:
                continue
            self._drawn[message] = draw_answer(message.text, painter)
            if loop.time() - since > DRAW_SLICE:
                await asyncio.sleep(0)
                since = loop.time()

    def _painter(self) -> BlockPainter | None:
        """The painter of the newest answer drawn: the width an older one would have."""
        for child in reversed(self.children):
            if isinstance(child, AnswerMessage) and child.body.painter is not None:
                return child.body.painter
        return None

    # -- keeping the reader's place --------------------------------------------------------

    def arrange(self, size: Size, optimal: bool = False) -> DockArrangeResult:
        arrangement = super().arrange(size, optimal)
        before = self._arranged
        if not optimal and arrangement is not before:
            self._arranged = arrangement  # first: holding the place may arrange again
            if before is not None:
                self._hold_place(before, arrangement)
        return arrangement

    def _hold_place(self, before: DockArrangeResult, after: DockArrangeResult) -> None:
        """Scroll so that the child at the top of the view stays where it was on screen:
        a batch of older messages (or the context marker) mounted above it does not move
        what the reader is looking at, in the very frame it appears."""
        y = round(self.scroll_y)
        placements = before.placements
        index = bisect_right(placements, y, key=lambda placement: placement.region.bottom)
        if index >= len(placements) or y >= self.max_scroll_y:
            return  # nothing above the view, or at the bottom (following, or about to)
        top, was = placements[index].widget, placements[index].region.y
        now = next((p.region.y for p in after.placements if p.widget is top), was)
        if now != was:
            # Not `scroll_to`: this frame is being laid out, and its size is the old one yet.
            y = max(0, self.scroll_y + now - was)
            self.set_reactive(ChatLog.scroll_y, y)
            self.set_reactive(ChatLog.scroll_target_y, y)
            self.vertical_scrollbar.position = y


class ContextMarker(Static):
    """A thin line above the oldest message still sent: what is older is not."""

    def __init__(self, text: str) -> None:
        super().__init__(text, markup=False)


class UserMessage(Static):
    """A question, shown as typed (no Markdown: what was sent is what is shown), without
    control characters: a saved one may have been pasted, or written by another program."""

    virtual_size = _virtual_size()

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
        # The line as shown.
        self.text = ""

    def show(self, text: str) -> None:
        """Show the money line `text` (it quotes the router: a network, a reason)."""
        text = self.text = one_line(text)
        found = _TX.search(text)
        self.tx = found.group(1) if found else None
        self.tooltip = "Click to copy the transaction hash" if self.tx else None
        self.update(text)
        self.display = bool(text)

    def on_click(self) -> None:
        if self.tx:
            self.post_message(self.CopyTransaction(self.tx))


_TX = re.compile(r"\btx (0x[0-9a-fA-F]{64})\b")


class Reasoning(Static):
    """The model's reasoning, labelled "thinking" and kept apart from the answer; a click (or
    `t` on the selected answer) folds it to its last lines, and back."""

    def __init__(self) -> None:
        super().__init__("", classes="reasoning", markup=False)
        self.border_title = "thinking ▾"

    def on_click(self) -> None:
        self.fold()

    def fold(self) -> None:
        """Fold the reasoning away, or unfold it."""
        self.toggle_class("-folded")
        self.border_title = "thinking ▸" if self.has_class("-folded") else "thinking ▾"


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
        self.thinking = Reasoning()
        self.footer = AnswerFooter()
        self._reasoning: list[str] = []
        # One filter for the whole reasoning: a sequence may be cut between two pieces.
        self._reasoning_filter = TerminalFilter()
        self._reasoning_timer: Timer | None = None
        # Set before mounting, for an answer of a resumed conversation that failed.
        self.error_text = ""

    def compose(self) -> ComposeResult:
        # The reasoning's box is mounted with the first of it: most answers have none, and
        # a resumed conversation mounts its answers a batch at a time.
        if self._reasoning:
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
        if self.thinking.parent is None:
            self.mount(self.thinking, before=self.body)

    def set_footer(self, text: str) -> None:
        self.footer.show(text)

    async def show_error(self, text: str, *, neutral: bool = False) -> None:
        await self.mount(ErrorBlock(text, neutral=neutral))


class SavedAnswer(AnswerMessage):
    """An answer of a resumed conversation, mounted as the reader scrolls up to it: what an
    `AnswerMessage` shows (its Markdown, then its money line), drawn by this one widget
    instead of three, so that a batch of older messages costs a third of the widgets to mount
    and to lay out. Its `body` and `footer` hold the text and are never mounted."""

    # The money line's look, as `AnswerMessage .answer-footer` in the app's stylesheet.
    COMPONENT_CLASSES: ClassVar[set[str]] = {"saved-answer--footer"}
    virtual_size = _virtual_size()
    DEFAULT_CSS = """
    SavedAnswer > .saved-answer--footer {
        color: $text-muted;
        text-style: dim;
    }
    """

    def __init__(self, message: ShownMessage, drawn: DrawnAnswer | None = None) -> None:
        super().__init__(message.model)
        self.body.show(message.text, drawn=drawn)
        self.footer.show(message.footer)
        # Lines as last drawn (styled, with their offsets), and the width they were drawn at.
        self._shown: dict[int, Strip] = {}
        self._lines: list[Strip] = []
        self._body_lines = 0
        self._width = -1

    def compose(self) -> ComposeResult:
        return ()

    def set_footer(self, text: str) -> None:
        self.footer.show(text)
        self._forget_lines()
        self.refresh(layout=True)

    def _forget_lines(self) -> None:
        self._width = -1
        self._shown.clear()

    def _lines_at(self, width: int) -> list[Strip]:
        if width != self._width:
            body = self.body.lines_at(width)
            footer = self._money_lines(width, len(body)) if self.footer.display else []
            self._lines, self._body_lines, self._width = [*body, *footer], len(body), width
            self._shown.clear()
        return self._lines

    def _money_lines(self, width: int, y: int) -> list[Strip]:
        """The money line as `AnswerFooter` draws it (wrapped, selected text and all), at line
        `y` of the answer for the selection: its text is one line there, however wrapped."""
        style = self.get_visual_style("saved-answer--footer")
        content = Content(self.footer.text)
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(y)) is not None:
            start, end = span
            selected = self.screen.get_component_styles("screen--selection")
            end = len(content) if end == -1 else end
            content = content.stylize(VisualStyle.from_styles(selected), start, end)
        strips = Visual.to_strips(self, content, width, None, style, apply_selection=False)
        # Padded to the width in the background only, as the screen pads a `Static`'s lines.
        pad = RichStyle(bgcolor=style.rich_style.bgcolor)
        return [_moved(strip, y).adjust_cell_length(width, pad) for strip in strips]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines_at(width))

    def notify_style_update(self) -> None:
        # Drawn again in the new colours; Textual lays the screen out again itself when the
        # new styles change a size.
        super().notify_style_update()
        self._forget_lines()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        lines = self._lines_at(width)
        selected = self.text_selection is not None
        if not selected and (shown := self._shown.get(y)) is not None:
            return shown
        line = lines[y] if 0 <= y < len(lines) else Strip.blank(width)
        if y < self._body_lines:  # the money line is drawn whole already
            from xrouter_tui.ui.widgets.answer_markdown import finish_line

            line = finish_line(self, line, self.rich_style, y)
        if not selected:
            self._shown[y] = line
        return line

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        body = [line.text.rstrip() for line in self._lines[: self._body_lines]]
        money = [self.footer.text] if self.footer.display else []
        return selection.extract("\n".join([*body, *money])), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self._forget_lines()
        self.refresh()

    def _on_money_line(self, offset: Offset | None) -> bool:
        return offset is not None and offset.y >= self._body_lines and self.footer.tx is not None

    def on_mouse_move(self, event: events.MouseMove) -> None:
        on_it = self._on_money_line(event.get_content_offset(self))
        self.tooltip = "Click to copy the transaction hash" if on_it else None

    def on_click(self, event: events.Click) -> None:
        if self._on_money_line(event.get_content_offset(self)) and self.footer.tx:
            self.post_message(AnswerFooter.CopyTransaction(self.footer.tx))


def _moved(strip: Strip, y: int) -> Strip:
    """`strip`, a line of text drawn on its own, as line `y` of a widget's text: where a
    selection begins and ends in it is read from these offsets."""
    for segment in strip:
        offset = segment.style.meta.get("offset") if segment.style is not None else None
        if offset is not None:
            return strip.apply_offsets(offset[0], y)
    return strip.apply_offsets(0, y)


def _message_widget(
    message: ShownMessage, drawn: DrawnAnswer | None = None, *, saved: bool = False
) -> Widget:
    """The widget that shows `message`; with `saved`, an answer as one `SavedAnswer` where
    it can be (one with text, no error)."""
    if message.role == "user":
        return UserMessage(message.text)
    if saved and message.text and not message.error:
        return SavedAnswer(message, drawn)
    answer = AnswerMessage(message.model)
    answer.body.show(message.text, drawn=drawn)
    if not message.text:
        answer.body.display = False
    answer.set_footer(message.footer)
    if message.error:
        answer.error_text = message.error
    return answer
