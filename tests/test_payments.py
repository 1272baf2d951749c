"""x402 without I/O: challenges, the spending policy, signatures and receipts."""

from __future__ import annotations

import base64
import json
from decimal import ROUND_DOWN, Decimal, localcontext

import pytest
from eth_account import Account

from tests.payment_helpers import (
    PAY_TO,
    decode_header,
    recover_payer,
    v1_body,
    v1_requirement,
    v2_headers,
    v2_requirement,
)
from xrouter_tui.payments import (
    BASE,
    BASE_SEPOLIA,
    Budget,
    ChallengeError,
    PaymentRefused,
    SpendingPolicy,
    decode_receipt,
    explain_rejection,
    format_usd,
    parse_challenge,
    read_receipt,
    sign_payment,
)
from xrouter_tui.payments.networks import usd_text

BOTH = SpendingPolicy(networks=(BASE, BASE_SEPOLIA))


@pytest.fixture
def account():
    return Account.create()


# -- challenges ------------------------------------------------------------------------------


def test_v1_challenge_is_read_from_the_body_and_optional_fields_may_be_missing():
    entry = v1_requirement()
    for optional in ("mimeType", "outputSchema", "extra", "description", "maxTimeoutSeconds"):
        del entry[optional]
    challenge = parse_challenge({}, v1_body(entry))
    assert challenge.x402_version == 1
    (requirement,) = challenge.accepts
    assert requirement.amount == 135168
    assert requirement.network == "base"
    assert requirement.pay_to == PAY_TO
    assert requirement.extra == {}
    assert requirement.max_timeout_seconds == 60


def test_v2_challenge_is_read_from_the_header_whatever_the_body():
    challenge = parse_challenge(v2_headers(v2_requirement()), b"<html>Payment required</html>")
    assert challenge.x402_version == 2
    assert challenge.accepts[0].amount == 13500
    assert challenge.accepts[0].network == "eip155:84532"
    assert challenge.resource["url"].endswith("/v1/chat/completions")


def test_header_names_are_matched_case_insensitively_in_plain_dicts():
    header = v2_headers(v2_requirement())["PAYMENT-REQUIRED"]
    assert parse_challenge({"payment-required": header}, b"").x402_version == 2


@pytest.mark.parametrize(
    ("headers", "body", "names"),
    [
        ({}, b"Payment required", "neither a PAYMENT-REQUIRED header nor a JSON body"),
        ({}, b"[1, 2]", "neither a PAYMENT-REQUIRED header"),
        ({}, v1_body(), "lists no payment requirements"),
        ({}, json.dumps({"x402Version": 1, "error": "no route"}).encode(), "the router said: no"),
        ({}, json.dumps({"x402Version": 3, "accepts": [{}]}).encode(), "version 3"),
        ({}, v1_body(v1_requirement(amount="12.5")), "maxAmountRequired is not a whole number"),
        ({}, v1_body(v1_requirement(amount="-5")), "maxAmountRequired is not a whole number"),
        ({}, v1_body(v1_requirement(payTo="nobody")), "payTo is not an 0x address"),
        ({}, v1_body(v1_requirement(asset=None)), "asset is not an 0x address"),
        ({}, v1_body(v1_requirement(scheme="")), "scheme is missing"),
        ({}, v1_body("not an object"), "accepts[0]: not a JSON object"),
        ({"PAYMENT-REQUIRED": "%%% not base64 %%%"}, b"{}", "not base64-encoded JSON"),
        (
            {"PAYMENT-REQUIRED": base64.b64encode(b'"a string"').decode()},
            b"",
            "header is not a JSON object",
        ),
        (v2_headers(v2_requirement(amount=None)), b"", "amount is not a whole number"),
    ],
)
def test_malformed_challenges_raise_an_error_that_names_the_problem(headers, body, names):
    with pytest.raises(ChallengeError) as caught:
        parse_challenge(headers, body)
    assert names in str(caught.value)


def test_an_unusable_requirement_is_dropped_when_another_is_usable():
    challenge = parse_challenge({}, v1_body(v1_requirement(amount="x"), v1_requirement()))
    assert [r.amount for r in challenge.accepts] == [135168]


# -- the spending policy -------------------------------------------------------------------


def test_policy_picks_the_cheapest_allowed_requirement():
    challenge = parse_challenge(
        {},
        v1_body(
            v1_requirement(BASE, amount="300000"),
            v1_requirement(BASE_SEPOLIA, amount="1000"),
            v1_requirement(BASE, amount="200000"),
        ),
    )
    quote = SpendingPolicy(networks=(BASE,)).choose(challenge)
    assert quote.network is BASE
    assert quote.amount == 200000
    assert quote.amount_usd == Decimal("0.2")


def test_test_networks_are_refused_unless_configured():
    challenge = parse_challenge({}, v1_body(v1_requirement(BASE_SEPOLIA)))
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy().choose(challenge)
    assert caught.value.code == "network_not_allowed"
    assert "Base Sepolia" in caught.value.message
    assert "allowed_networks" in caught.value.message
    assert BOTH.choose(challenge).network is BASE_SEPOLIA


def test_a_price_over_the_cap_is_refused_naming_amount_cap_and_setting():
    challenge = parse_challenge({}, v1_body(v1_requirement(amount="135168")))
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy(max_per_request_usd=Decimal("0.10")).choose(challenge)
    refusal = caught.value
    assert refusal.code == "over_cap"
    assert "$0.135168" in refusal.message
    assert "$0.100000" in refusal.message
    assert "max_per_request_usd" in refusal.message
    assert "Nothing was signed" in refusal.message


def test_a_price_over_the_remaining_budget_is_refused():
    challenge = parse_challenge({}, v1_body(v1_requirement(amount="50000")))
    budget = Budget(
        limit_usd=Decimal("1.00"), spent_usd=Decimal("0.98"), setting="daily_budget_usd"
    )
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy().choose(challenge, [budget])
    assert caught.value.code == "over_budget"
    assert "daily_budget_usd" in caught.value.message
    assert "$0.980000" in caught.value.message
    roomy = Budget(limit_usd=Decimal("1.00"), spent_usd=Decimal("0.90"), setting="daily_budget_usd")
    assert SpendingPolicy().choose(challenge, [roomy]).amount == 50000


def test_a_refusal_says_the_room_left_under_every_limit_at_once():
    # Over the cap, with even less left of the day: a cheaper request must fit both.
    dear = parse_challenge({}, v1_body(v1_requirement(amount="600000")))
    day = Budget(limit_usd=Decimal("1.00"), spent_usd=Decimal("0.99"), setting="daily_budget_usd")
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy(max_per_request_usd=Decimal("0.50")).choose(dear, [day])
    assert caught.value.code == "over_cap" and caught.value.room_usd == Decimal("0.01")
    # Over the day's room, under a cap tighter than that room.
    cheap = parse_challenge({}, v1_body(v1_requirement(amount="50000")))
    roomy_day = Budget(Decimal("1.00"), Decimal("0.96"), "daily_budget_usd")
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy(max_per_request_usd=Decimal("0.03")).choose(cheap, [roomy_day])
    assert caught.value.code == "over_cap" and caught.value.room_usd == Decimal("0.03")
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy(max_per_request_usd=Decimal("0.50")).choose(cheap, [roomy_day])
    assert caught.value.code == "over_budget" and caught.value.room_usd == Decimal("0.04")


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"scheme": "upto"}, "unsupported_scheme"),
        ({"extra": {"assetTransferMethod": "permit2"}}, "unsupported_transfer_method"),
        ({"asset": "0x" + "11" * 20}, "unknown_asset"),
        ({"network": "solana"}, "network_not_allowed"),
        ({"maxAmountRequired": "0"}, "zero_amount"),
    ],
)
def test_requirements_outside_the_policy_are_refused_before_signing(changes, code):
    challenge = parse_challenge({}, v1_body(v1_requirement(**changes)))
    with pytest.raises(PaymentRefused) as caught:
        SpendingPolicy().choose(challenge)
    assert caught.value.code == code


# -- signing -------------------------------------------------------------------------------


def test_v1_payment_recovers_to_the_payer_and_pays_the_exact_amount(account):
    quote = SpendingPolicy().choose(parse_challenge({}, v1_body(v1_requirement(amount="135168"))))
    signed = sign_payment(account, quote, now=1_700_000_000)
    assert signed.header_name == "X-PAYMENT"
    document = decode_header(signed.header_value)
    assert document["x402Version"] == 1
    assert document["scheme"] == "exact"
    assert document["network"] == "base"
    auth = document["payload"]["authorization"]
    assert auth == {
        "from": account.address,
        "to": PAY_TO,
        "value": "135168",
        "validAfter": str(1_700_000_000 - 600),
        "validBefore": str(1_700_000_000 + 120),
        "nonce": signed.nonce,
    }
    assert len(bytes.fromhex(signed.nonce[2:])) == 32
    assert recover_payer(document, BASE) == account.address


def test_v2_payment_echoes_the_chosen_requirement_verbatim(account):
    entry = v2_requirement(
        extra={"name": "USDC", "version": "2", "unknownField": [1, {"b": None}]},
        someFutureField="kept",
    )
    headers = v2_headers(v2_requirement(BASE, amount="999999999"), entry)
    quote = BOTH.choose(parse_challenge(headers, b"{}"))
    signed = sign_payment(account, quote)
    assert signed.header_name == "PAYMENT-SIGNATURE"
    document = decode_header(signed.header_value)
    assert document["x402Version"] == 2
    assert document["accepted"] == entry
    assert list(document["accepted"]) == list(entry)  # same fields, same order
    assert document["resource"] == decode_header(headers["PAYMENT-REQUIRED"])["resource"]
    assert document["payload"]["authorization"]["value"] == "13500"
    assert recover_payer(document, BASE_SEPOLIA) == account.address


def test_each_payment_has_a_fresh_nonce(account):
    quote = SpendingPolicy().choose(parse_challenge({}, v1_body(v1_requirement())))
    nonces = {sign_payment(account, quote).nonce for _ in range(5)}
    assert len(nonces) == 5


def test_the_domain_falls_back_to_the_known_table_when_extra_is_absent(account):
    quote = SpendingPolicy().choose(parse_challenge({}, v1_body(v1_requirement(extra=None))))
    document = decode_header(sign_payment(account, quote).header_value)
    assert recover_payer(document, BASE, domain_name="USD Coin") == account.address


def test_a_wrong_domain_name_signs_silently_but_recovers_to_someone_else(account):
    # Why the domain must come from the challenge: this mistake raises nothing anywhere.
    wrong = v1_requirement(extra={"name": "USDC", "version": "2"})
    quote = SpendingPolicy().choose(parse_challenge({}, v1_body(wrong)))
    document = decode_header(sign_payment(account, quote).header_value)
    assert recover_payer(document, BASE, domain_name="USD Coin") != account.address


def test_the_validity_window_is_clamped(account):
    for asked, window in ((5, 10), (120, 120), (86_400, 900)):
        challenge = parse_challenge({}, v1_body(v1_requirement(maxTimeoutSeconds=asked)))
        signed = sign_payment(account, SpendingPolicy().choose(challenge), now=1000)
        assert signed.valid_before == 1000 + window


# -- receipts and reasons -------------------------------------------------------------------


def _b64(document: dict) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_receipts_decode_in_both_versions():
    tx = "0x" + "ab" * 32
    v1 = {"X-PAYMENT-RESPONSE": _b64({"success": True, "transactionHash": tx, "network": "base"})}
    receipt = read_receipt(v1)
    assert receipt.success and receipt.transaction == tx and receipt.network == "base"
    v2 = decode_receipt(
        _b64({"success": True, "transaction": tx, "network": "eip155:8453", "amount": "135168"})
    )
    assert v2.amount == 135168
    failed = decode_receipt(_b64({"success": False, "errorReason": "insufficient_funds"}))
    assert not failed.success and failed.error_reason == "insufficient_funds"


def test_a_missing_or_broken_receipt_is_no_receipt():
    assert read_receipt({}) is None
    assert read_receipt({"PAYMENT-RESPONSE": "not base64 at all!"}) is None


def test_rejections_read_as_plain_sentences():
    payer = "0xAbC0000000000000000000000000000000000dEf"
    text = explain_rejection(
        "invalid_exact_evm_insufficient_balance",
        payer=payer,
        network=BASE,
        amount_usd=Decimal("0.0135"),
    )
    assert text == (
        "Not enough USDC in 0xAbC0…0dEf on Base: the request needs $0.013500 "
        "(invalid_exact_evm_insufficient_balance)."
    )
    unknown = explain_rejection("something_new", payer=payer, network=BASE, amount_usd=Decimal(1))
    assert "(something_new)" in unknown


def test_amounts_format_for_people():
    assert format_usd(Decimal("0.135168")) == "$0.135168"
    assert format_usd(Decimal("0.0135")) == "$0.013500"
    assert format_usd(Decimal("0.1")) == "$0.100000"
    assert format_usd(Decimal("2")) == "$2.000000"
    assert format_usd(Decimal("1E-6")) == "$0.000001"
    assert format_usd(Decimal("-1.5")) == "-$1.500000"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0.0135", "0.013500"),
        ("0", "0.000000"),
        ("-0", "0.000000"),
        ("0E-12", "0.000000"),
        # No amount is less than nothing, even rounded.
        ("-0.0000004", "0.000000"),
        ("-2.5", "-2.500000"),
        ("1E-6", "0.000001"),
        ("1E+3", "1000.000000"),
        # Half-even beyond six decimals: the tie goes to the even digit.
        ("0.0000005", "0.000000"),
        ("0.0000015", "0.000002"),
        ("0.00000051", "0.000001"),
        ("-0.0000025", "-0.000002"),
        ("999999.9999995", "1000000.000000"),
        # Large amounts whole: never grouped, never scientific, past the default 28 digits.
        ("1234567.5", "1234567.500000"),
        ("1E+30", "1000000000000000000000000000000.000000"),
        (
            "123456789012345678901234567890.1234565",
            "123456789012345678901234567890.123456",
        ),
    ],
)
def test_amounts_are_text_with_six_decimals(amount, text):
    assert usd_text(Decimal(amount)) == text
    shown = "-$" + text[1:] if text.startswith("-") else "$" + text
    assert format_usd(Decimal(amount)) == shown


def test_no_decimal_context_changes_how_money_reads():
    with localcontext() as context:
        context.prec = 3
        context.rounding = ROUND_DOWN
        assert usd_text(Decimal("12345.6789995")) == "12345.679000"


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_what_is_no_amount_is_never_written_as_money(amount):
    with pytest.raises(ValueError):
        usd_text(Decimal(amount))


@pytest.mark.parametrize(
    "code",
    [
        "invalid_exact_evm_payload_signature",
        "invalid_exact_evm_payload_authorization_value_mismatch",
        "invalid_exact_evm_payload_recipient_mismatch",
        "invalid_exact_evm_payload_authorization_valid_before",
        "invalid_exact_evm_payload_authorization_valid_after",
        "invalid_exact_evm_insufficient_balance",
        "invalid_exact_evm_nonce_already_used",
        "invalid_exact_evm_token_name_mismatch",
        "insufficient_funds",
        "invalid_network",
        "invalid_scheme",
    ],
)
def test_every_known_facilitator_code_has_its_own_sentence(code):
    payer = "0x" + "12" * 20
    text = explain_rejection(code, payer=payer, network=BASE, amount_usd=Decimal("0.01"))
    assert not text.startswith("The router refused the payment.")
    assert text.endswith((f"({code}).", f"({code})"))
