"""`xrouter-tui spend`: the ledger of what was paid, checked against what the router took.

The real program pays the local router (on Base, by name), then `spend` must show the very
amounts and transactions the router accepted, exactly, in every format.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

import pytest

from tests import test_cli
from tests.test_cli import assert_clean, run
from tests.test_store import PAYMENT
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store
from xrouter_tui.payments import format_usd

MICRO = Decimal("0.000001")

# test_cli's fixtures: a fresh wallet key, and the local router on Base (by name).
key = test_cli.key
router = test_cli.router


@pytest.fixture(autouse=True)
def no_public_chain(monkeypatch):
    """`spend` reconciles from the chain first: here, from no chain beyond 127.0.0.1 (port 9
    is closed, so it cannot be read)."""
    monkeypatch.setenv("XROUTER_RPC_URL", "http://127.0.0.1:9/")


def usd(atomic: int) -> Decimal:
    """The router's atomic USDC units (6 decimals) in dollars, exactly."""
    return atomic * MICRO


def shown_usd(payment: dict) -> str:
    return format_usd(Decimal(payment["amount_usd"]))


def spend(*args: str) -> str:
    result = run("spend", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert_clean(result)
    return result.stdout


def spend_json() -> dict:
    return json.loads(spend("--json"))


@pytest.fixture
def paid(router, key):
    """Two paid asks (two models), then one the router rejects; returns the router."""
    secret, _ = key
    env = {"XROUTER_PRIVATE_KEY": secret}
    for model in ("anthropic/claude-3.5-sonnet", "openai/gpt-4o-mini"):
        result = run("ask", "--base-url", router.url, "-m", model, "hi", env_extra=env)
        assert result.returncode == 0, result.stderr
    router.config.faults = {"reject-payment"}
    rejected = run("ask", "--base-url", router.url, "and again", env_extra=env)
    assert rejected.returncode == 1, rejected.stderr
    assert router.state.paid_requests == 3 and len(router.state.payments) == 2
    return router


def test_spend_json_matches_what_the_router_took_exactly(paid, key):
    _, address = key
    accepted = paid.state.payments
    total = usd(sum(p.amount for p in accepted))
    ledger = spend_json()
    assert ledger["session_usd"] is None
    # Decimal strings, compared as exact decimals: no float ever touches money.
    assert Decimal(ledger["all_time_usd"]) == total
    assert Decimal(ledger["today_usd"]) == total
    assert all(isinstance(ledger[k], str) for k in ("today_usd", "all_time_usd"))

    newest, *older = ledger["payments"]
    # Refused after it was handed over: it may still be charged until it expires, so it is of
    # unknown outcome, not spent, and counted apart.
    assert newest["status"] == "unknown" and newest["tx"] is None
    assert newest["reason"] == paid.config.reject_reason
    assert Decimal(ledger["uncertain_usd"]) == Decimal(newest["amount_usd"]) > 0
    # Newest first: the router's accepted payments in reverse order.
    assert [p["status"] for p in older] == ["settled", "settled"]
    for row, payment in zip(older, reversed(accepted), strict=True):
        assert row["tx"] == payment.transaction
        assert Decimal(row["amount_usd"]) == usd(payment.amount)
        assert row["amount_usd"] == f"{payment.amount // 10**6}.{payment.amount % 10**6:06d}"
        assert row["model"] == payment.model
        assert row["network"] == "base"
        assert row["payer"] == address and row["pay_to"] == paid.config.pay_to
        assert row["time"].endswith("Z") and row["conversation_id"] in (1, 2)
    assert [p["time"] for p in ledger["payments"]] == sorted(
        (p["time"] for p in ledger["payments"]), reverse=True
    )

    per_model: dict[str, list[int]] = defaultdict(list)
    for payment in accepted:
        per_model[payment.model].append(payment.amount)
    assert {m["model"]: (Decimal(m["usd"]), m["payments"]) for m in ledger["by_model"]} == {
        model: (usd(sum(amounts)), len(amounts)) for model, amounts in per_model.items()
    }
    # The dearest model first.
    assert ledger["by_model"][0]["model"] == "anthropic/claude-3.5-sonnet"


def test_spend_text_shows_the_totals_models_and_payments(paid):
    accepted = paid.state.payments
    total = usd(sum(p.amount for p in accepted))
    text = spend()
    lines = text.splitlines()
    uncertain = Decimal(spend_json()["payments"][0]["amount_usd"])
    assert lines[0] == (
        f"today {format_usd(total)} · all time {format_usd(total)} · "
        f"{format_usd(uncertain)} of unknown outcome"
    )
    models = next(i for i, line in enumerate(lines) if line.split()[:1] == ["MODEL"])
    assert lines[models].split() == ["MODEL", "PAYMENTS", "SPENT"]
    for payment in accepted:
        row = next(line for line in lines if line.startswith(payment.model + " "))
        assert row.split()[1:] == ["1", format_usd(usd(payment.amount))]
    header = next(i for i, line in enumerate(lines) if line.startswith("TIME "))
    assert lines[header].split() == ["TIME", "MODEL", "AMOUNT", "STATUS", "NETWORK", "TX"]
    rows = lines[header + 1 : lines.index("", header)]
    assert len(rows) == 3
    # The payment of unknown outcome could not be checked: said once, at the end.
    assert lines[-1].startswith("Not checked on chain: The chain's RPC at 127.0.0.1:9 could not")
    assert [row.split()[4] for row in rows] == ["unknown", "settled", "settled"]
    # People read the network's name; JSON and CSV keep x402's.
    assert [row.split()[5] for row in rows] == ["Base", "Base", "Base"]
    for row, payment in zip(rows[1:], reversed(accepted), strict=True):
        assert format_usd(usd(payment.amount)) in row
        tx = payment.transaction
        assert row.endswith(f"{tx[:6]}…{tx[-4:]}")


def test_spend_csv_has_the_same_payments_as_the_json(paid):
    ledger = spend_json()
    rows = list(csv.DictReader(io.StringIO(spend("--csv"))))
    assert len(rows) == len(ledger["payments"]) == 3
    for row, payment in zip(rows, ledger["payments"], strict=True):
        # The same text, six decimals, in both.
        assert row["amount_usd"] == payment["amount_usd"]
        assert len(row["amount_usd"].partition(".")[2]) == 6
        assert row["tx"] == (payment["tx"] or "")
        assert row["status"] == payment["status"]
        assert row["model"] == payment["model"]
        assert row["time"] == payment["time"]
        assert row["payer"] == payment["payer"]


def test_a_payment_of_unknown_outcome_is_shown_apart(router, key, isolated_environment):
    secret, _ = key
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text("first_byte_timeout = 0.5\n")
    router.config.stall_seconds = 3
    router.config.faults = {"stall-first-byte"}
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 1, result.stderr
    assert router.state.paid_requests == 1 and router.state.payments == []
    ledger = spend_json()
    [payment] = ledger["payments"]
    assert payment["status"] == "unknown"
    assert ledger["all_time_usd"] == "0.000000"
    assert Decimal(ledger["uncertain_usd"]) == Decimal(payment["amount_usd"]) > 0
    amount = format_usd(Decimal(payment["amount_usd"]))
    assert (
        spend().splitlines()[0]
        == f"today $0.000000 · all time $0.000000 · {amount} of unknown outcome"
    )


def test_json_and_csv_cannot_both_be_asked_for():
    result = run("spend", "--json", "--csv")
    assert result.returncode == 2 and "not allowed" in result.stderr


def test_the_demo_pays_into_a_history_of_its_own(isolated_environment):
    demo = run("ask", "--demo", "hello")
    assert demo.returncode == 0, demo.stderr
    # An empty ledger after a paid demo says where the payment went, and how to see it.
    assert spend().splitlines() == [
        "No payments yet.",
        "",
        "Not counted: 1 payment of the demo, kept in its own history; "
        "`xrouter-tui spend --demo` lists them.",
    ]
    ledger = spend_json()
    assert ledger["payments"] == [] and ledger["all_time_usd"] == "0.000000"
    for args in (["spend", "--demo"], ["--demo", "spend"]):
        result = run(*args, "--json")
        assert result.returncode == 0, result.stderr
        [shown] = json.loads(result.stdout)["payments"]
        assert shown["network"] == "base-sepolia" and shown["status"] == "settled"
        assert shown["conversation_id"] == 1
    table = spend("--demo")
    assert table.startswith(f"Demo, on Base Sepolia (test network): today {shown_usd(shown)}")
    assert shown["tx"][:6] in table and "Not counted" not in table
    # Even with its test network allowed, the user's ledger holds none of the demo's money.
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text('allowed_networks = ["base", "base-sepolia"]\n')
    assert spend_json()["payments"] == []
    with Store.open(history_path(os.environ)) as store:
        assert store.payments() == []
    with Store.open(history_path(os.environ, demo=True)) as store:
        assert [p.tx for p in store.payments()] == [shown["tx"]]


def test_payments_on_a_network_not_allowed_are_said_and_not_counted(isolated_environment):
    # What a test router on Base Sepolia was paid while the settings allowed it.
    with Store.open(history_path(os.environ)) as store:
        payment = store.record_payment(None, replace(PAYMENT, network="base-sepolia"))
        store.update_payment(payment, "settled", tx="0x" + "ab" * 32)
    assert spend().splitlines() == [
        "No payments yet.",
        "",
        "Not counted: 1 payment on Base Sepolia (test network), not in allowed_networks.",
    ]
    assert spend_json()["payments"] == []
    config = isolated_environment / "config"
    config.mkdir()
    (config / "config.toml").write_text('allowed_networks = ["base", "base-sepolia"]\n')
    [counted] = spend_json()["payments"]
    assert counted["network"] == "base-sepolia" and counted["status"] == "settled"
    assert "Not counted" not in spend()


def test_a_deleted_conversations_payment_still_counts(router, key):
    secret, _ = key
    result = run("ask", "--base-url", router.url, "hi", env_extra={"XROUTER_PRIVATE_KEY": secret})
    assert result.returncode == 0, result.stderr
    [accepted] = router.state.payments
    with Store.open(history_path(os.environ)) as store:
        assert store.delete(1)
    history = run("history", "--json")
    assert json.loads(history.stdout) == []
    ledger = spend_json()
    assert Decimal(ledger["all_time_usd"]) == usd(accepted.amount)
    [payment] = ledger["payments"]
    assert payment["tx"] == accepted.transaction and payment["conversation_id"] is None


def test_no_history_yet_is_an_empty_ledger():
    assert spend() == "No payments yet.\n"
    assert spend("--csv").splitlines() == [
        "time,model,amount_usd,network,status,tx,payer,pay_to,nonce,valid_before,reason,"
        "conversation_id,refund_usd,refund_tx"
    ]


def test_a_history_that_cannot_be_opened_is_one_line_and_exit_1(isolated_environment):
    data = isolated_environment / "data"
    data.mkdir()
    (data / "history.sqlite3").write_bytes(b"not a database at all " * 200)
    result = run("spend")
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "history.sqlite3" in line
    assert_clean(result)
