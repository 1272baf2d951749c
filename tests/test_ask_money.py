"""`xrouter-tui ask` and money: caps, budgets across processes, confirmation, estimates, and
settings that must stop everything before a request goes out.

The real program against the local router (on Base, by name). With the default model
(anthropic/claude-3.5-sonnet, $3/$15 per million tokens) a request costs about $0.0154 at the
default 1024 max_tokens, about $0.30 at 20000 (above confirm_above_usd, $0.10).
"""

from __future__ import annotations

import json
import os
import re
import select
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests import test_cli
from tests.test_cli import PROGRAM, assert_clean, run
from tests.test_key_commands import DEADLINE, on_terminal
from xrouter_tui.commands.demo import demo_models
from xrouter_tui.devserver.catalog import find_model, price_request
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import format_usd, parse_challenge
from xrouter_tui.pricing import PriceGuide, upfront_usd

# test_cli's fixtures: a fresh wallet key, and the local router on Base (by name).
key = test_cli.key
router = test_cli.router

MICRO = Decimal("0.000001")
SONNET = "anthropic/claude-3.5-sonnet"


def usd(atomic: int) -> Decimal:
    return atomic * MICRO


def listed_price(prompt: str, max_tokens: int, model: str = SONNET) -> Decimal:
    """What the router asks for `prompt` alone, by its own pricing."""
    model_info = find_model(model)
    assert model_info is not None
    return usd(price_request(model_info, [{"role": "user", "content": prompt}], max_tokens).atomic)


def write_config(isolated_environment: Path, text: str) -> Path:
    folder = isolated_environment / "config"
    folder.mkdir(exist_ok=True)
    path = folder / "config.toml"
    path.write_text(text)
    return path


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def ask(router, key):
    """Run `xrouter-tui ask --base-url ROUTER ARGS...` with the key in the environment."""
    secret, _ = key

    def run_ask(*args: str, stdin: str | None = None):
        result = run(
            "ask",
            "--base-url",
            router.url,
            *args,
            env_extra={"XROUTER_PRIVATE_KEY": secret},
            stdin=stdin,
        )
        assert_clean(result, secret)
        return result

    return run_ask


# -- budgets ----------------------------------------------------------------------------------


def test_a_daily_budget_holds_across_processes(ask, router, isolated_environment):
    first_price = listed_price("hi", 1024)
    second_price = listed_price("hello again", 1500)
    # Room for the first, not for both.
    assert first_price < Decimal("0.025") < first_price + second_price
    write_config(isolated_environment, "daily_budget_usd = 0.025\n")

    assert ask("hi").returncode == 0
    assert router.state.paid_requests == 1
    [paid] = router.state.payments
    assert usd(paid.amount) == first_price

    refused = ask("--max-tokens", "1500", "hello again")
    assert refused.returncode == 3
    line = one_line(refused)
    assert format_usd(second_price) in line  # what the router asks
    assert "$0.025000" in line  # the limit
    assert format_usd(first_price) in line  # what is spent already
    assert "daily_budget_usd" in line and "Nothing was signed" in line
    # The second process signed nothing: the router saw one paid request in all.
    assert router.state.paid_requests == 1
    assert router.state.unpaid_requests == 2

    # The shorter answer it suggests fits what is left of the day.
    hint = re.search(r"--max-tokens (\d+) \(now 1500\)", line)
    assert hint, line
    assert ask("--max-tokens", hint.group(1), "hello again").returncode == 0
    assert router.state.paid_requests == 2
    assert usd(router.state.total_paid) <= Decimal("0.025")


def test_a_refused_payment_counts_against_the_budget_until_it_expires(
    ask, router, isolated_environment
):
    price = listed_price("hi", 1024)
    # Room for one payment, not two.
    write_config(isolated_environment, f'daily_budget_usd = "{price * 3 / 2}"\n')
    router.config.faults = {"reject-payment"}
    refused = ask("hi")
    assert refused.returncode == 1
    line = one_line(refused)
    # Handed over, then refused: the router holds a valid authorization, so it may be charged.
    assert "could still be charged until" in line and "counts against your budgets" in line
    assert "nothing was charged" not in line.lower()
    assert router.state.paid_requests == 1

    # Another process: the uncertain payment fills the budget, so nothing is signed.
    router.config.faults = set()
    over = ask("hi")
    assert over.returncode == 3
    assert "daily_budget_usd" in one_line(over) and "Nothing was signed" in one_line(over)
    assert router.state.paid_requests == 1

    # Once its validBefore has passed it can no longer settle: it no longer counts, and reads
    # "expired, not charged".
    with Store.open(history_path()) as store:
        [payment] = store.payments()
        assert payment.status == "unknown" and payment.at_risk
    with sqlite3.connect(history_path()) as db:
        db.execute("UPDATE payments SET valid_before = 1")
    db.close()
    assert ask("hi").returncode == 0
    assert router.state.paid_requests == 2
    spend = run("spend", "--json")
    statuses = [p["status"] for p in json.loads(spend.stdout)["payments"]]
    assert statuses == ["settled", "expired, not charged"]


def test_an_answer_whose_receipt_says_failed_is_not_called_charged(ask, router):
    router.config.faults = {"failed-receipt"}
    result = ask("hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the answer came"
    summary = result.stderr.strip().splitlines()[-1]
    # The client cannot know it was charged, nor that it was not: it says what it knows.
    assert "signed, outcome unknown" in summary and "charged" not in summary
    assert "receipt says failed (unexpected_settle_error)" in summary
    with Store.open(history_path()) as store:
        [payment] = store.payments()
    assert payment.status == "unknown" and payment.at_risk  # counted until it expires


def test_concurrent_processes_cannot_overspend_a_daily_budget(router, key, isolated_environment):
    secret, _ = key
    price = listed_price("hi", 1024)
    budget = 2 * price + price / 2  # exactly two fit
    write_config(isolated_environment, f'daily_budget_usd = "{budget}"\n')
    processes = [
        subprocess.Popen(
            [PROGRAM, "ask", "--base-url", router.url, "hi"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "XROUTER_PRIVATE_KEY": secret},
        )
        for _ in range(4)
    ]
    outcomes = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        outcomes.append((process.returncode, stderr))
        assert "Traceback" not in stderr and secret not in stdout + stderr
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 0, 3, 3], outcomes
    assert router.state.paid_requests == 2 and len(router.state.payments) == 2
    for code, stderr in outcomes:
        if code == 3:
            assert "daily_budget_usd" in stderr and len(stderr.strip().splitlines()) == 1
    # The ledger holds the two payments the router took, and nothing refused.
    with Store.open(history_path(os.environ)) as store:
        payments = store.payments()
    assert sorted(p.tx for p in payments) == sorted(p.transaction for p in router.state.payments)


# -- the per-request cap ----------------------------------------------------------------------


def test_the_per_request_cap_refuses_and_its_hint_fits(ask, router, isolated_environment):
    write_config(isolated_environment, "max_per_request_usd = 0.05\n")
    refused = ask("--max-tokens", "20000", "hi")
    assert refused.returncode == 3
    line = one_line(refused)
    assert "max_per_request_usd" in line and "$0.050000" in line
    assert format_usd(listed_price("hi", 20000)) in line
    hint = re.search(r"--max-tokens (\d+) \(now 20000\)", line)
    assert hint, line
    assert router.state.paid_requests == 0

    fitting = hint.group(1)
    assert 64 <= int(fitting) < 20000
    paid = ask("--max-tokens", fitting, "hi")
    assert paid.returncode == 0, paid.stderr
    [payment] = router.state.payments
    assert usd(payment.amount) <= Decimal("0.05")
    # The hint is the longest that fits, give or take the rounding margin it keeps.
    assert listed_price("hi", int(fitting) + 3) > Decimal("0.05")


def test_max_price_tightens_the_cap_and_names_itself(ask, router, isolated_environment):
    write_config(isolated_environment, "max_per_request_usd = 0.05\n")
    tighter = ask("--max-price", "0.01", "hi")
    assert tighter.returncode == 3
    line = one_line(tighter)
    assert "--max-price" in line and "$0.010000" in line and "max_per_request_usd" not in line
    assert re.search(r"--max-tokens \d+ \(now 1024\)", line)
    # A looser --max-price does not loosen the cap from the settings.
    looser = ask("--max-price", "0.40", "--max-tokens", "20000", "hi")
    assert looser.returncode == 3
    assert "max_per_request_usd" in one_line(looser)
    assert router.state.paid_requests == 0


# -- confirmation above confirm_above_usd -----------------------------------------------------


def test_without_a_terminal_a_dear_request_needs_yes(ask, router):
    refused = ask("--max-tokens", "20000", "hi")
    assert refused.returncode == 3
    line = one_line(refused)
    assert "--yes" in line and "confirm_above_usd" in line
    assert router.state.paid_requests == 0

    paid = ask("--yes", "--max-tokens", "20000", "hi")
    assert paid.returncode == 0, paid.stderr
    assert router.state.paid_requests == 1
    [payment] = router.state.payments
    assert usd(payment.amount) == listed_price("hi", 20000) > Decimal("0.10")


@pytest.mark.parametrize(("answer", "code", "paid"), [("y", 0, 1), ("n", 3, 0)])
def test_on_a_terminal_a_dear_request_asks_first(router, key, monkeypatch, answer, code, paid):
    secret, _ = key
    monkeypatch.setenv("XROUTER_PRIVATE_KEY", secret)
    status, shown = on_terminal(
        "ask", "--base-url", router.url, "--max-tokens", "20000", "hi", answers=[("[y/N]", answer)]
    )
    assert status == code, shown
    question = shown[: shown.index("[y/N]")]
    assert format_usd(listed_price("hi", 20000)) in question and "confirm_above_usd" in question
    assert router.state.paid_requests == paid
    assert len(router.state.payments) == paid
    assert secret not in shown and "Traceback" not in shown


# The child makes the pseudo-terminal (its stderr) its controlling terminal, then runs the
# program: as in a shell, where /dev/tty is the terminal whatever stdin is.
_WITH_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(2, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def test_with_the_prompt_piped_in_the_question_is_answered_on_the_terminal(router, key):
    secret, _ = key
    command = [sys.executable, "-c", _WITH_TERMINAL, PROGRAM, "ask", "--base-url", router.url]
    leader, follower = os.openpty()
    try:
        process = subprocess.Popen(
            [*command, "--max-tokens", "20000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=follower,
            start_new_session=True,
            env={**os.environ, "XROUTER_PRIVATE_KEY": secret},
        )
    finally:
        os.close(follower)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"a question from a pipe")
    process.stdin.close()
    shown = b""
    answered = False
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], DEADLINE)
            assert ready, f"no output for {DEADLINE} s; so far: {shown!r}"
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the program ended and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(leader, b"y\n")
                answered = True
    finally:
        os.close(leader)
    answer = process.stdout.read().decode()
    process.stdout.close()
    assert process.wait(timeout=DEADLINE) == 0, shown
    assert answered
    assert "a question from a pipe" in answer.splitlines()[0]
    assert router.state.paid_requests == 1
    [payment] = router.state.payments
    assert payment.messages[-1]["content"] == "a question from a pipe"


# -- the estimate shown while typing, against the router's 402 --------------------------------


@pytest.mark.parametrize(
    ("model", "messages", "max_tokens"),
    [
        (SONNET, [{"role": "user", "content": "hi"}], 1024),
        (SONNET, [{"role": "user", "content": "x" * 4001}], 20000),
        (
            "openai/gpt-4o-mini",
            [
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "Où est la gare ? ✈️ " * 30},
            ],
            300,
        ),
        ("anthropic/claude-3.5-haiku", [{"role": "user", "content": "a"}], 1),
        (
            "anthropic/claude-3-opus",
            [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer " * 50},
                {"role": "user", "content": "and then?"},
            ],
            4096,
        ),
    ],
)
def test_the_estimate_equals_the_routers_402(router, model, messages, max_tokens):
    [model_info] = [m for m in demo_models() if m.id == model]
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
    response = httpx.post(f"{router.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 402
    [requirement] = parse_challenge(response.headers, response.content).accepts
    estimate = PriceGuide().estimate(model_info, messages, max_tokens)
    assert estimate is not None
    assert estimate == usd(requirement.amount)
    assert router.state.paid_requests == 0


def test_the_estimate_learns_a_routers_margin():
    [sonnet] = [m for m in demo_models() if m.id == SONNET]
    asked = [{"role": "user", "content": "hi there"}]
    listed = upfront_usd(sonnet, asked, 1024)
    assert listed is not None
    guide = PriceGuide()
    guide.learn(sonnet, asked, 1024, listed * Decimal("2.2"))
    # Another prompt and length: the estimate carries the router's 2.2x over.
    other = [{"role": "user", "content": "something much longer " * 40}]
    other_listed = upfront_usd(sonnet, other, 3000)
    assert other_listed is not None
    estimate = guide.estimate(sonnet, other, 3000)
    assert estimate is not None
    assert abs(estimate - other_listed * Decimal("2.2")) <= MICRO
    assert PriceGuide().estimate(sonnet, other, 3000) < estimate  # not the list price


# -- settings that stop everything ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ("max_per_request_usd = -1", "max_per_request_usd"),
        ('confirm_above_usd = "abc"', "confirm_above_usd"),
        ("daily_budget_usd = true", "daily_budget_usd"),
        ('allowed_networks = ["mars"]', "allowed_networks"),
    ],
)
def test_invalid_money_settings_exit_2_before_any_request(
    ask, router, isolated_environment, line, setting
):
    path = write_config(isolated_environment, line + "\n")
    result = ask("hi")
    assert result.returncode == 2
    assert result.stdout == ""
    message = one_line(result)
    assert str(path) in message and setting in message
    state = router.state
    assert (state.unpaid_requests, state.paid_requests, state.invalid_requests) == (0, 0, 0)
    # Nothing was opened either: the settings are read first.
    assert not history_path(os.environ).exists()
