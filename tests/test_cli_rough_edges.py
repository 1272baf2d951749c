"""The command line's rough edges a new user meets: help that says what a command is for, a
mistyped option answered with that command's usage, and listings piped into `head` that end
quietly. The real program, in a real shell pipeline where the pipe is the subject."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import replace

import pytest

from tests import test_cli
from tests.test_cli import PROGRAM, run
from tests.test_store import PAYMENT
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store

# test_cli's fixture: the local router on Base (by name).
router = test_cli.router


@pytest.mark.parametrize(
    ("args", "unknown"),
    [
        (["history", "--jsn"], "--jsn"),
        (["history", "--json", "extra"], "extra"),
        (["export", "1", "--fromat", "md"], "--fromat md"),
        (["spend", "--jsno"], "--jsno"),
        (["models", "--jsn"], "--jsn"),
        (["ask", "--jsn", "hi"], "--jsn"),
    ],
)
def test_a_mistyped_option_shows_that_commands_usage(args, unknown):
    result = run(*args)
    assert result.returncode == 2 and result.stdout == ""
    command = args[0]
    assert result.stderr.startswith(f"usage: xrouter-tui {command} "), result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"xrouter-tui {command}: error: unrecognized arguments: {unknown}"
    )


def test_an_unknown_option_before_the_command_word_shows_the_programs_usage():
    result = run("--jsn", "history")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: xrouter-tui [-h]")


def test_models_help_says_what_the_command_is_for():
    result = run("models", "--help")
    assert result.returncode == 0
    usage, description, *_ = result.stdout.split("\n\n")
    assert usage.startswith("usage: xrouter-tui models")
    assert " ".join(description.split()).startswith("List the models the router offers")


def shell(pipeline: str) -> subprocess.CompletedProcess:
    """`pipeline` in bash with pipefail: its status is the program's, not `head`'s."""
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {pipeline}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ,
    )


@pytest.fixture
def long_history():
    """More of every listing than a pipe holds (64 KiB): the writer meets a closed pipe."""
    with Store.open(history_path(os.environ)) as store, store.transaction():
        for number in range(1500):
            conversation = store.new_conversation("m/one", "", f"Conversation number {number}")
            reply = store.add_message(conversation, "user", "word " * (40_000 if number else 1))
            payment = store.record_payment(reply, replace(PAYMENT, nonce=f"0x{number:064x}"))
            store.update_payment(payment, "settled", tx=f"0x{number:064x}")


@pytest.mark.parametrize(
    ("command", "first"),
    [
        ("history --json", "["),
        ("history", "  ID  UPDATED"),
        ("history --search number", "  ID  UPDATED"),
        ("export 1", "---"),
        ("export 1 --format json", "{"),
        ("spend --json", "{"),
        ("spend --csv", "time,model,amount_usd"),
        ("spend", "today "),
    ],
)
def test_a_listing_piped_into_head_ends_quietly(long_history, command, first):
    result = shell(f"{shlex.quote(PROGRAM)} {command} | head -1")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(first) and result.stdout.count("\n") == 1


def test_models_piped_into_head_or_into_nothing_end_quietly(router):
    program = f"{shlex.quote(PROGRAM)} models --json --base-url {router.url}"
    result = shell(f"{program} | head -1")
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "[\n")
    # A reader gone before anything is written: the pipe is closed for certain.
    for command in (program, f"{shlex.quote(PROGRAM)} history --json"):
        result = shell(f"{command} | true")
        assert (result.returncode, result.stderr) == (0, ""), command
