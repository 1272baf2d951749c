"""What `xrouter-tui ask` writes on stdout: Markdown drawn on a terminal as the answer streams,
plain text to a pipe, the router's very text with --raw, one JSON document with --json.

The real program against the local router; a pseudo-terminal stands in for the user's terminal
(stdout on it, stderr to a pipe, so that what the terminal shows is the answer alone).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
import termios
import time

import pytest
from markdown_it import MarkdownIt

from tests import test_cli
from tests.test_cli import PROGRAM, assert_clean, run
from xrouter_tui.commands.ask_markdown import MarkdownAnswer
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.hostile import HOSTILE_TEXT, SAFE_WORD, markers_in
from xrouter_tui.devserver.reply import make_reply
from xrouter_tui.payments.networks import atomic_to_usd, usd_text

# test_cli's fixture: a fresh wallet key.
key = test_cli.key

SONNET = "anthropic/claude-3.5-sonnet"
DEADLINE = 30.0
# What Rich writes to style text (Select Graphic Rendition): the only escape `ask` may write.
SGR = re.compile(r"\x1b\[([0-9;]*)m")


@pytest.fixture
def router():
    # The local router on Base (by name, as X-Router), with its whole reply: a heading, a
    # paragraph, a list, a code block, a table.
    with start_dev_server(DevServerConfig(network="base")) as server:
        yield server


def expected_reply(prompt: str, deltas: int | None = None) -> str:
    """The local router's answer to `prompt`, as it sends it."""
    return make_reply(prompt, SONNET, deltas).text


def colours(line: str) -> set[str]:
    """The foreground colours the styles of `line` set (16, 256 or true colour)."""
    found = set()
    for match in SGR.finditer(line):
        parameters = match.group(1).split(";")
        index = 0
        while index < len(parameters):
            parameter = parameters[index]
            if parameter == "38":
                width = 3 if parameters[index + 1] == "5" else 5
                found.add(";".join(parameters[index : index + width]))
                index += width
                continue
            if parameter.isdigit() and (30 <= int(parameter) <= 37 or 90 <= int(parameter) <= 97):
                found.add(parameter)
            index += 1
    return found


class Terminal:
    """The program with its stdout on a pseudo-terminal of `columns` columns."""

    def __init__(
        self,
        *args: str,
        secret: str,
        columns: int = 100,
        stderr_too: bool = False,
    ):
        leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self.leader = leader
        self.shown = b""
        try:
            self.process = subprocess.Popen(
                [PROGRAM, "ask", *args],
                stdin=subprocess.DEVNULL,
                stdout=follower,
                stderr=follower if stderr_too else subprocess.PIPE,
                env={
                    **{k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLORTERM")},
                    "XROUTER_PRIVATE_KEY": secret,
                    "TERM": "xterm-256color",
                },
            )
        finally:
            os.close(follower)

    def read_until(self, wanted: bytes) -> None:
        """Read what the terminal shows until `wanted` is among it."""
        while wanted not in self.shown:
            assert self._read(), f"the program ended before showing {wanted!r}: {self.shown!r}"

    def finish(self) -> tuple[int, str, str]:
        """Read to the end: the exit code, what the terminal showed, and stderr."""
        while self._read():
            pass
        os.close(self.leader)
        stderr = ""
        if self.process.stderr is not None:
            stderr = self.process.stderr.read().decode()
            self.process.stderr.close()
        return self.process.wait(timeout=DEADLINE), self.shown.decode(), stderr

    def _read(self) -> bool:
        ready, _, _ = select.select([self.leader], [], [], DEADLINE)
        assert ready, f"no output for {DEADLINE} s; so far: {self.shown!r}"
        try:
            chunk = os.read(self.leader, 65536)
        except OSError:  # the program ended and closed the terminal
            return False
        self.shown += chunk
        return bool(chunk)


def on_terminal(router, secret: str, *args: str, **options) -> tuple[int, str, str]:
    terminal = Terminal("--base-url", router.url, *args, secret=secret, **options)
    return terminal.finish()


def plain(shown: str) -> str:
    """What the terminal shows, without the styles: the text a reader sees."""
    return SGR.sub("", shown).replace("\r\n", "\n")


def line_with(shown: str, text: str) -> str:
    """The one line of `shown` (styles kept) whose text contains `text`."""
    lines = [line for line in shown.replace("\r\n", "\n").split("\n") if text in SGR.sub("", line)]
    assert len(lines) == 1, (text, lines)
    return lines[0]


# -- on a terminal: Markdown ------------------------------------------------------------------


def test_on_a_terminal_the_answer_is_drawn_as_markdown(router, key):
    secret, _ = key
    code, shown, err = on_terminal(router, secret, "hello there")
    assert code == 0, err
    text = plain(shown)
    # The heading: its text styled, no `## ` left.
    assert "## " not in text
    assert re.search(r"\x1b\[[0-9;]*m *hello there", shown), shown[:200]
    # The list: bullets drawn, the bold text styled without its asterisks.
    assert "**" not in text and "•" in text
    assert "\x1b[1m" in line_with(shown, "Keep it simple:")
    # The code block: no fence, and its line of code coloured, token by token.
    assert "```" not in text
    code_line = line_with(shown, "def word_counts")
    assert len(colours(code_line)) >= 3, code_line
    # The table: drawn with a box line, cells in columns, no pipes.
    assert "─" * 10 in text and "|" not in text
    row = line_with(shown, "Read the question")
    assert "1 min" in row and re.search(r"1 +\S*Read the question", SGR.sub("", row))
    # Every block is there, in order, each once; the summary went to stderr, not the terminal.
    for words in ("A quick overview", "For example:", "Text beyond ASCII: naïve café", "In short"):
        assert text.count(words) == 1, words
    assert text.index("hello there") < text.index("def word_counts") < text.index("Try the")
    assert text.rstrip().endswith("In short: begin small, check, then grow.")
    assert err.strip().splitlines()[-1].startswith(f"{SONNET} · ")
    # Nothing but styles: no other escape sequence, no cursor movement, no redraw.
    assert markers_in(SGR.sub("", shown)) == []


def test_blocks_show_while_the_answer_still_streams(router, key):
    secret, _ = key
    router.config.delta_delay = 0.03
    terminal = Terminal("--base-url", router.url, "hello there", secret=secret)
    terminal.read_until(b"hello there")
    # The heading is on the terminal and the router is still sending the rest of the answer.
    assert router.state.completed_streams == 0
    terminal.read_until(b"word_counts")
    assert router.state.completed_streams == 0
    code, shown, err = terminal.finish()
    assert code == 0, err
    assert router.state.completed_streams == 1
    # Written once, top to bottom: every block once, nothing drawn again.
    text = plain(shown)
    assert text.count("word_counts(text") == 1
    assert text.count("Read the question") == 1


def test_the_progress_line_shows_below_the_answer_while_a_block_grows(router, key):
    secret, _ = key
    router.config.delta_delay = 0.02
    terminal = Terminal("--base-url", router.url, "hello there", secret=secret, stderr_too=True)
    # While the code block streams (drawn once it is closed), the count goes on below.
    terminal.read_until(b"For example:\r\n\r\x1b[2Kstreaming \xc2\xb7 ")
    code, shown, _ = terminal.finish()
    assert code == 0
    # What each line of the terminal ends up showing (a progress line is redrawn from the
    # line's start after clearing it): the answer and the summary, never a progress line left
    # behind nor one the answer was written after.
    screen = [line.rsplit("\r\x1b[2K", 1)[-1] for line in shown.split("\r\n")]
    assert not any("streaming · " in line for line in screen)
    assert screen[-2].startswith(f"{SONNET} · ") and screen[-1] == ""
    assert "def word_counts" in plain("\n".join(screen))


def test_rich_markup_in_an_answer_is_shown_as_written(router, key):
    secret, _ = key
    # The local router makes its heading of the question's words.
    code, shown, err = on_terminal(router, secret, "[bold red]not markup[/bold red] :smile: x")
    assert code == 0, err
    assert "[bold red]not markup[/bold red] :smile: x" in plain(shown)


def test_escapes_from_the_router_never_reach_the_terminal(router, key):
    secret, _ = key
    router.config.faults = {"escape-answer"}
    code, shown, err = on_terminal(router, secret, "hello")
    assert code == 0, err
    # Only the styles `ask` draws with: no title, clipboard, link, clear screen, bell, C1.
    assert markers_in(SGR.sub("", shown)) == []
    assert "pwned" not in shown and "evil.example" not in shown
    text = plain(shown)
    first_line = text.split("\n")[0]
    assert first_line.startswith(f"{SAFE_WORD} ") and "words" in first_line
    assert "split" not in first_line
    assert "## " not in text and "hello" in text  # the rest is drawn as Markdown


def test_a_failed_stream_shows_what_came_drawn(router, key):
    secret, _ = key
    router.config.faults = {"midstream-error"}
    router.config.fault_after = 12
    code, shown, err = on_terminal(router, secret, "hello there")
    assert code == 1
    assert "overloaded" in err and "was paid" in err
    came = "".join(make_reply("hello there", SONNET).content[:12])
    assert came.startswith("## hello there\n\n")
    # The heading drawn, and the paragraph still open when the stream failed written as far as
    # it came, on lines of its own.
    text = plain(shown)
    assert text.split("\n")[0].strip() == "hello there"
    assert " ".join(text.split()[2:]) == " ".join(came.split()[3:])
    assert text.endswith("\n")


def test_raw_on_a_terminal_is_the_routers_text(router, key):
    secret, _ = key
    router.config.faults = {"escape-answer"}
    code, shown, err = on_terminal(router, secret, "--raw", "hello")
    assert code == 0, err
    # Byte for byte as sent (the terminal turns each newline into CR LF), never drawn.
    assert shown.replace("\r\n", "\n") == HOSTILE_TEXT + expected_reply("hello")


# -- to a pipe: text as before ----------------------------------------------------------------


def test_a_pipe_gets_the_answer_as_plain_text(router, key):
    secret, _ = key
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_reply("hi")
    assert "\x1b" not in result.stdout
    assert_clean(result, secret)


def test_raw_to_a_pipe_is_unchanged(router, key):
    secret, _ = key
    env = {"XROUTER_PRIVATE_KEY": secret}
    result = run("ask", "--base-url", router.url, "--raw", "hi", env_extra=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected_reply("hi")


# -- --json -----------------------------------------------------------------------------------


def ask_json(router, secret: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = run(
        "ask", "--base-url", router.url, "--json", *args, env_extra={"XROUTER_PRIVATE_KEY": secret}
    )
    assert_clean(result, secret)
    return result, json.loads(result.stdout)  # the whole of stdout is one document


@pytest.mark.parametrize(("version", "network"), [(1, "base"), (2, "eip155:8453")])
def test_json_is_one_document_with_the_answer_and_its_payment(router, key, version, network):
    secret, address = key
    router.config.x402_version = version
    result, document = ask_json(router, secret, "hi")
    assert result.returncode == 0, result.stderr
    [payment] = router.state.payments
    assert payment.payer == address
    tokens_in, tokens_out = document.pop("tokens_in"), document.pop("tokens_out")
    assert isinstance(tokens_in, int) and isinstance(tokens_out, int) and tokens_out > 0
    assert document == {
        "answer": expected_reply("hi"),
        "model": SONNET,
        "amount_usd": usd_text(atomic_to_usd(payment.amount)),
        "network": network,
        "tx": payment.transaction,
        "conversation_id": 1,
        "status": "complete",
        "finish_reason": "stop",
    }
    assert re.fullmatch(r"0\.\d{6}", document["amount_usd"])
    # The summary line stays on stderr, with the same figures.
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith(f"{SONNET} · {tokens_in} in / {tokens_out} out tokens")
    assert f"${document['amount_usd']}" in summary and payment.transaction in summary
    # The conversation it names is the one the history keeps.
    listed = json.loads(run("history", "--json").stdout)
    assert [conversation["id"] for conversation in listed] == [1]


def test_json_keeps_the_answer_as_received_and_escapes_it(router, key):
    secret, _ = key
    router.config.faults = {"escape-answer"}
    result, document = ask_json(router, secret, "hello")
    assert result.returncode == 0, result.stderr
    assert document["answer"].startswith(HOSTILE_TEXT)  # what came, escapes and all
    assert markers_in(result.stdout) == []  # written as \u001b..., never raw


def test_json_without_history_has_no_conversation(router, key):
    secret, _ = key
    result, document = ask_json(router, secret, "--no-history", "hi")
    assert result.returncode == 0, result.stderr
    assert document["conversation_id"] is None and document["status"] == "complete"


def test_json_of_a_failed_stream_says_failed_with_the_error(router, key):
    secret, _ = key
    router.config.faults = {"midstream-error"}
    result, document = ask_json(router, secret, "hi")
    assert result.returncode == 1  # as without --json
    assert document["status"] == "failed"
    assert "overloaded" in document["error"] and "was paid" in document["error"]
    # What came before the failure, and the payment the router took for it.
    assert document["answer"] == "".join(make_reply("hi", SONNET).content[:5])
    [payment] = router.state.payments
    assert document["amount_usd"] == usd_text(atomic_to_usd(payment.amount))
    assert document["network"] == "base" and document["conversation_id"] == 1
    # The error line is on stderr too, as it was.
    assert result.stderr.strip() == f"xrouter-tui: {document['error']}"


def test_json_of_a_refused_payment_has_nothing_paid(router, key):
    secret, _ = key
    result, document = ask_json(router, secret, "--max-price", "0.0001", "hi")
    assert result.returncode == 3
    assert document["status"] == "failed" and "--max-price" in document["error"]
    assert document["answer"] == ""
    for field in ("amount_usd", "network", "tx", "tokens_in", "tokens_out", "finish_reason"):
        assert document[field] is None, field
    assert router.state.paid_requests == 0


def test_json_of_an_interrupted_answer_says_stopped(router, key):
    secret, _ = key
    router.config.reply_deltas = 400
    router.config.delta_delay = 0.02
    process = subprocess.Popen(
        [PROGRAM, "ask", "--base-url", router.url, "--json", "tell me a long story"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XROUTER_PRIVATE_KEY": secret},
    )
    started = time.monotonic()
    while router.state.open_streams == 0 and time.monotonic() - started < DEADLINE:
        time.sleep(0.02)
    time.sleep(0.5)  # some of the answer has come
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 130, err
    document = json.loads(out)
    assert document["status"] == "stopped" and "interrupted" in document["error"]
    full = expected_reply("tell me a long story", 400)
    assert document["answer"] and full.startswith(document["answer"]) and document["answer"] != full


def test_json_and_raw_do_not_go_together():
    result = run("ask", "--json", "--raw", "hi")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr and result.stdout == ""


# -- the drawing itself: a block at a time ----------------------------------------------------


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (Rich then styles what it writes)."""

    def isatty(self) -> bool:
        return True


def drawn(pieces: list[str], columns: int = 60) -> tuple[str, list[int]]:
    """The answer in `pieces` drawn as `ask` draws it; and how much was written after each."""
    out = FakeTerminal()
    answer = MarkdownAnswer(out, {"TERM": "xterm-256color", "COLUMNS": str(columns)})
    written = []
    for piece in pieces:
        answer.write(piece)
        written.append(len(out.getvalue()))
    answer.end()
    return out.getvalue(), written


def test_a_long_paragraph_shows_its_lines_before_it_ends():
    paragraph = (
        "A paragraph with **bold words** and `code` that keeps going, line after line, so "
        "that a reader sees it grow instead of waiting for its end. "
    ) * 4
    words = re.findall(r"\S+\s*", paragraph)
    whole, written = drawn(words)
    # Lines came out while the paragraph was still arriving, and never changed after.
    lines_out_early = whole[: written[len(words) // 2]].count("\n")
    assert lines_out_early >= 3
    assert whole == drawn([paragraph])[0]
    assert "**" not in plain(whole) and "`" not in plain(whole)


def test_an_unclosed_style_holds_its_lines_until_it_closes():
    text = "Plain words to start with, then **a bold run that goes on " + "and on " * 20 + "end**."
    pieces = re.findall(r"\S+\s*", text)
    whole, written = drawn(pieces, columns=40)
    # Nothing is written while `**` may still restyle what follows it.
    assert written[-2] == 0
    assert "**" not in plain(whole) and "\x1b[1m" in whole
    assert "**" not in plain(whole)


def test_a_paragraph_whose_lines_are_out_stays_a_paragraph():
    # An underline after a paragraph makes a heading of it in Markdown; its first lines are on
    # the screen already, so it stays a paragraph and no word is lost or written twice.
    words = "one two three four five six seven eight nine ten eleven twelve thirteen"
    whole, _ = drawn([*re.findall(r"\S+\s*", words + "\n"), "===\n", "\n", "after\n"], 30)
    text = plain(whole)
    for word in words.split():
        assert re.findall(rf"\b{word}\b", text) == [word], word
    assert text.rstrip().endswith("after")


def test_pieces_of_any_size_draw_each_block_once_one_line_apart():
    rng = random.Random(17)
    reply = make_reply("a question", SONNET, min_bytes=6000).text
    extra = (
        "A paragraph with *emphasis*, `code`, a [link](http://example.com/x), 2 * 3, "
        "snake_case and &amp; entities, long enough to wrap across several lines of text.\n\n"
        "1. first\n2. second with **bold**\n\n> a quote that goes on for a while, on and on\n"
        "\n- a list\n lazily continued **here**\n- and on\n\n# A heading\nRight below it, "
        "a paragraph long enough to wrap, then a rule.\n\n---\n\n    indented code\n"
    )
    for text in (reply, extra * 3):
        # Each top-level block drawn alone, one empty line between two: what the chat shows.
        blocks = [
            "\n".join(text.split("\n")[token.map[0] : token.map[1]])
            for token in MarkdownIt("commonmark").enable("table").parse(text)
            if token.level == 0 and token.nesting >= 0 and token.map is not None
        ]
        expected = "\n".join(drawn([block])[0] for block in blocks)
        assert drawn([text])[0] == expected
        for _ in range(5):
            pieces, start = [], 0
            while start < len(text):
                size = rng.randint(1, 12)
                pieces.append(text[start : start + size])
                start += size
            assert drawn(pieces)[0] == expected
