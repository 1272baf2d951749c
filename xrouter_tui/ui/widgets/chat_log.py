"""The message log: questions, answers streamed as Markdown, and what each answer cost."""

from __future__ import annotations

import asyncio
import contextlib

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import AwaitMount, Widget
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownBlock

__all__ = [
    "AnswerMarkdown",
    "AnswerMessage",
    "ChatLog",
    "ErrorBlock",
    "FoldedBlocks",
    "UserMessage",
]

# The most text one write into the Markdown takes: a write mounts the blocks the text makes, and
# no frame is drawn (nor a key shown) until it is done, so its cost must stay within a frame or
# two even when a full-speed stream has delivered kilobytes meanwhile.
WRITE_CHARS = 1000
# How long a write waits for the layout that draws it before it goes on without.
DRAW_TIMEOUT = 0.1
# While the log follows a long answer, its blocks more than FOLD_SCREENS screens above the bottom
# are folded away, FOLD_BLOCKS or more at a time, keeping at least FOLD_BLOCKS shown.
FOLD_BLOCKS = 10
FOLD_SCREENS = 2
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


class FoldedBlocks(Widget):
    """Stands in, at their exact height, for an answer's blocks folded away far above the screen."""

    # Its height is measured on the assumption that it has no margin.
    DEFAULT_CSS = """
    FoldedBlocks {
        margin: 0;
    }
    """


class AnswerMarkdown(Markdown):
    """The answer's text, written into the Markdown as fast as the screen can show it.

    One writer task appends what arrived since its last write (at most `WRITE_CHARS`), then waits
    for the screen to draw it before the next write: the deltas of a frame go in together, the
    first one after a pause without waiting for a timer, and frames and key presses are never
    starved by writes queued back to back, however fast the answer streams.

    Every layout walks every shown widget, and a long answer has a thousand: while the log
    follows the stream, blocks far above the screen are folded (hidden, with a `FoldedBlocks` of
    their height in their place, so the scrollbar and every line on screen stay where they were).
    They unfold, in one layout, when the reader scrolls up or the terminal is resized, and fold
    again when the reader is back at the end: a long answer does not slow the ones below it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._drawn = asyncio.Event()
        self._folded: list[Widget] = []
        self._fold: FoldedBlocks | None = None
        self._fold_size = (0, 0)
        # The log this answer sits in, found once: folding asks it on every write.
        self._log: ChatLog | None = None

    def feed(self, text: str) -> None:
        """Queue `text` for the next write (cheap: called once per delta)."""
        self._pending.append(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                if len(text) > WRITE_CHARS:
                    self._pending.append(text[WRITE_CHARS:])
                    text = text[:WRITE_CHARS]
                self._drawn.clear()
                await self.append(text)
                # The next layout draws what was written (a write always needs one); a screen
                # that is not shown lays nothing out, so do not wait for it forever.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drawn.wait(), DRAW_TIMEOUT)
                await self._fold_far_blocks()
        finally:
            self._writer = None

    async def finish(self) -> None:
        """Wait until everything fed so far is written and on screen."""
        writer = self._writer
        if writer is not None:
            # Not `await writer`: a second stop (Esc twice) must not cancel the writer with us.
            await asyncio.wait({writer})

    def mount(
        self,
        *widgets: Widget,
        before: int | str | Widget | None = None,
        after: int | str | Widget | None = None,
    ) -> AwaitMount:
        # Textual gives headings a margin; at the top of an answer it is only an empty gap. Set
        # here, not with a :first-child rule: that pseudo-class has Textual restyle every block
        # of the answer each time one is mounted, hundreds of milliseconds on a long answer.
        if (
            widgets
            and isinstance(widgets[0], MarkdownBlock)
            and before is None
            and after is None
            and not any(isinstance(child, MarkdownBlock) for child in self.children)
        ):
            widgets[0].styles.margin = 0
        return super().mount(*widgets, before=before, after=after)

    def on_mount(self) -> None:
        # Immediate: the writer goes on as soon as the frame is drawn, not after the screen's
        # queue (busy with the events the layout just posted) comes round to it.
        self.screen.screen_layout_refresh_signal.subscribe(self, self._laid_out, immediate=True)
        self._log = next((node for node in self.ancestors if isinstance(node, ChatLog)), None)
        if self._log is not None:
            self.watch(self._log, "scroll_y", self._log_scrolled, init=False)

    def on_unmount(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def _laid_out(self, _screen: object) -> None:
        self._drawn.set()
        # Folded heights hold for one width, and "far above" for one terminal height.
        if self._folded and (self.size.width, self.app.size.height) != self._fold_size:
            self._unfold()

    def _log_scrolled(self, old: float, new: float) -> None:
        # Following the stream moves the log without calling this: an upward move is the
        # reader's, and the folded blocks must be back before the next frame shows that far up.
        if new < old:
            self._unfold()
        elif self._writer is None:
            # A finished answer folds again once the reader is back at the end (or a new
            # question scrolls there), so that it does not slow the answers streamed below it.
            self.call_later(self._fold_far_blocks)

    async def _fold_far_blocks(self) -> None:
        log = self._log
        if log is None or not log.is_vertical_scroll_end:
            return
        blocks = [child for child in self.children if isinstance(child, MarkdownBlock)]
        shown = blocks[len(self._folded) :]
        if len(shown) < 2 * FOLD_BLOCKS:
            return
        # The first block to keep: FOLD_BLOCKS from the end, or more while that is not far enough
        # above the bottom for any scroll position that follows the stream to reach the fold.
        height = self.size.height
        far = FOLD_SCREENS * self.app.size.height
        keep = len(shown) - FOLD_BLOCKS
        while keep >= FOLD_BLOCKS and height - shown[keep].virtual_region.y < far:
            keep -= 1
        if keep < FOLD_BLOCKS:
            return
        first_kept = shown[keep]
        # The fold takes no margin, so the kept block's top margin sits between them as before.
        fold_height = first_kept.virtual_region.y - first_kept.styles.margin.top
        size = (self.size.width, self.app.size.height)
        with self.app.batch_update():
            fold = self._fold
            if fold is None:
                fold = FoldedBlocks()
                await self.mount(fold, before=first_kept)
                if not log.is_vertical_scroll_end or size != (
                    self.size.width,
                    self.app.size.height,
                ):
                    # The reader scrolled up, or the terminal changed, while it was mounted.
                    fold.remove()
                    return
                self._fold = fold
            fold.styles.height = fold_height
            for block in shown[:keep]:
                block.display = False
        self._folded.extend(shown[:keep])
        self._fold_size = size

    def _unfold(self) -> None:
        if self._fold is None:
            return
        fold, folded = self._fold, self._folded
        self._fold, self._folded = None, []
        for block in folded:
            block.display = True
        fold.display = False
        fold.remove()


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
