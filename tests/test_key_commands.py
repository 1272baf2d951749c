"""`xrouter-tui key …` and the key in the keyring, run as a user runs them.

The program keeps its key in the test's own keyring file (see conftest.py); terminal dialogues
run on a real pseudo-terminal, where the program's hidden prompt turns echo off.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
from pathlib import Path

import pytest
from eth_account import Account

from tests.keyring_backend import FILE_VARIABLE, LOCKED_VARIABLE
from tests.test_cli import PROGRAM, run
from xrouter_tui.devserver import DevServerConfig, start_dev_server

# A deadline to give up by, never a measurement.
DEADLINE = 30.0


@pytest.fixture
def key() -> tuple[str, str]:
    account = Account.create()
    return bytes(account.key).hex(), account.address


@pytest.fixture
def router():
    with start_dev_server(DevServerConfig(network="base", reply_deltas=20)) as server:
        yield server


def on_terminal(*args: str, answers: list[tuple[str, str]]) -> tuple[int, str]:
    """Run the program on a pseudo-terminal; after each prompt text seen, type its answer.

    Returns the exit status and everything the terminal showed (the scrollback).
    """
    pid, leader = pty.fork()
    if pid == 0:  # the child: the pseudo-terminal is its controlling terminal
        os.execv(PROGRAM, [PROGRAM, *args])
    shown = b""
    pending = list(answers)
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], DEADLINE)
            assert ready, f"no output for {DEADLINE} s; so far: {shown.decode()!r}"
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child ended and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and pending[0][0].encode() in shown:
                os.write(leader, pending.pop(0)[1].encode() + b"\n")
    finally:
        os.close(leader)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def stored() -> dict[str, str]:
    path = Path(os.environ[FILE_VARIABLE])
    return json.loads(path.read_text()) if path.exists() else {}


def assert_clean(result: subprocess.CompletedProcess[str], secret: str) -> None:
    """One plain line at most on stderr, no traceback, and never the key."""
    printed = (result.stdout + result.stderr).lower()
    assert "traceback" not in printed
    assert secret.lower().removeprefix("0x") not in printed


def test_import_from_stdin_stores_the_key_and_show_prints_only_the_address(key):
    secret, address = key
    result = run("key", "import", stdin=f"0x{secret}\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == address
    assert_clean(result, secret)
    assert stored() == {"xrouter-tui/wallet-key": f"0x{secret}"}

    shown = run("key", "show")
    assert shown.returncode == 0 and shown.stdout.strip() == address
    assert_clean(shown, secret)


def test_import_on_a_terminal_reads_the_key_without_echoing_it(key):
    secret, address = key
    status, screen = on_terminal("key", "import", answers=[("Private key", secret.upper())])
    assert status == 0, screen
    assert address in screen
    # The hidden prompt turned echo off: the key never reached the scrollback.
    assert secret.lower() not in screen.lower()
    assert stored()["xrouter-tui/wallet-key"] == f"0x{secret}"


@pytest.mark.parametrize("bad", ["", "0x1234", "zz" * 32, "ab" * 31, "0" * 64])
def test_a_bad_key_is_a_one_line_error_and_stores_nothing(bad):
    result = run("key", "import", stdin=bad)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "private key" in result.stderr and "Traceback" not in result.stderr
    if bad:
        assert bad not in result.stderr
    assert stored() == {}


def test_a_key_on_the_command_line_is_refused_without_being_repeated(key):
    secret, _ = key
    result = run("key", "import", secret)
    assert result.returncode == 2
    assert "never from the command line" in result.stderr
    assert_clean(result, secret)
    assert stored() == {}


def test_generate_prints_the_address_and_how_to_fund_it_and_never_replaces_silently():
    first = run("key", "generate")
    assert first.returncode == 0, first.stderr
    address = first.stdout.strip()
    assert address.startswith("0x") and len(address) == 42
    assert "USDC on Base" in first.stderr and "No ETH is needed" in first.stderr
    key = stored()["xrouter-tui/wallet-key"]
    assert Account.from_key(key).address == address
    assert_clean(first, key)

    again = run("key", "generate")
    assert again.returncode == 2 and "--yes" in again.stderr and address in again.stderr
    assert stored()["xrouter-tui/wallet-key"] == key

    replaced = run("key", "generate", "--yes")
    assert replaced.returncode == 0 and replaced.stdout.strip() != address


def test_export_prints_the_key_only_on_a_terminal_after_the_word_is_typed(key):
    secret, address = key
    assert run("key", "import", stdin=secret).returncode == 0

    piped = run("key", "export")
    assert piped.returncode == 2 and "only on a terminal" in piped.stderr
    assert_clean(piped, secret)

    status, screen = on_terminal("key", "export", answers=[("Type 'export'", "yes")])
    assert status == 2 and "not shown" in screen and secret not in screen.lower()

    status, screen = on_terminal("key", "export", answers=[("Type 'export'", "export")])
    assert status == 0 and address in screen
    assert f"0x{secret}" in screen.lower()


def test_delete_asks_first_and_then_ask_explains_how_to_get_a_key(key, router):
    secret, address = key
    assert run("key", "import", stdin=secret).returncode == 0

    refused = run("key", "delete")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    status, screen = on_terminal("key", "delete", answers=[("Go ahead?", "n")])
    assert status == 2 and stored()
    status, screen = on_terminal("key", "delete", answers=[("Go ahead?", "y")])
    assert status == 0 and address in screen and stored() == {}

    result = run("ask", "--base-url", router.url, "hello")
    assert result.returncode == 2
    assert "xrouter-tui key import" in result.stderr and "key generate" in result.stderr
    assert router.state.payments == []


def test_ask_pays_with_the_key_in_the_keyring_and_the_environment_wins(key, router):
    secret, address = key
    assert run("key", "import", stdin=secret).returncode == 0
    result = run("ask", "--base-url", router.url, "hello")
    assert result.returncode == 0, result.stderr
    assert_clean(result, secret)

    other = Account.create()
    env_key = {"XROUTER_PRIVATE_KEY": bytes(other.key).hex()}
    shown = run("key", "show", env_extra=env_key)
    assert shown.stdout.strip() == other.address and "XROUTER_PRIVATE_KEY" in shown.stderr
    assert run("ask", "--base-url", router.url, "hi", env_extra=env_key).returncode == 0
    assert [payment.payer for payment in router.state.payments] == [address, other.address]


@pytest.mark.parametrize(
    ("env_extra", "words"),
    [
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}, "No keyring"),
        ({"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}, "No keyring"),
        ({"PYTHON_KEYRING_BACKEND": "tests.keyring_backend.PlaintextKeyring"}, "plain file"),
        ({LOCKED_VARIABLE: "1"}, "locked"),
    ],
)
def test_without_a_usable_keyring_every_command_says_what_to_do_and_writes_no_file(
    key, env_extra, words
):
    secret, _ = key
    for command, stdin in (("import", secret), ("generate", None), ("show", None)):
        result = run("key", command, stdin=stdin, env_extra=env_extra)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert words in result.stderr and "XROUTER_PRIVATE_KEY" in result.stderr
        assert_clean(result, secret)
    # Never a fallback to a file: the plain-file stand-in was refused before it wrote.
    assert stored() == {}
    ask = run("ask", "--base-url", "http://127.0.0.1:9", "hi", env_extra=env_extra)
    assert ask.returncode == 2 and words in ask.stderr
