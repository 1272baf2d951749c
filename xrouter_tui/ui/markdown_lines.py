"""Markdown drawn as lines of terminal cells, one top-level block at a time.

An answer is cut into its top-level blocks (a paragraph, a list, a code fence, a table...).
Every block but the last is finished: later text cannot change it, so it is drawn once, with
Rich, into strips kept for as long as the width and the theme hold. Only the last block, still
growing, is drawn again when text arrives. A long answer thus costs what its newest block
costs, instead of a widget tree that every frame and every layout walk over.
"""

from __future__ import annotations

import io
from typing import ClassVar

from markdown_it import MarkdownIt
from rich.console import Console, JustifyMethod
from rich.markdown import Heading, Markdown, MarkdownElement
from rich.segment import Segment
from rich.style import Style
from rich.theme import Theme
from textual.color import Color
from textual.strip import Strip

__all__ = ["BlockPainter", "markdown_theme", "split_finished"]

# The same rules Rich's Markdown parses with, so that a block cut here is one block there.
_BLOCKS = MarkdownIt("commonmark").enable("strikethrough").enable("table")
# Pygments styles for code fences, by the app theme's darkness.
DARK_CODE_THEME = "github-dark"
LIGHT_CODE_THEME = "default"


def split_finished(text: str) -> tuple[list[str], int]:
    """The finished top-level blocks at the start of `text`, and where the unfinished rest starts.

    A block is finished once another block has started after it. The offset is that of the
    first line of the last block, so what is left begins at a line's start.
    """
    starts = [
        token.map
        for token in _BLOCKS.parse(text)
        if token.level == 0 and token.nesting >= 0 and token.map is not None
    ]
    if len(starts) < 2:
        return [], 0
    lines = text.split("\n")
    # A block's lines may end with the empty line that closed it.
    blocks = ["\n".join(lines[first:end]).rstrip("\n") for first, end in starts[:-1]]
    cut_line = starts[-1][0]
    return blocks, sum(len(line) + 1 for line in lines[:cut_line])


def markdown_theme(variables: dict[str, str]) -> Theme:
    """Rich styles for Markdown taken from an app theme's variables, so answers match the app."""

    def color(name: str) -> str | None:
        value = variables.get(name, "")
        if not value or value == "transparent" or value.startswith("auto"):
            return None
        parsed = Color.parse(value)
        if parsed.a < 1:
            parsed = Color.parse(variables.get("background", "#000000")) + parsed
        return parsed.hex6

    def style(foreground: str, text_style: str = "", background: str | None = None) -> Style:
        return Style.parse(text_style or "none") + Style(
            color=color(foreground), bgcolor=color(background) if background else None
        )

    styles = {
        f"markdown.h{level}": style(
            f"markdown-h{level}-color", variables.get(f"markdown-h{level}-text-style", "bold")
        )
        for level in range(1, 7)
    }
    styles.update(
        {
            "markdown.code": style("text-accent", "bold", "surface"),
            "markdown.block_quote": style("foreground-muted", "italic"),
            "markdown.list": style("text-primary"),
            "markdown.item.bullet": style("text-accent", "bold"),
            "markdown.item.number": style("text-accent"),
            "markdown.hr": style("foreground-muted"),
            "markdown.link": style("text-primary", "underline"),
            "markdown.link_url": style("foreground-muted", "underline"),
            "markdown.table.border": style("foreground-muted"),
            "markdown.table.header": style("text-accent", "bold"),
            "markdown.kbd": style("text-warning", "bold"),
        }
    )
    return Theme(styles)


class _LeftHeading(Heading):
    # Rich centres top-level headings; in a narrow chat column that reads as a stray line.
    LEVEL_ALIGN: ClassVar[dict[str, JustifyMethod]] = dict.fromkeys(Heading.LEVEL_ALIGN, "left")


class _AnswerMarkdown(Markdown):
    elements: ClassVar[dict[str, type[MarkdownElement]]] = {
        **Markdown.elements,
        "heading_open": _LeftHeading,
    }

    def __init__(self, markup: str, code_theme: str) -> None:
        # Not Rich's __init__: it builds a new parser for every Markdown, a quarter of a
        # millisecond that a growing block would pay on every write. The attributes are Rich's.
        self.markup = markup
        self.parsed = _BLOCKS.parse(markup)
        self.code_theme = code_theme
        self.justify = None
        self.style = "none"
        # Links show their address: the terminal may not open them, and the reader can copy it.
        self.hyperlinks = False
        self.inline_code_lexer = None
        self.inline_code_theme = code_theme


class BlockPainter:
    """Draws Markdown blocks into strips of one width, with one theme's styles."""

    def __init__(self, width: int, theme: Theme, *, dark: bool = True) -> None:
        self.width = max(width, 1)
        self.code_theme = DARK_CODE_THEME if dark else LIGHT_CODE_THEME
        # A console of our own: the app's has Rich's default styles and writes to the screen.
        self._console = Console(
            file=io.StringIO(),
            width=self.width,
            color_system="truecolor",
            force_terminal=True,
            legacy_windows=False,
            theme=theme,
        )
        self._options = self._console.options.update_width(self.width)

    def paint(self, source: str) -> list[Strip]:
        """The lines `source` takes on screen, each exactly `width` cells wide."""
        markdown = _AnswerMarkdown(source, self.code_theme)
        lines = self._console.render_lines(markdown, self._options, pad=True)
        # Rich opens lists and tables with empty lines of its own; the gap between blocks is
        # the caller's to draw, so that every pair of blocks is one line apart.
        first, end = 0, len(lines)
        while first < end and _is_empty(lines[first]):
            first += 1
        while end > first and _is_empty(lines[end - 1]):
            end -= 1
        return [Strip(line, self.width) for line in lines[first:end]]


def _is_empty(line: list[Segment]) -> bool:
    """Whether a drawn line shows nothing: only spaces, on no background of its own."""
    return all(
        not segment.text.strip() and (segment.style is None or segment.style.bgcolor is None)
        for segment in line
    )
