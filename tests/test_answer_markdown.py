"""The answer's Markdown: cut into blocks as it streams, drawn a block at a time."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.pilot import Pilot

from tests.ui_helpers import wait_for
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.ui.markdown_lines import BlockPainter, markdown_theme, split_finished
from xrouter_tui.ui.widgets.answer_markdown import AnswerMarkdown

REPLY = make_reply("Show me tables, lists and code", deltas=600, min_bytes=6000)
TEXT = "".join(REPLY.content)


class AnswerApp(App[None]):
    """One answer in a scrolling column, as in the chat's log."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield AnswerMarkdown()

    @property
    def answer(self) -> AnswerMarkdown:
        return self.query_one(AnswerMarkdown)


def shown(answer: AnswerMarkdown) -> list[str]:
    """The answer's lines as drawn, right-trimmed."""
    return [answer.render_line(y).text.rstrip() for y in range(answer.size.height)]


def words(lines: list[str]) -> list[str]:
    """The non-empty lines: Rich spaces a whole document differently from block by block."""
    return [line for line in lines if line.strip()]


async def stream(pilot: Pilot[None], pieces: list[str] | tuple[str, ...]) -> AnswerMarkdown:
    answer = pilot.app.answer  # type: ignore[attr-defined]
    for piece in pieces:
        answer.feed(piece)
    await answer.finish()
    await pilot.pause()
    return answer


def test_finished_blocks_are_those_followed_by_another() -> None:
    text = "# Title\n\nA paragraph\nover two lines.\n\n- one\n- two\n\n```py\nx = 1\n"
    blocks, cut = split_finished(text)
    assert blocks == ["# Title", "A paragraph\nover two lines.", "- one\n- two"]
    # The open code fence is the block still growing, from the start of its line.
    assert text[cut:] == "```py\nx = 1\n"


def test_a_block_that_may_still_grow_is_not_finished() -> None:
    # A blank line inside a list does not end it: the next item may follow.
    assert split_finished("- one\n\n") == ([], 0)
    assert split_finished("- one\n\n- two\n") == ([], 0)
    # A table's last row may still be coming.
    assert split_finished("| a | b |\n|---|---|\n| 1 | 2 |\n") == ([], 0)


async def test_a_streamed_answer_shows_what_the_whole_text_shows() -> None:
    app = AnswerApp()
    async with app.run_test(size=(90, 30)) as pilot:
        answer = await stream(pilot, REPLY.content)
        assert answer.source == TEXT
        streamed = shown(answer)
        whole = BlockPainter(answer.size.width, markdown_theme({})).paint(TEXT)
    assert words(streamed) == words([line.text.rstrip() for line in whole])
    # Blocks stay one empty line apart (a code block adds a padding line of its colour).
    assert "\n\n\n\n" not in "\n".join(streamed)
    # Code and tables are drawn, not shown as Markdown source.
    assert not any(line.startswith("```") or line.startswith("|---") for line in streamed)
    assert any("─" in line for line in streamed)


async def test_an_answer_rewraps_when_the_terminal_narrows() -> None:
    app = AnswerApp()
    async with app.run_test(size=(100, 30)) as pilot:
        answer = await stream(pilot, REPLY.content)
        wide = len(shown(answer))
        await pilot.resize_terminal(50, 30)
        await wait_for(pilot, lambda: answer.size.width < 50, "the answer to narrow")
        narrow = shown(answer)
        assert len(narrow) > wide
        assert all(len(line) <= answer.size.width for line in narrow)
        painted = BlockPainter(answer.size.width, markdown_theme({})).paint(TEXT)
        assert words(narrow) == words([line.text.rstrip() for line in painted])


async def test_an_answer_takes_the_new_theme_colours() -> None:
    app = AnswerApp()
    async with app.run_test(size=(80, 20)) as pilot:
        answer = await stream(pilot, ["# A heading\n\nText under it.\n"])

        def heading_colour() -> object:
            return next(seg.style.color for seg in answer.render_line(0) if seg.text.strip())

        dark = heading_colour()
        app.theme = "textual-light"
        await wait_for(pilot, lambda: heading_colour() != dark, "the heading to change colour")


async def test_selecting_answer_text_with_the_mouse_copies_it() -> None:
    app = AnswerApp()
    async with app.run_test(size=(80, 20)) as pilot:
        answer = await stream(pilot, ["Plain words to pick from.\n\nA second block.\n"])
        await pilot.mouse_down(answer, offset=(0, 0))
        await pilot.hover(answer, offset=(10, 0))
        await pilot.mouse_up(answer, offset=(10, 0))
        await pilot.pause()
        assert app.screen.get_selected_text() == "Plain words"
