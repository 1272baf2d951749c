"""The command line against a hostile local router: what reaches the user's terminal, a pipe,
a spreadsheet.

Most commands run in this process (`cli.main` with the test's own streams: the subject is what
is written, not the process); a pseudo-terminal stands in for the user's terminal where the
program behaves differently on one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from eth_account import Account

from xrouter_tui import cli
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.hostile import (
    FORMULA_TRANSACTION,
    HOSTILE_MODEL_ID,
    HOSTILE_TEXT,
    SAFE_WORD,
    markers_in,
)
from xrouter_tui.safe_text import MALFORMED
from xrouter_tui.ui.clipboard import copy_with_system_tool

# A command that reads the settings before anything else (the port is never reached when they
# are refused).
NEEDS_SETTINGS = ("models", "--base-url", "http://127.0.0.1:9")


@pytest.fixture
def secret() -> str:
    return Account.create().key.hex().removeprefix("0x")


@pytest.fixture
def router():
    with start_dev_server(DevServerConfig(network="base", reply_deltas=8)) as server:
        yield server


class Run:
    """One command's exit code and what it wrote."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    @property
    def shown(self) -> str:
        return self.out + self.err


def run(*argv: str, secret: str | None = None, stdin: str = "") -> Run:
    env = dict(os.environ)
    if secret:
        env["XROUTER_PRIVATE_KEY"] = secret
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), env=env, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    assert "Traceback" not in err.getvalue()
    return Run(code, out.getvalue(), err.getvalue())


def ask(router, secret: str, *extra: str) -> Run:
    return run("ask", "--base-url", router.url, *extra, "hello", secret=secret)


def on_terminal(*argv: str, secret: str) -> tuple[int, bytes]:
    """Run with stdout on a pseudo-terminal (stderr to a buffer); the code and the terminal's
    bytes."""
    leader, follower = pty.openpty()
    seen = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    env = {**os.environ, "XROUTER_PRIVATE_KEY": secret}
    with open(follower, "w", encoding="utf-8", closefd=True) as terminal:
        code = cli.main(
            list(argv), env=env, stdin=io.StringIO(""), stdout=terminal, stderr=io.StringIO()
        )
    reader.join(timeout=10)
    os.close(leader)
    return code, bytes(seen)


def test_an_answer_with_escapes_reaches_a_terminal_as_plain_words(router, secret):
    router.config.faults = {"escape-answer"}
    code, shown = on_terminal("ask", "--base-url", router.url, "hello", secret=secret)
    assert code == 0
    # On a terminal the answer is drawn as Markdown: its only escapes are its styles (SGR).
    styles = re.compile(rb"\x1b\[[0-9;]*m")
    assert markers_in(styles.sub(b"", shown)) == []
    text = styles.sub(b"", shown).decode()
    assert f"{SAFE_WORD} " in text and "words" in text and "split" not in text
    assert router.state.paid_requests == 1


def test_a_pipe_gets_no_escapes_unless_raw_is_asked_for(router, secret):
    router.config.faults = {"escape-answer"}
    plain = ask(router, secret)
    assert plain.code == 0
    assert markers_in(plain.shown) == []
    assert plain.out.startswith(f"{SAFE_WORD} ")
    raw = ask(router, secret, "--raw")
    assert raw.code == 0
    assert raw.out.startswith(HOSTILE_TEXT)  # byte for byte, as the router sent it
    assert markers_in(raw.err) == []  # the summary is never raw


def test_the_history_keeps_the_answer_as_sent_and_export_shows_it_safely(router, secret):
    router.config.faults = {"escape-answer"}
    assert ask(router, secret).code == 0
    markdown = run("export", "1")
    assert markdown.code == 0
    assert markers_in(markdown.out) == [] and SAFE_WORD in markdown.out
    document = json.loads(run("export", "1", "--format", "json").out)
    assert document["messages"][-1]["content"].startswith(HOSTILE_TEXT)


@pytest.mark.parametrize(
    "fault", ["escape-error", "escape-midstream-error", "escape-challenge", "escape-receipt"]
)
def test_router_words_on_stderr_are_one_safe_line(router, secret, fault):
    router.config.faults = {fault}
    result = ask(router, secret)
    assert result.code == (0 if fault in ("escape-challenge", "escape-receipt") else 1)
    assert markers_in(result.shown) == []
    (line,) = result.err.splitlines()  # one line, whatever the router put in its words
    if result.code:
        assert line.startswith("xrouter-tui: ") and f"{SAFE_WORD} click words {SAFE_WORD}" in line
    else:
        assert " · tx " in line


def test_models_table_shows_hostile_names_plainly_and_json_keeps_them(router):
    router.config.faults = {"escape-models"}
    table = run("models", "--base-url", router.url)
    assert table.code == 0
    assert markers_in(table.shown) == []
    assert f"hostile/{SAFE_WORD}-model" in table.out
    listed = run("models", "--base-url", router.url, "--json")
    assert markers_in(listed.out) == []  # JSON escapes them: a terminal shows \u001b, not ESC
    assert HOSTILE_MODEL_ID in [model["id"] for model in json.loads(listed.out)]


@pytest.mark.parametrize("fault", ["escape-receipt", "receipt-newline", "receipt-u2028"])
def test_a_malformed_transaction_is_shown_as_malformed(router, secret, fault):
    router.config.faults = {fault}
    result = ask(router, secret)
    assert result.code == 0
    assert f"tx {MALFORMED}" in result.err
    table = run("spend")
    assert MALFORMED in table.out and markers_in(table.out) == []
    assert "X-Injected" not in table.out
    assert [payment["status"] for payment in json.loads(run("spend", "--json").out)["payments"]]


def test_spend_csv_never_starts_a_cell_with_a_formula(router, secret):
    router.config.faults = {"formula-receipt"}
    assert ask(router, secret).code == 0
    router.config.faults = {"reject-payment"}
    router.config.reject_reason = "=cmd|' /C calc'!A0"
    assert ask(router, secret).code != 0
    rows = list(csv.reader(io.StringIO(run("spend", "--csv").out)))
    cells = [cell for row in rows[1:] for cell in row]
    assert FORMULA_TRANSACTION not in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert any(cell.startswith("'=cmd") for cell in cells)


def test_a_timeout_that_is_not_a_number_is_a_config_error(isolated_environment):
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text("connect_timeout = nan\n")
    result = run(*NEEDS_SETTINGS)
    assert result.code == 2
    assert "connect_timeout" in result.err and len(result.err.splitlines()) == 1


def test_a_config_that_links_to_nothing_is_an_error_not_the_defaults(isolated_environment):
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").symlink_to(isolated_environment / "dotfiles" / "xrouter.toml")
    result = run(*NEEDS_SETTINGS)
    assert result.code == 2
    assert "does not exist" in result.err and len(result.err.splitlines()) == 1


def test_a_config_folder_that_cannot_be_read_is_one_line(isolated_environment):
    # A file where the folder should be: the same OSError path as a folder without permission,
    # which cannot be made for root (the tests may run as root).
    (isolated_environment / "config").write_text("not a folder")
    result = run(*NEEDS_SETTINGS)
    assert result.code == 2
    assert "cannot be read" in result.err and len(result.err.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_a_config_folder_without_permission_is_one_line(isolated_environment):
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text("max_per_request_usd = 0.01\n")
    config.chmod(0)
    try:
        result = run(*NEEDS_SETTINGS)
    finally:
        config.chmod(0o700)
    assert result.code == 2 and "cannot be read" in result.err


def test_a_clipboard_tool_never_sees_the_key(tmp_path, secret):
    seen = tmp_path / "environment.json"
    dump = f"import json, os; open({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))"
    env = {**os.environ, "XROUTER_PRIVATE_KEY": secret, "XROUTER_PROXY_TOKEN": "t0ken"}
    assert asyncio.run(copy_with_system_tool("copied", [sys.executable, "-c", dump], env))
    child = json.loads(seen.read_text())
    assert "XROUTER_PRIVATE_KEY" not in child and secret not in seen.read_text()
    assert child["PATH"] == os.environ["PATH"]  # the rest of the environment is passed on


# The process itself is the subject of the last two: how it ends when its reader goes away or
# the user presses Ctrl+C before it has loaded.
PROGRAM = str(Path(sys.executable).with_name("xrouter-tui"))


def test_a_listing_whose_reader_went_away_ends_quietly():
    process = subprocess.Popen(
        [PROGRAM, "history", "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # gone before the program writes a byte (`| head -0`)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0
    assert err == b""


def test_ctrl_c_while_starting_is_one_line_and_exit_130():
    process = subprocess.Popen(
        [PROGRAM, "ask", "--demo"],  # reads the prompt from stdin, which never ends
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.2)  # within the imports, or waiting on stdin on a faster start: either is asked
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.decode().splitlines() == ["xrouter-tui: interrupted."]
    assert out == b""
