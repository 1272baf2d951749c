"""`ask`'s answer drawn as Markdown on a terminal while it streams, a block at a time.

Each top-level block (a paragraph, a list, a code fence, a table...) is drawn with Rich once it
is finished and written below what is there: nothing printed is ever drawn again, so the
scrollback holds the answer as it looks. A paragraph still growing shows its wrapped lines as
soon as later words cannot change them, so a one-paragraph answer does not wait for its end.
Imported only when an answer is drawn (Rich and markdown-it cost ~20 ms at start).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import IO, ClassVar

from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.console import Console, JustifyMethod
from rich.markdown import Heading, Markdown, MarkdownElement
from rich.segment import Segment, Segments

from xrouter_tui.safe_text import TerminalFilter

__all__ = ["MarkdownAnswer", "split_finished"]

# The rules Rich's Markdown parses with (as the chat's), so that a block cut here is one there.
_RENDER = MarkdownIt("commonmark").enable("strikethrough").enable("table")
# The same block rules without the inline pass: where blocks start is all a cut needs.
_BLOCKS = (
    MarkdownIt("commonmark")
    .enable("strikethrough")
    .enable("table")
    .disable(["inline", "text_join"], ignoreInvalid=True)
)
# Paragraphs only: a paragraph whose first lines are out already stays one (see `_Paragraph`).
_PARAGRAPH = (
    MarkdownIt("commonmark")
    .enable("strikethrough")
    .enable("table")
    .disable([rule for rule in _RENDER.block.ruler.get_all_rules() if rule != "paragraph"])
)
# Pygments' style for code fences, as the chat's dark themes draw them (with their own
# background, so they read on a light terminal too).
CODE_THEME = "github-dark"
# Characters that may start something later text can still complete (emphasis, code, a link,
# an HTML tag, a table row, a hard break): while one stands in a paragraph as plain text, its
# lines are held back, since what follows could restyle or rewrap them.
_OPEN_INLINE = re.compile(r"[*_`~\[\]<|\\]")
# Between two looks at the text: at least this, and a few times what the last look took, so
# that a huge block still growing costs a bounded share of the time.
_MIN_INTERVAL = 0.005
_COST_FACTOR = 4
_FALLBACK_WIDTH = 80
# Narrower than this, a list or a code block has no room left for its text.
_NARROWEST = 20


def split_finished(text: str) -> tuple[list[str], int, str]:
    """The finished top-level blocks at the start of `text` (whole lines), where the unfinished
    rest starts, and what the last block still open is (`paragraph_open`, `fence`, ...; empty
    when there is none).

    A block is finished once another block has started after it, and a heading, a rule or a
    closed code fence as soon as its last line is there. The offset is that of a line's start.
    """
    starts = [
        token
        for token in _BLOCKS.parse(text)
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]
    if not starts:
        return [], 0, ""
    lines = text.split("\n")
    finished = starts[:-1]
    last: Token | None = starts[-1]
    if _complete(last, lines):
        finished, last = starts, None
    # A block's lines may end with the empty line that closed it.
    blocks = [
        "\n".join(lines[token.map[0] : token.map[1]]).rstrip("\n")
        for token in finished
        if token.map is not None
    ]
    if last is None:
        cut_line = finished[-1].map[1] if finished[-1].map is not None else 0
    else:
        cut_line = last.map[0] if last.map is not None else 0
    return blocks, sum(len(line) + 1 for line in lines[:cut_line]), last.type if last else ""


def _complete(block: Token, lines: list[str]) -> bool:
    """Whether nothing after `block` can add to it: a heading or a rule once its line is
    there, a code fence once its closing fence is."""
    if block.type in ("heading_open", "hr"):
        return True
    if block.type != "fence" or block.map is None:
        return False
    first, end = block.map
    if end - first < 2 or end > len(lines):
        return False
    # The fence's last line closes it when it is the opening fence's character, at least as
    # many times, and nothing else (within three spaces of indent).
    closing = lines[end - 1]
    marker = block.markup
    stripped = closing.strip()
    return (
        len(closing) - len(closing.lstrip(" ")) < 4
        and len(stripped) >= len(marker)
        and stripped == marker[0] * len(stripped)
    )


class _LeftHeading(Heading):
    # Rich centres top-level headings; the chat draws them on the left, and so does `ask`.
    LEVEL_ALIGN: ClassVar[dict[str, JustifyMethod]] = dict.fromkeys(Heading.LEVEL_ALIGN, "left")


class _AnswerMarkdown(Markdown):
    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "heading_open": _LeftHeading,
    }

    def __init__(self, markup: str, parser: MarkdownIt = _RENDER) -> None:
        # Not Rich's __init__: it builds a new parser for every Markdown. The attributes are Rich's.
        self.markup = markup
        self.parsed = parser.parse(markup)
        self.code_theme = CODE_THEME
        self.justify = None
        self.style = "none"
        # Never a terminal hyperlink (OSC 8): a link shows its address, which the reader sees
        # before following it.
        self.hyperlinks = False
        self.inline_code_lexer = None
        self.inline_code_theme = CODE_THEME


class _Paragraph:
    """The open paragraph whose first lines are out, drawn at the width they were drawn at."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines_out = 0


class MarkdownAnswer:
    """Writes an answer to a terminal as Markdown, each block once it is finished.

    The router's text goes through one `TerminalFilter` for the whole answer (a sequence may be
    cut between two deltas) before anything else sees it: its escapes never reach Rich nor the
    terminal, and Rich reads the text as Markdown only, never as its own markup. `end` draws
    what is still open (the last block, or a stopped answer's part). `env` is the command's
    environment (NO_COLOR, TERM, COLORTERM, COLUMNS), read by Rich; `before_write` is called
    before anything is written (it clears the progress line that shares the terminal, which
    can then show below the answer while a block is still growing).
    """

    # It clears the progress line itself, before each write (see `ask_turn.AnswerOutput`).
    takes_terminal = False

    def __init__(
        self,
        out: IO[str],
        env: Mapping[str, str] | None = None,
        *,
        before_write: Callable[[], None] | None = None,
    ) -> None:
        self._out = out
        self._before_write = before_write
        self._safe = TerminalFilter()
        self._console = Console(
            file=out,
            markup=False,
            emoji=False,
            highlight=False,
            legacy_windows=False,
            _environ=dict(os.environ if env is None else env),
        )
        # The text of the block still open (everything before it is out).
        self._tail = ""
        self._blocks_out = 0
        self._paragraph: _Paragraph | None = None
        # When the tail was last looked at, how long that took, and its length then.
        self._looked_at = 0.0
        self._look_cost = 0.0
        self._looked_length = 0
        self._later: asyncio.TimerHandle | None = None
        # What went wrong in a look the loop ran (writing to the terminal): raised to the
        # writer at its next call, not lost in the loop's log.
        self._failure: Exception | None = None

    def write(self, text: str) -> None:
        """Take in the next piece of the answer, as the router sent it."""
        self._raise_failure()
        self._feed(self._safe.feed(text))

    def end(self) -> None:
        """Write everything still open: the answer is over (or stopped). A sequence the answer
        left unfinished is dropped, never shown."""
        self._cancel_later()
        self._raise_failure()
        self._feed(self._safe.flush())
        self._cancel_later()
        if self._tail and not self._tail.endswith("\n"):
            self._tail += "\n"  # the last line is whole now
        self._look()
        if self._paragraph is not None:
            self._write_paragraph_rest(self._tail.rstrip("\n"))
        elif self._tail.strip():
            self._write_block(self._tail.rstrip("\n"))
        self._tail = ""

    def _feed(self, text: str) -> None:
        """Take in safe text; write what it finishes."""
        if not text:
            return
        self._tail += text.replace("\r\n", "\n")
        if "\n" in text or len(self._tail) - self._looked_length >= self._width() // 2:
            self._look_soon()

    def _look_soon(self) -> None:
        """Look at the tail now, or once the interval since the last look has passed."""
        wait = self._looked_at + max(_MIN_INTERVAL, _COST_FACTOR * self._look_cost)
        wait -= time.monotonic()
        if wait <= 0:
            self._cancel_later()
            self._look()
            return
        if self._later is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._look()  # no loop to come back on: now it is
            return
        self._later = loop.call_later(wait, self._look_later)

    def _look_later(self) -> None:
        self._later = None
        try:
            self._look()
        except Exception as exc:  # handed to the writer, see `_failure`
            self._failure = exc

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _cancel_later(self) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None

    def _look(self) -> None:
        """Write the blocks the tail finished, then what of an open paragraph cannot change."""
        started = time.monotonic()
        # Whole lines only: the start of a line can read as the start of a block ("- a\n *"
        # is a second list until "*" turns out to begin "**bold**", a lazy continuation).
        blocks, cut, last = split_finished(self._tail[: self._tail.rfind("\n") + 1])
        for block in blocks:
            if self._paragraph is not None:
                self._write_paragraph_rest(block)
            else:
                self._write_block(block)
        if cut:
            self._tail = self._tail[cut:]
        if last in ("paragraph_open", ""):  # a paragraph, or a first line still growing
            self._write_settled_lines()
        self._looked_length = len(self._tail)
        self._looked_at = time.monotonic()
        self._look_cost = self._looked_at - started

    def _write_settled_lines(self) -> None:
        """The lines of the open paragraph that no later word can change, if it is one."""
        # Up to the last space: a word cut between two deltas is not a word yet.
        end = max(self._tail.rfind(" "), self._tail.rfind("\n"))
        if end <= 0:
            return
        settled = self._tail[:end]
        tokens = _RENDER.parse(settled)
        if (
            len(tokens) != 3
            or tokens[0].type != "paragraph_open"
            or any(
                child.type == "text" and _OPEN_INLINE.search(child.content)
                for child in tokens[1].children or ()
            )
        ):
            return
        paragraph = self._paragraph or _Paragraph(self._width())
        lines = self._lines(settled, paragraph.width, _PARAGRAPH)
        # The last line may still take more words.
        fresh = lines[paragraph.lines_out : len(lines) - 1]
        if not fresh:
            return
        gap: list[list[Segment]] = []
        if self._paragraph is None:
            self._paragraph = paragraph
            gap = self._gap()
        self._write_lines(gap + fresh)
        paragraph.lines_out += len(fresh)

    def _write_paragraph_rest(self, source: str) -> None:
        """The open paragraph's lines not out yet, now that it is finished. It is drawn as a
        paragraph whatever follows turned it into (a `===` under it makes a heading): its first
        lines are on the screen as one."""
        paragraph = self._paragraph
        assert paragraph is not None
        self._paragraph = None
        lines = self._lines(source, paragraph.width, _PARAGRAPH)
        self._write_lines(lines[paragraph.lines_out :])

    def _write_block(self, source: str) -> None:
        lines = self._lines(source, self._width(), _RENDER)
        if lines:
            self._write_lines(self._gap() + lines)

    def _gap(self) -> list[list[Segment]]:
        """One empty line between two blocks, as in the chat: before every block but the
        first."""
        self._blocks_out += 1
        return [[]] if self._blocks_out > 1 else []

    def _lines(self, source: str, width: int, parser: MarkdownIt) -> list[list[Segment]]:
        """`source` drawn at `width`: its lines without the empty ones Rich puts around lists
        and tables, nor the spaces that pad a paragraph's lines (a terminal made narrower
        later would wrap them into empty lines)."""
        console = self._console
        options = console.options.update_width(width)
        try:
            lines = console.render_lines(_AnswerMarkdown(source, parser), options, pad=False)
        except Exception:  # a text no renderer foresaw is still the answer
            # The text is safe already: shown as it is, it is still all there.
            return [[Segment(line)] for line in source.split("\n")]
        first, end = 0, len(lines)
        while first < end and _is_empty(lines[first]):
            first += 1
        while end > first and _is_empty(lines[end - 1]):
            end -= 1
        return [_without_trailing_spaces(line) for line in lines[first:end]]

    def _write_lines(self, lines: list[list[Segment]]) -> None:
        if self._before_write is not None:
            self._before_write()
        segments: list[Segment] = []
        for line in lines:
            segments.extend(line)
            segments.append(Segment.line())
        self._console.print(Segments(segments), end="", crop=False)
        self._out.flush()

    def _width(self) -> int:
        """The terminal's width now (a block is drawn at the width it has when it is)."""
        try:
            columns = os.get_terminal_size(self._out.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        # A terminal that does not say (a pseudo-terminal never sized): Rich's guess (COLUMNS).
        return max(columns or self._console.width or _FALLBACK_WIDTH, _NARROWEST)


def _is_empty(line: list[Segment]) -> bool:
    """Whether a drawn line shows nothing: only spaces, on no background of its own."""
    return all(
        not segment.text.strip() and (segment.style is None or segment.style.bgcolor is None)
        for segment in line
    )


def _without_trailing_spaces(line: list[Segment]) -> list[Segment]:
    """`line` without the plain spaces at its end (a code block's background stays)."""
    line = list(line)
    while line:
        last = line[-1]
        if last.control or (last.style is not None and last.style.bgcolor is not None):
            break
        text = last.text.rstrip(" ")
        if text:
            line[-1] = Segment(text, last.style)
            break
        line.pop()
    return line
