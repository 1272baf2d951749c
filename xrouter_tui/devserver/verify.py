"""Checking a payment header against the requirement offered, as an x402 facilitator would.
Independent of the client's signing code, so a signing bug shows up as a refused payment.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from xrouter_tui import safe_json
from xrouter_tui.payments.networks import Network
from xrouter_tui.payments.reasons import NONCE_ALREADY_USED

__all__ = [
    "INVALID_NETWORK",
    "INVALID_PAYLOAD",
    "INVALID_SCHEME",
    "INVALID_VERSION",
    "NONCE_ALREADY_USED",
    "RECIPIENT_MISMATCH",
    "SIGNATURE_INVALID",
    "VALID_AFTER",
    "VALID_BEFORE",
    "VALUE_MISMATCH",
    "Offer",
    "PaymentCheck",
    "verify_payment",
]

INVALID_PAYLOAD = "invalid_payload"
INVALID_VERSION = "invalid_x402_version"
INVALID_SCHEME = "invalid_scheme"
INVALID_NETWORK = "invalid_network"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
SIGNATURE_INVALID = "invalid_exact_evm_payload_signature"

# Facilitators want time left to settle: an authorization expiring within seconds is refused.
MIN_SECONDS_LEFT = 6

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NONCE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_UINT = re.compile(r"^[0-9]{1,78}$")

# Written out here rather than imported from the client's signing code on purpose: the server
# must catch a mistake in the client's typed data, not share it.
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_AUTHORIZATION_TYPE = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]


@dataclass(frozen=True, slots=True)
class Offer:
    """What the server asked for: one `accepts` entry exactly as sent, and its network."""

    x402_version: int
    network: Network
    requirement: Mapping[str, Any]
    # v2: the extensions the 402 declares (the payment-identifier one, with a fault).
    extensions: Mapping[str, Any] | None = None

    @property
    def amount(self) -> int:
        key = "maxAmountRequired" if self.x402_version == 1 else "amount"
        return int(self.requirement[key])


@dataclass(frozen=True, slots=True)
class PaymentCheck:
    """The outcome: `error` is None and `payer` set when the payment is good."""

    error: str | None
    payer: str | None = None
    nonce: str | None = None
    amount: int | None = None
    valid_before: int | None = None
    # The rest of the authorization, for settling it on the local chain.
    pay_to: str | None = None
    valid_after: int | None = None
    signature: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Unreadable(Exception):
    pass


def verify_payment(
    header: str,
    offer: Offer,
    *,
    now: int | None = None,
    nonce_used: Callable[[str, str], bool] = lambda payer, nonce: False,
) -> PaymentCheck:
    """Check a base64 payment header against `offer`; the first failed check names the error."""
    now = int(time.time()) if now is None else now
    try:
        return _verify(header, offer, now, nonce_used)
    except _Unreadable:
        return PaymentCheck(INVALID_PAYLOAD)


def _verify(
    header: str, offer: Offer, now: int, nonce_used: Callable[[str, str], bool]
) -> PaymentCheck:
    document = _decode(header)
    version = document.get("x402Version")
    if isinstance(version, bool) or version != offer.x402_version:
        return PaymentCheck(INVALID_VERSION)

    requirement = offer.requirement
    if offer.x402_version == 1:
        scheme, network = document.get("scheme"), document.get("network")
    else:
        accepted = document.get("accepted")
        if not isinstance(accepted, dict):
            raise _Unreadable
        scheme, network = accepted.get("scheme"), accepted.get("network")
    if scheme != requirement["scheme"]:
        return PaymentCheck(INVALID_SCHEME)
    if network != requirement["network"]:
        return PaymentCheck(INVALID_NETWORK)
    # v2 echoes the whole requirement back; any difference means it paid for another offer.
    if offer.x402_version == 2 and accepted != dict(requirement):
        return PaymentCheck(INVALID_PAYLOAD)

    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise _Unreadable
    authorization = payload.get("authorization")
    signature = payload.get("signature")
    if not isinstance(authorization, dict) or not _matches(_SIGNATURE, signature):
        raise _Unreadable
    payer = _field(authorization, "from", _ADDRESS)
    pay_to = _field(authorization, "to", _ADDRESS)
    value = int(_field(authorization, "value", _UINT))
    valid_after = int(_field(authorization, "validAfter", _UINT))
    valid_before = int(_field(authorization, "validBefore", _UINT))
    nonce = _field(authorization, "nonce", _NONCE).lower()

    if pay_to.lower() != str(requirement["payTo"]).lower():
        return PaymentCheck(RECIPIENT_MISMATCH)
    if value != offer.amount:
        return PaymentCheck(VALUE_MISMATCH)
    if valid_before < now + MIN_SECONDS_LEFT:
        return PaymentCheck(VALID_BEFORE)
    if valid_after > now:
        return PaymentCheck(VALID_AFTER)

    typed = _typed_data(offer, payer, pay_to, value, valid_after, valid_before, nonce)
    try:
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except Exception:  # eth-keys raises several types for a malformed (r, s, v)
        return PaymentCheck(SIGNATURE_INVALID)
    if signer.lower() != payer.lower():
        return PaymentCheck(SIGNATURE_INVALID)

    payer = to_checksum_address(payer)
    if nonce_used(payer, nonce):
        return PaymentCheck(NONCE_ALREADY_USED)
    return PaymentCheck(
        None,
        payer=payer,
        nonce=nonce,
        amount=value,
        valid_before=valid_before,
        pay_to=to_checksum_address(pay_to),
        valid_after=valid_after,
        signature=signature,
    )


# x402 v2's payment-identifier: 16 to 128 letters, digits, hyphens and underscores.
_PAYMENT_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")


def payment_identifier(header: str) -> str | None:
    """The valid payment-identifier id a v2 payment header carries, or None."""
    try:
        document = _decode(header)
    except _Unreadable:
        return None
    extensions = document.get("extensions")
    declaration = extensions.get("payment-identifier") if isinstance(extensions, dict) else None
    info = declaration.get("info") if isinstance(declaration, dict) else None
    found = info.get("id") if isinstance(info, dict) else None
    return found if isinstance(found, str) and _PAYMENT_ID.fullmatch(found) else None


def _decode(header: str) -> dict[str, Any]:
    text = header.strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        document = safe_json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _Unreadable from exc
    if not isinstance(document, dict):
        raise _Unreadable
    return document


def _matches(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.match(value) is not None


def _field(authorization: Mapping[str, Any], key: str, pattern: re.Pattern[str]) -> str:
    value = authorization.get(key)
    if not _matches(pattern, value):
        raise _Unreadable
    return value


def _typed_data(
    offer: Offer,
    payer: str,
    pay_to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: str,
) -> dict[str, Any]:
    extra = offer.requirement.get("extra") or {}
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "TransferWithAuthorization": _AUTHORIZATION_TYPE},
        "primaryType": "TransferWithAuthorization",
        # The domain is what this server offered, never what the payment claims.
        "domain": {
            "name": extra["name"],
            "version": extra["version"],
            "chainId": offer.network.chain_id,
            "verifyingContract": to_checksum_address(offer.requirement["asset"]),
        },
        "message": {
            "from": to_checksum_address(payer),
            "to": to_checksum_address(pay_to),
            "value": value,
            "validAfter": valid_after,
            "validBefore": valid_before,
            "nonce": bytes.fromhex(nonce[2:]),
        },
    }
