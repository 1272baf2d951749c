"""The real `xrouter-tui --demo`, in a real terminal (tmux), driven only by keys.

One test proves the whole chat works as a user meets it, outside Textual's test harness: the
installed console script starts, draws the chat, pays for and streams a Markdown answer, ends it
with the dim line of what was paid, switches model with F2 (the status bar shows it; a demo's
choice never reaches `config.toml` in the config folder the test chose), stops a streaming
answer with Esc (marked stopped, with what was paid), and quits with ctrl+q, exiting 0.

tmux runs on a private server (its own socket and no config file) so that nothing of the
developer's tmux is touched, and is killed at the end whatever happens. The local router the
demo starts listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROGRAM = Path(sys.executable).with_name("xrouter-tui")
SESSION = "e2e"
WIDTH, HEIGHT = 120, 40
# A deadline to give up by, never a measurement: slow machines just take longer.
DEADLINE = 30.0
POLL = 0.05
# The last line of every demo answer (xrouter_tui/devserver/reply.py).
REPLY_END = "In short: begin small, check, then grow."
# The dim line under an answer: what was charged up front.
PAID = re.compile(r"charged \$[0-9.]+ upfront")
TRANSACTION = re.compile(r"tx 0x[0-9a-f]{64}")
FIRST_MODEL = "anthropic/claude-3.5-sonnet"
OTHER_MODEL = "openai/gpt-4o-mini"
# Esc must land while the answer streams (about 2-3 s in the demo). A machine so slow that the
# whole answer arrives before the key does gets another try, rather than a false failure.
STOP_ATTEMPTS = 3
# Box drawing, block elements and the like: the frames Textual draws around text. Taking them
# out lets a phrase wrapped across two lines of a bordered box be found as one.
_FRAME = re.compile(r"[\u2500-\u259f]")


@dataclass(frozen=True, slots=True)
class Tmux:
    """A private tmux server and the one session the program runs in."""

    binary: str
    socket_name: str
    # Where the program's exit status is written when it ends (see `start`).
    status_file: Path

    def run(self, *args: str) -> str:
        result = self._call(*args)
        assert result.returncode == 0, f"tmux {' '.join(args)}: {result.stderr.strip()}"
        return result.stdout

    def _call(self, *args: str) -> subprocess.CompletedProcess[str]:
        # -f /dev/null: the developer's ~/.tmux.conf must not change keys or sizes.
        return subprocess.run(
            [self.binary, "-L", self.socket_name, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=_tmux_env(),
            timeout=DEADLINE,
        )

    def start(self, command: list[str]) -> None:
        """Run `command` in a detached session of a fixed size."""
        # A shell around the program writes its exit status down. tmux's own
        # #{pane_dead_status} cannot be relied on: Debian's tmux (3.3a, built with utempter)
        # briefly resets SIGCHLD while it forks the utempter helper as the pane's terminal
        # closes, and when the program's exit lands in that moment tmux never reaps it, so the
        # status stays empty for good.
        keep_status = 'status_file=$1; shift; "$@"; echo "$?" > "$status_file"'
        self.run(
            # The pane, and what is on it, stays after the program ends.
            *("set-option", "-g", "remain-on-exit", "on", ";"),
            # No tmux status line: the program gets all WIDTH x HEIGHT cells.
            *("set-option", "-g", "status", "off", ";"),
            *("new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT)),
            # Several arguments: tmux runs them as they are; only `keep_status` is shell code.
            *("sh", "-c", keep_status, "sh", str(self.status_file), *command),
        )

    def type(self, text: str) -> None:
        # -l: the text is typed as it is, never read as key names ("Enter", "F2").
        self.run("send-keys", "-t", SESSION, "-l", text)

    def press(self, *keys: str) -> None:
        self.run("send-keys", "-t", SESSION, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", SESSION)

    def exit_status(self) -> int | None:
        """The program's exit status once it has ended, else None."""
        try:
            written = self.status_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        # The shell may have created the file and not yet written to it.
        return int(written) if written else None

    def kill(self) -> None:
        """Stop the server, in whatever state it is, and remove its socket (tmux leaves it)."""
        socket = self._call("display-message", "-p", "#{socket_path}").stdout.strip()
        self._call("kill-server")
        if socket:
            Path(socket).unlink(missing_ok=True)


def _tmux_env() -> dict[str, str]:
    # Run from inside tmux, $TMUX names the developer's server; -L already picks ours.
    return {name: value for name, value in os.environ.items() if name != "TMUX"}


def _tmux_binary() -> str:
    binary = shutil.which("tmux")
    if binary is None:
        message = "tmux is not installed (apt-get install tmux)"
        # CI installs tmux and sets this: there, a missing tmux is a broken machine, not a skip.
        if os.environ.get("XROUTER_REQUIRE_TMUX") == "1":
            pytest.fail(f"{message}, and XROUTER_REQUIRE_TMUX=1")
        pytest.skip(message)
    return binary


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    name = f"xrouter-tui-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    server = Tmux(_tmux_binary(), name, tmp_path / "exit-status")
    try:
        yield server
    finally:
        server.kill()


def program_command(home: Path, *extra: str) -> list[str]:
    """`xrouter-tui --demo` with a known, minimal environment.

    A tmux server hands its panes its own environment, not the test's: `env -i` starts from
    nothing and passes exactly what the program needs, including the config and data folders
    conftest.py chose, so the developer's settings, key and router stay out of it.
    """
    assert PROGRAM.is_file(), f"{PROGRAM} is missing: pip install -e '.[test]'"
    assignments = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "xterm-256color",
        "XROUTER_CONFIG_DIR": os.environ["XROUTER_CONFIG_DIR"],
        "XROUTER_DATA_DIR": os.environ["XROUTER_DATA_DIR"],
    }
    return [
        "env",
        "-i",
        *(f"{name}={value}" for name, value in assignments.items()),
        str(PROGRAM),
        "--demo",
        *extra,
    ]


def words(screen: str) -> str:
    """The screen's text without frames, one space between words."""
    return " ".join(_FRAME.sub(" ", screen).split())


def status_line(screen: str) -> str:
    """The status bar: the lowest line with the demo tag (the footer of keys is under it)."""
    lines = [line for line in screen.splitlines() if line.lstrip().startswith("DEMO ")]
    return lines[-1] if lines else ""


def status_model_and_state(screen: str) -> tuple[str, str]:
    # "DEMO  <model>  <state>  …": the left end, which a notification never covers.
    fields = status_line(screen).split()
    return (fields[1], fields[2]) if len(fields) >= 3 else ("", "")


def state(screen: str) -> str:
    """What the chat is doing, as the status bar says: idle, paying, streaming, stopped, error."""
    return status_model_and_state(screen)[1]


def wait_for(tmux: Tmux, condition: Callable[[str], bool], what: str) -> str:
    """Poll the screen until `condition` holds for it; return that screen."""
    screen = ""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        screen = tmux.screen()
        if condition(screen):
            return screen
        if tmux.exit_status() is not None:
            break  # the program ended: no point waiting, and the screen says why
        time.sleep(POLL)
    raise AssertionError(f"waited in vain for {what}; the screen:\n{screen}")


def ask(tmux: Tmux, prompt: str) -> None:
    tmux.type(prompt)
    tmux.press("Enter")


def stop_an_answer(tmux: Tmux) -> tuple[str, str]:
    """Send a prompt and press Esc while its answer streams: the prompt, and the screen once
    the stopped answer's dim line can be read."""
    for attempt in range(1, STOP_ATTEMPTS + 1):
        prompt = f"Stop this answer early, try {attempt}"
        ask(tmux, prompt)
        wait_for(tmux, lambda screen: state(screen) == "streaming", "the state streaming")
        tmux.press("Escape")
        screen = wait_for(
            tmux,
            lambda screen: state(screen) in ("stopped", "idle"),
            "the answer to end after Esc",
        )
        if state(screen) == "stopped":
            # A notification may lie over the dim line for a few seconds: wait until it is gone.
            screen = wait_for(
                tmux,
                lambda screen: (
                    "stopped ·" in last_turn(screen)[0]
                    and PAID.search(last_turn(screen)[0]) is not None
                ),
                "the stopped answer's dim line: stopped, and what was paid",
            )
            return prompt, screen
    raise AssertionError(f"every answer ended before Esc reached it; the screen:\n{screen}")


def last_turn(screen: str) -> tuple[str, bool]:
    """The words of the last question and its answer, and whether the question is on screen
    (a long answer pushes it off the top). The status bar under them is left out."""
    text = words(screen)
    end = text.rfind(" DEMO ")
    start = text.rfind(" You ", 0, end)
    return text[max(start, 0) : end].strip(), start >= 0


def test_the_demo_chat_in_a_real_terminal(tmux: Tmux, tmp_path: Path) -> None:
    tmux.start(program_command(tmp_path / "home"))

    screen = wait_for(
        tmux,
        lambda screen: "Ask anything" in screen and status_line(screen) != "",
        "the chat to start (the prompt box and the DEMO status bar)",
    )
    assert status_model_and_state(screen) == (FIRST_MODEL, "idle"), screen

    # A turn: the answer streams in as Markdown and ends with what was paid, on the chain.
    ask(tmux, "Explain tmux in one page")
    screen = wait_for(
        tmux,
        # The dim line too: the demo's welcome notification may cover it for a few seconds.
        lambda screen: (
            REPLY_END in screen
            and state(screen) == "idle"
            and PAID.search(words(screen)) is not None
            and TRANSACTION.search(words(screen)) is not None
        ),
        "the whole answer, its dim line of what was paid, and the state idle",
    )
    assert "def word_counts(text: str)" in screen, screen  # the code block, drawn

    # F2, a filter, Enter: the model picked is the status bar's from now on.
    tmux.press("F2")
    wait_for(tmux, lambda screen: "Type to filter" in screen, "the model picker")
    tmux.type("gpt-4o-mini")
    # Enter only once the list is down to the match, as a user would wait to see it.
    wait_for(
        tmux,
        lambda screen: OTHER_MODEL in screen and "claude-3-opus" not in screen,
        "the picker's list filtered down to " + OTHER_MODEL,
    )
    tmux.press("Enter")
    screen = wait_for(
        tmux,
        lambda screen: status_model_and_state(screen)[0] == OTHER_MODEL,
        f"{OTHER_MODEL} in the status bar",
    )
    assert "Type to filter" not in screen, screen  # the picker closed
    # A demo's choice is not the user's: nothing reaches config.toml.
    config = Path(os.environ["XROUTER_CONFIG_DIR"]) / "config.toml"
    assert not config.exists() or OTHER_MODEL not in config.read_text(encoding="utf-8")

    # Esc mid-answer: what arrived stays, marked stopped, with what was paid.
    prompt, screen = stop_an_answer(tmux)
    assert status_model_and_state(screen) == (OTHER_MODEL, "stopped"), screen
    turn, whole = last_turn(screen)
    assert REPLY_END not in turn, screen  # it really was cut short
    if whole:
        # The answer's box is titled with the model that wrote it: the one just picked.
        assert turn.startswith(f"You {prompt} {OTHER_MODEL} "), screen

    # ctrl+q quits, cleanly.
    tmux.press("C-q")
    deadline = time.monotonic() + DEADLINE
    while (status := tmux.exit_status()) is None and time.monotonic() < deadline:
        time.sleep(POLL)
    assert status == 0, f"exit status {status}; the screen:\n{tmux.screen()}"


def session_spent(screen: str) -> str:
    """The session's total as the status bar shows it ("" before the bar is drawn)."""
    found = re.search(r"session (\$[0-9.]+)", status_line(screen))
    return found.group(1) if found else ""


def quit_program(tmux: Tmux) -> None:
    tmux.press("C-q")
    deadline = time.monotonic() + DEADLINE
    while (status := tmux.exit_status()) is None and time.monotonic() < deadline:
        time.sleep(POLL)
    assert status == 0, f"exit status {status}; the screen:\n{tmux.screen()}"


def test_reading_back_regenerating_and_going_on_by_keyboard(tmux: Tmux, tmp_path: Path) -> None:
    """PageUp and ctrl+Home read a long conversation back while the prompt keeps the keys;
    alt+Up, r and Enter regenerate an answer into a fork; `-c` opens it again after a restart."""
    tmux.start(program_command(tmp_path / "home"))
    wait_for(tmux, lambda screen: "Ask anything" in screen, "the chat to start")
    spent = session_spent(tmux.screen())
    for number in (1, 2):
        ask(tmux, f"Question number {number} about tmux")
        # Done when the session's total has grown by this answer and the chat is idle again:
        # the question typed in the prompt, under the last answer, is no sign of a new one.
        screen = wait_for(
            tmux,
            lambda screen, before=spent: (
                REPLY_END in screen
                and state(screen) == "idle"
                and session_spent(screen) not in ("", before)
            ),
            f"answer {number}",
        )
        spent = session_spent(screen)
    first_question = "You Question number 1 about tmux"
    assert first_question not in words(tmux.screen())  # scrolled off by the answers

    # PageUp goes back a page at a time; ctrl+Home to the very first message; ctrl+End back.
    before = tmux.screen()
    tmux.press("PPage")
    wait_for(tmux, lambda screen: screen != before, "the log to scroll up a page")
    tmux.press("C-Home")
    wait_for(tmux, lambda screen: first_question in words(screen), "the first question")
    tmux.type("x")  # the prompt still has the keys
    wait_for(tmux, lambda screen: "Ask anything" not in screen, "x typed in the prompt")
    tmux.press("BSpace", "C-End")
    wait_for(
        tmux,
        lambda screen: first_question not in words(screen) and REPLY_END in screen,
        "the bottom again",
    )

    # The newest answer, selected by alt+Up (the footer then shows what its keys do),
    # regenerated by r then Enter, in a fork. A loaded machine may deliver alt+Up's escape
    # sequence in two reads, taken for Esc: the key is pressed again, as a user would.
    for _ in range(3):
        tmux.press("M-Up")
        try:
            wait_for(tmux, lambda screen: "Regenerate" in screen, "the answer selected")
            break
        except AssertionError:
            continue
    tmux.press("r")
    wait_for(tmux, lambda screen: "Fork" in screen, "the fork notice")
    tmux.press("Enter")
    screen = wait_for(
        tmux,
        lambda screen: REPLY_END in screen and state(screen) == "idle" and "(fork)" not in screen,
        "the regenerated answer",
    )
    assert "Question number 2 about tmux" in words(screen)
    quit_program(tmux)

    # Started again with -c: the latest conversation, the fork, is on screen.
    tmux.kill()
    again = Tmux(tmux.binary, tmux.socket_name + "-c", tmp_path / "exit-status-c")
    try:
        again.start(program_command(tmp_path / "home", "-c"))
        screen = wait_for(
            again,
            lambda screen: "Question number 2 about tmux" in words(screen),
            "the latest conversation reopened",
        )
        assert "Question number 1 about tmux" in words(screen) or REPLY_END in screen
        quit_program(again)
    finally:
        again.kill()
