"""Every error sentence about a payment: each facilitator code the router may send back, and
each refusal made here before anything is signed, driven through the code that raises it.

A user reads these when money is at stake, so each must be one line of prose: what happened,
to which wallet and amount, which setting would change it, and that nothing was signed or
charged. No JSON, no tracebacks, never the generic fallback when the code is known.
"""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
import x402.mechanisms.evm.constants as evm_constants
from eth_account import Account

from tests.payment_helpers import v1_body, v1_requirement, v2_headers, v2_requirement
from tests.test_cli import assert_clean, key, router, run  # noqa: F401 (fixtures)
from xrouter_tui.api import (
    BadChallenge,
    NeverSent,
    NoWallet,
    PaymentDeclined,
    PaymentRejected,
    RouterClient,
    RouterError,
)
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.x402 import transaction_hash
from xrouter_tui.history.store import Store
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import (
    BASE,
    BASE_SEPOLIA,
    PaymentRefused,
    Receipt,
    SpendingPolicy,
    format_usd,
    parse_challenge,
)
from xrouter_tui.payments.reasons import REJECTION_CODES

MODEL = "openai/gpt-4o-mini"
QUESTION = [{"role": "user", "content": "What does a payment error look like?"}]
BOTH_NETS = SpendingPolicy(networks=(BASE, BASE_SEPOLIA))

PREFIX = "The router refused the payment. "
# A refusal after the payment left proves nothing: it may still be charged until it expires.
SUFFIX = re.compile(
    r" It was signed and handed over, so it could still be charged until \d\d:\d\d:\d\d; it "
    r"counts against your budgets until then\. It will not be resent\.$"
)
FALLBACK = "The router refused the payment"
INSUFFICIENT = ("insufficient_funds", "invalid_exact_evm_insufficient_balance")

# -- the codes protocol.md §4 lists ---------------------------------------------------------

PROTOCOL = Path(__file__).resolve().parents[2] / "shared" / "docs" / "protocol.md"
_DOC_CODE = re.compile(r"`((?:invalid|insufficient)_[a-z0-9_]+|…_[a-z0-9_]+)`")


def _section_4(text: str) -> str:
    start = text.index("\n## 4.")
    return text[start : text.index("\n## 5.", start)]


def _expand(code: str) -> str:
    """`…_valid_before` as reasons.py names it in full; unchanged when nothing matches."""
    if not code.startswith("…_"):
        return code
    matches = sorted(c for c in REJECTION_CODES if c.endswith(code.removeprefix("…")))
    if len(matches) > 1:  # the doc speaks of the exact EVM scheme, the one X-Router uses
        matches = [c for c in matches if c.startswith("invalid_exact_evm_")]
    return matches[0] if len(matches) == 1 else code


def _doc_codes() -> list[str]:
    if not PROTOCOL.exists():
        return []
    return list(
        dict.fromkeys(_expand(c) for c in _DOC_CODE.findall(_section_4(PROTOCOL.read_text())))
    )


DOC_CODES = _doc_codes()


def _sdk_codes() -> set[str]:
    """Every EVM error code the official SDK defines (x402.mechanisms.evm.constants.ERR_*)."""
    return {
        value
        for name, value in vars(evm_constants).items()
        if name.startswith("ERR_") and isinstance(value, str)
    }


def test_every_code_the_official_sdk_defines_has_a_sentence_of_its_own():
    codes = _sdk_codes()
    assert len(codes) >= 40, "the SDK's constants moved: this test no longer reads them"
    assert codes <= REJECTION_CODES, sorted(codes - REJECTION_CODES)


# What each code the doc lists must say, in words a user knows.
DOC_WORDS = {
    "insufficient_funds": "Not enough USDC in",
    "invalid_exact_evm_insufficient_balance": "Not enough USDC in",
    "invalid_exact_evm_payload_signature": "could not verify the payment signature",
    "invalid_exact_evm_payload_authorization_value_mismatch": "different amount",
    "invalid_exact_evm_payload_recipient_mismatch": "different address",
    "invalid_exact_evm_payload_authorization_valid_before": "had expired",
    "invalid_exact_evm_payload_authorization_valid_after": "not valid yet",
    "invalid_exact_evm_nonce_already_used": "already seen this payment",
    "invalid_network": "does not accept payments on",
    "invalid_scheme": "does not accept this kind of payment",
}


def test_protocol_md_lists_codes_and_each_has_a_sentence():
    # Beside a clone without the shared docs, the list as the doc gave it when this was written.
    documented = DOC_CODES or list(DOC_WORDS)
    assert len(documented) >= 10, documented
    unhandled = [c for c in documented if c not in REJECTION_CODES]
    assert unhandled == [], (
        f"protocol.md §4 lists codes reasons.py has no sentence for: {unhandled}"
    )
    assert set(documented) <= DOC_WORDS.keys(), "say which words each documented code must use"


# -- end to end: a signed payment the router refuses, code by code ------------------------------


@pytest.fixture(scope="module")
def dev_router():
    with start_dev_server(DevServerConfig(network="base-sepolia", reply_deltas=5)) as server:
        yield server


def assert_one_plain_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message
    for raw in ("{", "}", "[", "]", "Traceback", "Exception", '":'):
        assert raw not in message, (raw, message)


async def rejected(server, *, version: int, network: str, code: str):
    """One streamed turn with a real account, refused by the router with `code`."""
    server.config.x402_version = version
    server.config.network = network
    server.config.faults = {"reject-payment"}
    server.config.reject_reason = code
    account = Account.create()
    signed = []
    paid_before = server.state.paid_requests
    async with RouterClient(server.url, account=account, policy=BOTH_NETS) as client:
        with pytest.raises(PaymentRejected) as caught:
            async for _ in client.stream_chat(
                QUESTION,
                model=MODEL,
                max_tokens=256,
                on_signed=lambda payment, _body: signed.append(payment),
            ):
                pass
    # Signed once, sent once, never resent.
    assert len(signed) == 1 and caught.value.payment is signed[0]
    assert server.state.paid_requests == paid_before + 1
    return caught.value, account, signed[0]


def sentence_of(message: str) -> str:
    assert message.startswith(PREFIX), message
    ending = SUFFIX.search(message)
    assert ending is not None, message
    assert "nothing was charged" not in message.lower()
    return message[len(PREFIX) : ending.start()]


VERSIONS = [pytest.param(1, "base-sepolia", id="v1"), pytest.param(2, "eip155:84532", id="v2")]


@pytest.mark.parametrize(("version", "network"), VERSIONS)
@pytest.mark.parametrize(
    "code", sorted((REJECTION_CODES | set(DOC_CODES)) - {"settlement_pending"})
)  # settlement_pending is no refusal: see its own test below
async def test_every_facilitator_code_reads_as_one_sentence(dev_router, version, network, code):
    error, account, payment = await rejected(
        dev_router, version=version, network=network, code=code
    )
    assert error.code == code
    message = error.message
    assert_one_plain_line(message)
    sentence = sentence_of(message)
    assert FALLBACK not in sentence, f"{code} has no sentence of its own"
    assert sentence.endswith(f" ({code})."), sentence
    assert ". " not in sentence, f"one sentence, not several: {sentence}"
    assert ") (" not in sentence, f"two asides in a row read badly: {sentence}"
    assert sentence[0].isupper()
    if code in DOC_WORDS:
        assert DOC_WORDS[code] in sentence, (code, sentence)
    if code in INSUFFICIENT:
        wallet = f"{account.address[:6]}…{account.address[-4:]}"
        amount = format_usd(payment.amount_usd)
        assert re.fullmatch(r"\$0\.\d{2,6}", amount)
        assert sentence == (
            f"Not enough USDC in {wallet} on Base Sepolia (test network): "
            f"the request needs {amount} ({code})."
        )


@pytest.mark.parametrize(("version", "network"), VERSIONS)
async def test_insufficient_balance_on_base_names_base(dev_router, version, network):
    mainnet = "base" if version == 1 else "eip155:8453"
    error, account, payment = await rejected(
        dev_router, version=version, network=mainnet, code="insufficient_funds"
    )
    assert f"Not enough USDC in {account.address[:6]}…{account.address[-4:]} on Base: " in (
        error.message
    )
    assert f"the request needs {format_usd(payment.amount_usd)} (insufficient_funds)." in (
        error.message
    )


@pytest.mark.parametrize(("version", "network"), VERSIONS)
async def test_an_unknown_code_falls_back_and_names_it(dev_router, version, network):
    error, _, _ = await rejected(
        dev_router, version=version, network=network, code="invalid_exact_evm_something_new"
    )
    assert_one_plain_line(error.message)
    assert sentence_of(error.message) == (
        "The router refused the payment (invalid_exact_evm_something_new)."
    )


@pytest.mark.parametrize(("version", "network"), VERSIONS)
@pytest.mark.parametrize(
    "code", ['{"error": {"code": "boom"}}', "x" * 200, "line one\nline two <html>"]
)
async def test_a_code_that_is_not_a_code_is_not_echoed(dev_router, version, network, code):
    error, _, _ = await rejected(dev_router, version=version, network=network, code=code)
    assert_one_plain_line(error.message)
    assert sentence_of(error.message) == "The router refused the payment."


# -- refusals made here: nothing is signed ------------------------------------------------------


def assert_refusal(
    message: str,
    *,
    amount: str | None = None,
    limit: str | None = None,
    setting: str | None = None,
) -> None:
    assert_one_plain_line(message)
    assert message.endswith("Nothing was signed.") or "Nothing was signed. " in message
    if amount is not None:
        assert amount in message, (amount, message)
    if limit is not None:
        assert limit in message, (limit, message)
    if setting is not None:
        assert setting in message, (setting, message)


async def refused_turn(server, *, policy=BOTH_NETS, budgets=(), account=None, confirm=None):
    signed = []
    paid_before = server.state.paid_requests
    async with RouterClient(
        server.url, account=account or Account.create(), policy=policy
    ) as client:
        with pytest.raises(PaymentRefused) as caught:
            await client.complete(
                QUESTION,
                model=MODEL,
                max_tokens=256,
                budgets=budgets,
                confirm=confirm,
                on_signed=lambda payment, _body: signed.append(payment),
            )
    assert signed == [] and server.state.paid_requests == paid_before
    return caught.value


@pytest.fixture
def plain_router():
    with start_dev_server(DevServerConfig(network="base-sepolia", reply_deltas=5)) as server:
        yield server


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "history.sqlite3") as opened:
        yield opened


async def test_over_the_per_request_cap(plain_router, store):
    cap = Decimal("0.0001")
    policy = SpendingPolicy(networks=(BASE_SEPOLIA,), max_per_request_usd=cap)
    ledger = Ledger(store, (BASE_SEPOLIA,))
    refusal = await refused_turn(plain_router, policy=policy, budgets=ledger.budgets())
    assert refusal.code == "over_cap" and refusal.amount_usd > cap
    message = ledger.explain(refusal)
    assert_refusal(
        message,
        amount=f"asks {format_usd(refusal.amount_usd)}",
        limit="per-request cap of $0.000100",
        setting="max_per_request_usd",
    )
    assert message.endswith("Nothing was signed. Spent today so far: $0.000000.")


async def test_over_the_per_request_cap_of_max_price(plain_router):
    policy = SpendingPolicy(
        networks=(BASE_SEPOLIA,), max_per_request_usd=Decimal("0.00005"), cap_setting="--max-price"
    )
    refusal = await refused_turn(plain_router, policy=policy)
    assert_refusal(
        refusal.message,
        amount=format_usd(refusal.amount_usd),
        limit="$0.000050",
        setting="(--max-price)",
    )


async def test_over_the_session_budget(plain_router, store):
    ledger = Ledger(store, (BASE_SEPOLIA,), session_budget_usd=Decimal("0.0001"))
    refusal = await refused_turn(plain_router, budgets=ledger.budgets())
    assert refusal.code == "over_budget"
    assert_refusal(
        refusal.message,
        amount=f"asks {format_usd(refusal.amount_usd)}",
        limit="$0.000000 of your $0.000100 session budget is spent already, leaving $0.000100",
        setting="(setting session_budget_usd)",
    )


async def test_over_the_daily_budget_counts_what_was_spent_today(plain_router, store):
    # One paid turn today, recorded as the program records it...
    first = Ledger(store, (BASE_SEPOLIA,))
    async with RouterClient(plain_router.url, account=Account.create(), policy=BOTH_NETS) as client:
        done = await client.complete(QUESTION, model=MODEL, max_tokens=256, on_signed=first.signed)
    first.paid(done.payment, done.receipt)
    spent = done.payment.amount_usd
    # ...then another session, whose daily budget that turn nearly used up.
    limit = spent + Decimal("0.0001")
    ledger = Ledger(store, (BASE_SEPOLIA,), daily_budget_usd=limit)
    refusal = await refused_turn(plain_router, budgets=ledger.budgets())
    assert refusal.code == "over_budget"
    assert_refusal(
        ledger.explain(refusal),
        amount=f"asks {format_usd(refusal.amount_usd)}",
        limit=(
            f"{format_usd(spent)} of your {format_usd(limit)} daily budget is spent already, "
            "leaving $0.000100"
        ),
        setting="(setting daily_budget_usd)",
    )


@pytest.mark.parametrize("history", [True, False], ids=["with a history", "session only"])
@pytest.mark.parametrize(
    "how",
    ["refused after it left", "receipt says failed", "answer lost"],
)
async def test_money_of_unknown_outcome_counts_until_its_authorization_expires(
    plain_router, store, history, how
):
    now = [time.time()]
    ledger = Ledger(
        store if history else None,
        (BASE_SEPOLIA,),
        session_budget_usd=Decimal("1"),
        clock=lambda: now[0],
    )
    async with RouterClient(plain_router.url, account=Account.create(), policy=BOTH_NETS) as client:
        done = await client.complete(QUESTION, model=MODEL, max_tokens=256, on_signed=ledger.signed)
    payment = done.payment
    if how == "refused after it left":
        ledger.failed(
            payment,
            PaymentRejected("refused", code="insufficient_funds", payment=payment),
            accepted=False,
        )
    elif how == "receipt says failed":
        ledger.paid(payment, Receipt(success=False, error_reason="unexpected_settle_error"))
    else:
        ledger.failed(payment, RouterError("the connection broke"), accepted=False)
    # It was handed over: it may be charged until its validBefore, and the budgets count it.
    assert ledger.session_at_risk() == payment.amount_usd
    assert ledger.session_usd() == 0  # not spent: not known
    if history:
        assert ledger.today_at_risk() == payment.amount_usd
        [stored] = ledger.spending().payments
        assert ledger.spending().status_of(stored) == "unknown"
        assert ledger.spending().uncertain_usd == payment.amount_usd
    # A second past its validBefore it can no longer settle.
    now[0] = payment.valid_before + 1
    assert ledger.session_at_risk() == 0
    if history:
        assert ledger.today_at_risk() == 0
        spending = ledger.spending()
        [stored] = spending.payments
        assert spending.status_of(stored) == "expired, not charged"
        assert spending.uncertain_usd == 0


def test_a_daily_budget_without_a_history_cannot_be_checked():
    ledger = Ledger(None, (BASE,), daily_budget_usd=Decimal("1"))
    with pytest.raises(PaymentRefused) as caught:
        ledger.budgets()
    assert caught.value.code == "budget_unchecked"
    # It is raised before any price is known, so there is no amount to name.
    assert_refusal(ledger.explain(caught.value), setting="daily_budget_usd")
    assert "could not be opened" in caught.value.message


@pytest.mark.parametrize("version", [1, 2])
async def test_a_network_not_allowed(plain_router, version):
    plain_router.config.x402_version = version
    refusal = await refused_turn(plain_router, policy=SpendingPolicy())
    assert refusal.code == "network_not_allowed"
    assert_refusal(refusal.message, setting="allowed_networks")
    assert re.search(r"asks \$0\.\d+ on Base Sepolia \(test network\)", refusal.message)
    assert "allowed networks (base;" in refusal.message


def refusal_for(headers: dict, body: bytes) -> PaymentRefused:
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy().choose(parse_challenge(headers, body))
    return caught.value


OTHER_TOKEN = "0x1111111111111111111111111111111111111111"


@pytest.mark.parametrize(
    ("code", "requirement", "words"),
    [
        (
            "unknown_asset",
            v1_requirement(asset=OTHER_TOKEN, amount="15378"),
            f"asks 15378 units of {OTHER_TOKEN} on Base, a token that is not USDC",
        ),
        (
            "unsupported_transfer_method",
            v1_requirement(amount="15378", extra={"assetTransferMethod": "permit2"}),
            "asks $0.015378 by a permit2 transfer",
        ),
        (
            "unsupported_scheme",
            v1_requirement(amount="15378", scheme="upto"),
            "asks $0.015378 as an 'upto' payment",
        ),
        ("zero_amount", v1_requirement(amount="0"), "a payment of $0.000000"),
    ],
)
def test_a_challenge_this_client_will_not_pay_v1(code, requirement, words):
    refusal = refusal_for({}, v1_body(requirement))
    assert refusal.code == code
    assert_refusal(refusal.message, amount=words)


def test_a_challenge_this_client_will_not_pay_v2():
    requirement = v2_requirement(BASE, amount="15378", scheme="upto")
    refusal = refusal_for(v2_headers(requirement), b"{}")
    assert refusal.code == "unsupported_scheme"
    assert_refusal(refusal.message, amount="asks $0.015378 as an 'upto' payment")


async def test_a_declined_confirmation(plain_router):
    async def no(quote):
        return False

    refusal = await refused_turn(plain_router, confirm=no)
    assert isinstance(refusal, PaymentDeclined) and refusal.code == "declined"
    assert refusal.message == (
        f"Payment of {format_usd(refusal.amount_usd)} declined. Nothing was signed."
    )


def test_a_payment_above_confirm_above_usd_with_no_terminal_exits_3(router, key):  # noqa: F811
    secret, _ = key
    result = run(
        "ask",
        "--base-url",
        router.url,
        "--max-tokens",
        "20000",
        "hi",
        env_extra={"XROUTER_PRIVATE_KEY": secret},
    )
    assert result.returncode == 3, result.stderr
    assert router.state.paid_requests == 0
    assert_clean(result, secret)
    line = result.stderr.strip().splitlines()[-1]
    assert_refusal(
        line,
        amount=r"asks $0.",
        limit="above confirm_above_usd ($0.100000)",
        setting="raise confirm_above_usd",
    )
    assert "add --yes to pay it" in line


async def test_no_wallet_says_how_to_set_one_up(plain_router):
    async with RouterClient(plain_router.url, account=None, policy=BOTH_NETS) as client:
        with pytest.raises(NoWallet) as caught:
            await client.complete(QUESTION, model=MODEL, max_tokens=256)
    assert_one_plain_line(caught.value.message)
    assert "no wallet key is set up" in caught.value.message
    assert "xrouter-tui key import" in caught.value.message
    assert plain_router.state.paid_requests == 0


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    "fault",
    [
        "bad-challenge-json",
        "bad-challenge-no-accepts",
        "bad-challenge-amount",
        "bad-challenge-header",
    ],
)
async def test_a_challenge_that_cannot_be_read(plain_router, version, fault):
    plain_router.config.x402_version = version
    plain_router.config.faults = {fault}
    signed = []
    async with RouterClient(plain_router.url, account=Account.create(), policy=BOTH_NETS) as client:
        with pytest.raises(BadChallenge) as caught:
            await client.complete(
                QUESTION,
                model=MODEL,
                max_tokens=256,
                on_signed=lambda payment, _body: signed.append(payment),
            )
    assert signed == [] and plain_router.state.paid_requests == 0
    message = caught.value.message
    # The reason names the field at fault (`accepts[0]`): the router's maker needs it; but no
    # document, no traceback, and one line.
    assert_refusal(message.replace("accepts[0]", "accepts 0"))
    assert message.startswith("The router asked for payment in a form that could not be read: ")


@pytest.mark.parametrize(("version", "network"), VERSIONS)
async def test_settlement_pending_keeps_its_transaction_and_never_invites_a_second_payment(
    dev_router, store, version, network
):
    dev_router.config.x402_version = version
    dev_router.config.network = network
    dev_router.config.faults = {"settlement-pending"}
    ledger = Ledger(store, (BASE_SEPOLIA,))
    account = Account.create()
    paid_before = dev_router.state.paid_requests
    async with RouterClient(dev_router.url, account=account, policy=BOTH_NETS) as client:
        with pytest.raises(PaymentRejected) as caught:
            await client.complete(QUESTION, model=MODEL, max_tokens=64, on_signed=ledger.signed)
    error = caught.value
    ledger.failed(error.payment, error, accepted=False)
    # The router broadcast the transfer: its transaction is kept and shown, and the user is
    # told it is most likely charged, not to try again.
    transaction = transaction_hash(error.payment.nonce)
    assert error.code == "settlement_pending" and error.transaction == transaction
    message = error.message
    assert_one_plain_line(message)
    assert message.startswith(f"The payment is on its way (tx {transaction}).")
    assert "most likely charged" in message and "would pay twice" in message
    assert "try again" not in message and "nothing was charged" not in message.lower()
    [payment] = store.payments()
    assert (payment.status, payment.tx) == ("unknown", transaction)
    assert ledger.today_at_risk() == error.payment.amount_usd
    assert dev_router.state.paid_requests == paid_before + 1, "not resent"


async def test_a_router_that_requires_a_payment_identifier_is_paid_once_with_ours(dev_router):
    dev_router.config.x402_version = 2
    dev_router.config.network = "eip155:84532"
    dev_router.config.faults = {"payment-id-required"}
    paid_before = dev_router.state.paid_requests
    async with RouterClient(dev_router.url, account=Account.create(), policy=BOTH_NETS) as client:
        done = await client.complete(QUESTION, model=MODEL, max_tokens=64)
    assert done.text
    assert dev_router.state.paid_requests == paid_before + 1, "paid once"
    assert re.fullmatch(r"pay_[0-9a-f]{32}", done.payment.payment_id or "")
    assert dev_router.state.payments[-1].payment_id == done.payment.payment_id


async def test_a_payment_that_never_left_is_not_counted(store):
    """A router that answers the 402 and is gone before the paid request: no connection, so
    the signed payment never left, is `rejected`, and no budget counts it."""
    body = v1_body(v1_requirement(BASE_SEPOLIA, amount="13500"))
    head = (
        f"HTTP/1.1 402 Payment Required\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        server.close()  # nobody listens any more: the paid request finds no one
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ledger = Ledger(store, (BASE_SEPOLIA,), session_budget_usd=Decimal("1"))
    async with RouterClient(
        f"http://127.0.0.1:{port}", account=Account.create(), policy=BOTH_NETS
    ) as client:
        with pytest.raises(NeverSent) as caught:
            await client.complete(QUESTION, model=MODEL, max_tokens=64, on_signed=ledger.signed)
    error = caught.value
    assert error.payment is not None
    assert "never sent, so nothing was charged" in error.message
    ledger.failed(error.payment, error, accepted=False)
    [payment] = store.payments()
    assert payment.status == "rejected" and not payment.at_risk
    assert ledger.session_at_risk() == 0 and ledger.today_at_risk() == 0
