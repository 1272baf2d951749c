"""An answer's text, drawn as Markdown while it streams, at a cost that does not grow with it."""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.geometry import Size
from textual.selection import Selection
from textual.strip import Strip
from textual.widget import Widget

from xrouter_tui.safe_text import TerminalFilter, terminal_text
from xrouter_tui.ui.markdown_lines import BlockPainter, markdown_theme, split_finished

__all__ = ["AnswerMarkdown", "DrawnAnswer", "draw_answer", "finish_line", "painter_for"]

# The most text one write takes in: about 5 ms of drawing the blocks it finishes. The balance
# of two things a user feels at full speed, measured (benchmarks/bench_chat.py, bench_terminal.py):
# with 800 a 27 KB answer fell behind a fast router and ended 0.3 s after a plain Log; with 1,200
# or more a key typed meanwhile waits past 25 ms (p50) for its frame. A write also lets the loop
# in between blocks (see `WRITE_SLICE`), so a key or a frame never waits for all of it.
WRITE_CHARS = 1000
# The longest a write draws blocks without letting the loop in.
WRITE_SLICE = 0.002
# The least time between two writes. A delta after a pause goes in at once; at full speed, the
# deltas of a 60th of a second go in together, and the loop is left free for frames and keys.
WRITE_INTERVAL = 1 / 60


# One painter per app, theme and width, shared by every answer: an answer drawn ahead of its
# widget is drawn by the very painter the widget would pick (so it need not be drawn again), and
# no answer pays for a Console and a Theme of its own (about 0.1 ms each).
_painters: weakref.WeakKeyDictionary[App[object], tuple[str, dict[int, BlockPainter]]] = (
    weakref.WeakKeyDictionary()
)


def painter_for(app: App[object], width: int) -> BlockPainter:
    """The painter answers `width` cells wide are drawn with in `app`'s theme."""
    theme = app.theme
    kept = _painters.get(app)
    if kept is None or kept[0] != theme:
        kept = _painters[app] = (theme, {})
    painters = kept[1]
    painter = painters.get(max(width, 1))
    if painter is None:
        if len(painters) >= 4:  # a terminal resized by dragging passes through many widths
            painters.clear()
        painter = BlockPainter(
            width, markdown_theme(app.theme_variables), dark=app.current_theme.dark
        )
        painters[painter.width] = painter
    return painter


@dataclass(frozen=True, slots=True)
class DrawnAnswer:
    """A finished answer cut into blocks and drawn, ahead of the widget that shows it (a
    message of a resumed conversation, drawn while the reader is still below it)."""

    text: str
    painter: BlockPainter
    blocks: list[str]
    tail: str
    lines: list[Strip]
    tail_lines: list[Strip]


def draw_answer(text: str, painter: BlockPainter) -> DrawnAnswer:
    """`text` (as saved: it is made safe here) drawn by `painter`, as `AnswerMarkdown.show`
    would draw it once laid out."""
    safe = terminal_text(text)
    blocks, cut = split_finished(safe)
    lines: list[Strip] = []
    for block in blocks:
        _extend(lines, painter.paint(block), painter.width)
    tail = safe[cut:] if cut else safe
    tail_lines = painter.paint(tail) if tail.strip() else []
    return DrawnAnswer(text, painter, blocks, tail, lines, tail_lines)


def _extend(lines: list[Strip], block: list[Strip], width: int) -> None:
    """Add a block's lines to `lines`, a blank line between blocks."""
    if lines and block:
        lines.append(Strip.blank(width))
    lines.extend(block)


class AnswerMarkdown(Widget):
    """The answer as Markdown: code highlighted, tables drawn, headings and lists styled.

    Text arrives through `feed`, once per delta, which only queues it. One writer task takes in
    what arrived since its last write, at most `WRITE_CHARS` every `WRITE_INTERVAL`: the first
    delta after a pause at once, and at full speed the deltas of a frame together, so that frames
    and key presses are never starved, however fast the answer streams.

    Finished blocks are drawn once into lines (see `markdown_lines`); only the last, growing
    block is drawn again on a write. The widget is one node whose height is its line count, so a
    layout of the log costs the same for a long answer as for a short one.

    The text is the router's: escape sequences and control characters are taken out as it is
    fed, by one filter for the whole answer (a sequence may be cut between two deltas), so that
    neither the Markdown parser nor the screen ever sees them.
    """

    DEFAULT_CSS = """
    AnswerMarkdown {
        height: auto;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._source: list[str] = []
        self._pending: list[str] = []
        self._safe = TerminalFilter()
        self._writer: asyncio.Task[None] | None = None
        self._last_write = 0.0
        # The finished blocks' text, and the text of the block still growing.
        self._blocks: list[str] = []
        self._tail = ""
        # Drawn lines, for the painter's width and theme: a blank line between blocks.
        self._painter: BlockPainter | None = None
        self._lines: list[Strip] = []
        self._tail_lines: list[Strip] = []
        # Finished lines as last shown (styled, with their offsets), and the style under them.
        self._shown: dict[int, Strip] = {}
        self._base_style: Style | None = None

    @property
    def source(self) -> str:
        """All the text fed so far as it is shown (without escapes), written or not."""
        return "".join(self._source) + "".join(self._pending)

    def feed(self, text: str) -> None:
        """Queue `text` for the next write (cheap: called once per delta; plain text passes
        the filter with one regular-expression search)."""
        text = self._safe.feed(text)
        if not text:
            return  # all of it was (the start of) a sequence
        self._pending.append(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def show(self, text: str, *, drawn: DrawnAnswer | None = None) -> None:
        """Take in a whole finished text at once (a message of a resumed conversation), or
        what `draw_answer` drew of it ahead: then nothing is left to draw, unless the width or
        the theme changed meanwhile."""
        if drawn is None or drawn.text != text or self._source:
            self._take_in(terminal_text(text))
            return
        self._source.append(terminal_text(text))
        self._blocks.extend(drawn.blocks)
        self._tail = drawn.tail
        self._painter = drawn.painter
        self._lines = list(drawn.lines)
        self._tail_lines = drawn.tail_lines
        self.refresh(layout=True)

    async def finish(self) -> None:
        """Wait until everything fed so far is written and on screen. A sequence the answer
        left unfinished is dropped, never shown."""
        self._safe.flush()
        writer = self._writer
        if writer is not None:
            # Not `await writer`: a second stop (Esc twice) must not cancel the writer with us.
            await asyncio.wait({writer})

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                # Deltas that arrive within an interval go in together: a write per delta
                # would redraw the growing block thousands of times a second at full speed.
                wait = self._last_write + WRITE_INTERVAL - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                text = "".join(self._pending)
                self._pending.clear()
                if len(text) > WRITE_CHARS:
                    self._pending.append(text[WRITE_CHARS:])
                    text = text[:WRITE_CHARS]
                await self._take_in_gradually(text)
                self._last_write = loop.time()
        finally:
            self._writer = None

    def _take_in(self, text: str) -> None:
        self._source.append(text)
        tail = self._tail + text
        blocks, cut = split_finished(tail)
        painter = self._painter
        painted = [painter.paint(block) for block in blocks] if painter is not None else []
        self._commit(tail, blocks, cut, painted, painter)

    async def _take_in_gradually(self, text: str) -> None:
        """`_take_in` for the writer: the blocks the text finishes are drawn one by one, the
        loop let in every `WRITE_SLICE` (a key, a frame: either sees the answer as it stood),
        and the answer takes them all at once at the end."""
        self._source.append(text)
        tail = self._tail + text
        blocks, cut = split_finished(tail)
        painter = self._painter
        painted: list[list[Strip]] = []
        if painter is not None:
            loop = asyncio.get_running_loop()
            since = loop.time()
            for block in blocks:
                painted.append(painter.paint(block))
                if loop.time() - since > WRITE_SLICE:
                    await asyncio.sleep(0)
                    since = loop.time()
            if self._painter is not painter:  # the width or the theme changed meanwhile
                painter = self._painter
                painted = [painter.paint(block) for block in blocks] if painter is not None else []
        self._commit(tail, blocks, cut, painted, painter)

    def _commit(
        self,
        tail: str,
        blocks: list[str],
        cut: int,
        painted: list[list[Strip]],
        painter: BlockPainter | None,
    ) -> None:
        before = self.line_count
        self._blocks.extend(blocks)
        for lines in painted:
            self._add_lines(lines)
        self._tail = tail[cut:] if cut else tail
        if painter is not None:
            self._tail_lines = self._paint_tail(painter)
        self.refresh(layout=painter is None or self.line_count != before)

    def _add_lines(self, lines: list[Strip]) -> None:
        _extend(self._lines, lines, self._painter.width if self._painter else 0)

    def _paint_tail(self, painter: BlockPainter) -> list[Strip]:
        return painter.paint(self._tail) if self._tail.strip() else []

    @property
    def line_count(self) -> int:
        """How many lines the answer takes at the width it was last drawn at."""
        return len(self._lines) + self._gap + len(self._tail_lines)

    @property
    def _gap(self) -> int:
        """The empty line between the finished blocks and the growing one, when both exist."""
        return 1 if self._lines and self._tail_lines else 0

    def _repaint(self, width: int) -> None:
        """Draw every block again, for a new width or theme."""
        painter = painter_for(self.app, width)
        self._painter = painter
        self._lines = []
        self._shown.clear()
        for block in self._blocks:
            self._add_lines(painter.paint(block))
        self._tail_lines = self._paint_tail(painter)

    def _painted_for(self, width: int) -> None:
        if self._painter is None or self._painter.width != max(width, 1):
            self._repaint(width)

    def lines_at(self, width: int) -> list[Strip]:
        """The answer's lines `width` cells wide in the app's theme, without the widget's own
        colours: for a widget that shows a finished answer itself (`SavedAnswer`), this one
        unmounted. Drawn again only when the width or the theme changed."""
        if self._painter is not painter_for(self.app, width):
            self._repaint(width)
        gap = [Strip.blank(max(width, 1))] * self._gap
        return [*self._lines, *gap, *self._tail_lines]

    @property
    def painter(self) -> BlockPainter | None:
        """What the answer was last drawn with (its width and theme), if it was."""
        return self._painter

    # -- Textual ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)
        painter = self._painter
        if painter is not None and painter is not painter_for(self.app, painter.width):
            self._painter = None  # drawn ahead in a theme changed since

    def on_unmount(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def _theme_changed(self, _theme: object) -> None:
        self._painter = None
        self._base_style = None
        self.refresh(layout=True)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self._painted_for(width)
        return self.line_count

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._shown.clear()

    def render_line(self, y: int) -> Strip:
        self._painted_for(self.size.width)
        selection = self.text_selection
        if selection is None and (shown := self._shown.get(y)) is not None:
            return shown
        # The widget's own colours go under Rich's, which leave most cells' background unset.
        base = self._base_style
        if base is None:
            base = self._base_style = self.rich_style
        finished = len(self._lines)
        gap = self._gap
        if y < finished:
            line = self._lines[y]
        elif 0 <= y - finished - gap < len(self._tail_lines):
            line = self._tail_lines[y - finished - gap]
        else:
            line = Strip.blank(self.size.width)
        line = finish_line(self, line, base, y)
        # Finished lines never change until the next repaint: a frame that scrolls the log
        # (each one, while it follows the stream) finds them ready.
        if y < finished and selection is None:
            self._shown[y] = line
        return line

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        text = "\n".join(line.text.rstrip() for line in self._all_lines())
        return selection.extract(text), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()

    def _all_lines(self) -> list[Strip]:
        return [*self._lines, *[Strip.blank(0)] * self._gap, *self._tail_lines]


def finish_line(widget: Widget, line: Strip, base: Style, y: int) -> Strip:
    """Line `y` of an answer as `widget` shows it: its own colours (`base`) under Rich's (which
    leave most cells' background unset), the text selected in it highlighted."""
    line = line.apply_style(base)
    selection = widget.text_selection
    if selection is not None and (span := selection.get_span(y)) is not None:
        selected = widget.screen.get_component_rich_style("screen--selection")
        line = _highlight(line, *span, selected)
    return line.apply_offsets(0, y)


def _highlight(line: Strip, start: int, end: int, style: Style) -> Strip:
    """`line` with the cells from `start` to `end` (-1: to the end) in the selection's style."""
    end = line.cell_length if end == -1 else end
    before, selected, after = line.divide([start, end, line.cell_length])
    marked = Strip(Segment.apply_style(selected, post_style=style), selected.cell_length)
    return Strip.join([before, marked, after])
