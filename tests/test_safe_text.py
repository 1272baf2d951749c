"""The one gate for router-supplied text: every nasty sequence, whole or cut between pieces."""

from __future__ import annotations

import base64

import pytest

from xrouter_tui.safe_text import (
    MALFORMED,
    TerminalFilter,
    csv_cell,
    one_line,
    shown_tx,
    terminal_text,
    valid_tx,
)

CLIPBOARD = "\x1b]52;c;" + base64.b64encode(b"rm -rf ~").decode() + "\x07"
NASTY = {
    "window title (OSC 0, BEL)": "\x1b]0;pwned\x07",
    "window title (OSC 2, ST)": "\x1b]2;pwned\x1b\\",
    "clipboard (OSC 52)": CLIPBOARD,
    "link (OSC 8)": "\x1b]8;;http://evil.example\x1b\\",
    "clear screen (CSI)": "\x1b[2J",
    "colour (CSI)": "\x1b[31;1m",
    "cursor home (CSI)": "\x1b[H",
    "private mode (CSI ?)": "\x1b[?1049h",
    "C1 CSI": "\x9b2J",
    "C1 OSC": "\x9d0;pwned\x9c",
    "DCS": "\x1bPq#0;2;0;0;0\x1b\\",
    "APC": "\x1b_payload\x1b\\",
    "charset (ESC ( 0)": "\x1b(0",
    "reset (ESC c)": "\x1bc",
    "bell": "\x07",
    "backspace": "\x08\x08\x08",
    "NUL": "\x00",
    "DEL": "\x7f",
    "bidi override": "\u202e",
    "bidi isolate": "\u2066",
}
C1 = tuple(chr(c) for c in range(0x80, 0xA0))
UNSAFE = ("\x1b", "\x07", "\x08", "\x00", "\x7f", "\u202e", "\u2066", *C1)


def assert_safe(text: str) -> None:
    found = [repr(c) for c in UNSAFE if c in text]
    assert not found, f"{found} in {text!r}"


@pytest.mark.parametrize("sequence", NASTY.values(), ids=NASTY.keys())
def test_every_sequence_is_removed_and_the_text_around_it_stays(sequence):
    shown = terminal_text(f"before {sequence}after")
    assert_safe(shown)
    assert shown == "before after"


@pytest.mark.parametrize("sequence", NASTY.values(), ids=NASTY.keys())
def test_a_sequence_cut_anywhere_between_pieces_is_removed_whole(sequence):
    text = f"safe {sequence}text"
    for cut in range(1, len(text)):
        safe = TerminalFilter()
        shown = safe.feed(text[:cut]) + safe.feed(text[cut:]) + safe.flush()
        assert shown == "safe text", (cut, shown)
    one_by_one = TerminalFilter()
    assert "".join(one_by_one.feed(c) for c in text) + one_by_one.flush() == "safe text"


def test_newlines_and_tabs_stay_and_a_lone_carriage_return_only_where_asked():
    assert terminal_text("a\tb\nc\r\nd") == "a\tb\nc\r\nd"
    # On a terminal a lone CR moves back over what was written: "rm -rf ~" hidden by "ls".
    assert terminal_text("rm -rf ~\rls      ") == "rm -rf ~ls      "
    assert terminal_text("50%\r100%", keep_cr=True) == "50%\r100%"
    safe = TerminalFilter(keep_cr=True)
    assert safe.feed("end\r") + safe.flush() == "end\r"


def test_plain_text_and_unicode_pass_untouched():
    text = "## Prices\n\n| € | 日本 | emoji 🎉 |\n```python\nprint('\\x1b')\n```\n"
    assert terminal_text(text) is text


def test_an_unterminated_string_hides_no_more_than_a_bounded_stretch():
    shown = terminal_text("start \x1b]0;" + "x" * 10_000 + " the rest of the answer")
    assert shown.startswith("start ")
    assert shown.endswith(" the rest of the answer")
    assert len(shown) < 10_000


def test_one_line_folds_whitespace_and_cuts_with_an_ellipsis():
    assert one_line("error:\n  \x1b[2Jsomething\tbad\r\n") == "error: something bad"
    assert one_line("x" * 50, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil.example","click")',
        "=cmd|' /C calc'!A0",
        "+1+2",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "  =1",
    ],
)
def test_a_csv_cell_is_never_a_formula(value):
    cell = csv_cell(value)
    assert cell.startswith("'")
    assert_safe(cell)


def test_a_csv_cell_keeps_ordinary_values():
    assert csv_cell("anthropic/claude-3.5-sonnet") == "anthropic/claude-3.5-sonnet"
    assert csv_cell("0x" + "ab" * 32) == "0x" + "ab" * 32


def test_only_a_real_hash_is_a_transaction():
    good = "0x" + "0123456789abcdefABCDEF" * 2 + "0123456789abcdefABCD"
    assert len(good) == 66 and valid_tx(good) == good and shown_tx(good) == good
    for bad in (
        good + "\x1b]0;pwned\x07",
        good[:-1],
        good + "\r\nX-Evil: 1",
        good + "\u2028",
        "=HYPERLINK(1)",
        "0x" + "g" * 64,
        None,
        42,
    ):
        assert valid_tx(bad) is None
        assert shown_tx(bad) == MALFORMED
