"""A lost answer asked for again with its own payment: `ask -c --retry` and `--cid ID --retry`.

The real program against the local router. The router sees the same nonce twice and takes the
payment once; the ledger keeps one payment; an expired authorization is not sent; a resend the
router refuses as used is said to be charged, once.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests import test_ask_money, test_cli
from tests.test_cli import run
from xrouter_tui.history.journal import history_path
from xrouter_tui.history.store import Store

key = test_cli.key
router = test_cli.router
ask = test_ask_money.ask


def lose_an_answer(ask, router, fault: str = "paid-http-error", keep: frozenset = frozenset()):
    """Ask once with `fault` on, so that the payment is taken and no answer comes; returns the
    failure's stderr. The faults in `keep` stay on."""
    router.config.faults = {fault, *keep}
    router.config.fault_after = 0
    lost = ask("what is x402?")
    assert lost.returncode == 1, lost.stderr
    assert router.state.paid_requests == 1 and len(router.state.payments) == 1
    router.config.faults = set(keep)
    return lost.stderr


@pytest.mark.parametrize("fault", ["paid-http-error", "disconnect"])
def test_a_lost_answer_comes_with_the_same_payment_and_is_paid_once(ask, router, fault):
    failure = lose_an_answer(ask, router, fault)
    assert "ask --cid 1 --retry" in failure  # the way to it is said where the loss is

    retried = ask("-c", "--retry")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip(), "the answer streamed"
    assert "what is x402?" in retried.stdout  # the local router's answer names the question
    # The router saw the very same payment twice, and holds it once.
    [first] = router.state.payments
    [again] = router.state.resends
    assert (again.nonce, again.payer, again.amount) == (first.nonce, first.payer, first.amount)
    assert router.state.paid_requests == 2 and router.state.unpaid_requests == 1
    # One payment in the ledger, settled; one question and one whole answer in the history.
    payments = json.loads(run("spend", "--json").stdout)["payments"]
    assert [p["status"] for p in payments] == ["settled"]
    with Store.open(history_path()) as store:
        messages = store.messages(1)
    assert [(m.role, m.status) for m in messages] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert messages[1].content.strip() == retried.stdout.strip()


def test_the_payments_header_is_kept_only_while_a_resend_can_help(ask, router, key):
    lose_an_answer(ask, router)
    with sqlite3.connect(history_path()) as db:
        assert db.execute("SELECT count(*) FROM resends").fetchone() == (1,)
    db.close()
    # The signed header is there, the key it was signed with is not (in any form).
    secret = key[0].lower()
    for path in history_path().parent.iterdir():
        on_disk = path.read_bytes()
        assert secret.encode() not in on_disk.lower()
        assert bytes.fromhex(secret) not in on_disk
    assert history_path().stat().st_mode & 0o777 == 0o600
    assert ask("-c", "--retry").returncode == 0
    # The answer came: nothing of the signed header is left on disk.
    with sqlite3.connect(history_path()) as db:
        assert db.execute("SELECT count(*) FROM resends").fetchone() == (0,)
    db.close()


def test_an_expired_payment_is_not_resent(ask, router):
    lose_an_answer(ask, router)
    with sqlite3.connect(history_path()) as db:
        db.execute("UPDATE payments SET valid_before = 1")
    db.close()
    expired = ask("--cid", "1", "--retry")
    assert expired.returncode == 3
    assert "expired at" in expired.stderr and "nothing was sent" in expired.stderr
    assert len(expired.stderr.strip().splitlines()) == 1
    assert router.state.paid_requests == 1  # nothing went out
    # Opening the history wiped the header that can no longer be used.
    with sqlite3.connect(history_path()) as db:
        assert db.execute("SELECT count(*) FROM resends").fetchone() == (0,)
    db.close()


def test_a_resend_refused_as_used_says_the_first_was_charged(ask, router):
    # The router sends the whole answer and no receipt; the client loses the end of it. To the
    # client the payment's outcome is unknown, to the router it was delivered and charged.
    router.config.faults = {"no-receipt", "truncate"}
    router.config.fault_after = 0
    assert ask("what is x402?").returncode == 1
    router.config.faults = set()

    refused = ask("-c", "--retry")
    assert refused.returncode == 1
    message = refused.stderr.strip().splitlines()[0]
    assert "already used: the first request was charged" in message
    assert "not charged twice" in message
    assert router.state.rejections == ["invalid_exact_evm_nonce_already_used"]
    [payment] = json.loads(run("spend", "--json").stdout)["payments"]
    assert payment["status"] == "settled"  # charged, as the used nonce proves
    # Nothing is left to resend.
    assert ask("-c", "--retry").returncode == 3


def test_nothing_to_retry_is_a_usage_error(ask, router):
    assert ask("hello").returncode == 0
    answered = ask("-c", "--retry")
    assert answered.returncode == 2
    assert "has its answer" in answered.stderr
    assert ask("--retry").returncode == 2  # which conversation?
    assert ask("-c", "--retry", "a prompt").returncode == 2
    assert router.state.paid_requests == 1


def test_v2_with_a_required_payment_identifier_resends_the_same_id(ask, router):
    router.config.x402_version = 2
    lose_an_answer(ask, router, keep=frozenset({"payment-id-required"}))
    assert ask("-c", "--retry").returncode == 0
    [first] = router.state.payments
    [again] = router.state.resends
    assert first.payment_id is not None and first.payment_id.startswith("pay_")
    assert again.payment_id == first.payment_id
