"""Signing a chosen requirement: an EIP-3009 `TransferWithAuthorization`, typed as EIP-712.

The signature is made with coincurve over the EIP-712 digest that `signer` computes, so that
eth-account's slow import stays off the program's path (the tests prove both sign alike); the
header it goes into is `X-PAYMENT` (x402 v1) or `PAYMENT-SIGNATURE` (v2, with the chosen
requirement echoed back verbatim).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xrouter_tui.payments.networks import Network, atomic_to_usd
from xrouter_tui.payments.policy import Quote
from xrouter_tui.payments.signer import (
    Signer,
    as_wallet_key,
    to_checksum_address,
    transfer_authorization_digest,
)

__all__ = [
    "PAYMENT_IDENTIFIER",
    "TRANSFER_WITH_AUTHORIZATION_TYPES",
    "SignedPayment",
    "authorization_typed_data",
    "echoed_extensions",
    "sign_payment",
]

# x402 v2's idempotency extension: the key of its declaration among the extensions.
PAYMENT_IDENTIFIER = "payment-identifier"
# Reference clients date validAfter ten minutes back, so a payer's clock running ahead is harmless.
VALID_AFTER_SLACK_SECONDS = 600
# Never leave an authorization open for long, whatever the router asks: it can settle until then.
MAX_VALIDITY_SECONDS = 900
# Facilitators want validBefore at least six seconds ahead; keep a little margin for the trip.
MIN_VALIDITY_SECONDS = 10

TRANSFER_WITH_AUTHORIZATION_TYPES: dict[str, list[dict[str, str]]] = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
}


@dataclass(frozen=True, slots=True)
class SignedPayment:
    """A signed authorization and the header that carries it: what may be charged, and to whom.

    Kept whole so that a possible charge can be reconciled later: (payer, nonce, validBefore,
    amount, payTo) identify it on chain.
    """

    x402_version: int
    header_name: str
    header_value: str
    network: Network
    asset: str
    pay_to: str
    payer: str
    amount: int
    nonce: str
    valid_after: int
    valid_before: int
    signature: str
    # x402 v2's payment-identifier (`pay_` and 32 hex digits), when the router declared the
    # extension: its idempotency key for this payment.
    payment_id: str | None = None

    @property
    def amount_usd(self) -> Decimal:
        return atomic_to_usd(self.amount, self.network.usdc.decimals)


def authorization_typed_data(
    *,
    network: Network,
    asset: str,
    extra: dict[str, Any] | Any,
    authorization: dict[str, Any],
) -> dict[str, Any]:
    """The EIP-712 document that is signed; the domain comes from `extra`, else the known table.

    A wrong domain name does not fail here: the signature just recovers to another address.
    """
    name = extra.get("name") if isinstance(extra, dict) else None
    version = extra.get("version") if isinstance(extra, dict) else None
    known = network.usdc if asset.lower() == network.usdc.address.lower() else None
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            **TRANSFER_WITH_AUTHORIZATION_TYPES,
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {
            "name": name if isinstance(name, str) else (known.eip712_name if known else ""),
            "version": version
            if isinstance(version, str)
            else (known.eip712_version if known else ""),
            "chainId": network.chain_id,
            "verifyingContract": to_checksum_address(asset),
        },
        "message": {
            "from": to_checksum_address(authorization["from"]),
            "to": to_checksum_address(authorization["to"]),
            "value": int(authorization["value"]),
            "validAfter": int(authorization["validAfter"]),
            "validBefore": int(authorization["validBefore"]),
            "nonce": bytes.fromhex(str(authorization["nonce"]).removeprefix("0x")),
        },
    }


def sign_payment(
    account: Signer,
    quote: Quote,
    *,
    now: int | None = None,
    nonce: bytes | None = None,
) -> SignedPayment:
    """Sign the quoted requirement for exactly its amount and encode the payment header.

    `account` is a `WalletKey` or anything with the same `address` and `key` (an eth-account
    `LocalAccount` will do).
    """
    wallet_key = as_wallet_key(account)
    requirement = quote.requirement
    now = int(time.time()) if now is None else now
    nonce = os.urandom(32) if nonce is None else nonce
    if len(nonce) != 32:
        raise ValueError("an EIP-3009 nonce is 32 bytes")
    window = min(max(requirement.max_timeout_seconds, MIN_VALIDITY_SECONDS), MAX_VALIDITY_SECONDS)
    authorization = {
        "from": wallet_key.address,
        "to": requirement.pay_to,
        "value": str(requirement.amount),
        "validAfter": str(now - VALID_AFTER_SLACK_SECONDS),
        "validBefore": str(now + window),
        "nonce": "0x" + nonce.hex(),
    }
    typed = authorization_typed_data(
        network=quote.network,
        asset=requirement.asset,
        extra=requirement.extra,
        authorization=authorization,
    )
    signature = "0x" + wallet_key.sign_digest(transfer_authorization_digest(typed)).hex()
    payload = {"signature": signature, "authorization": authorization}

    version = quote.challenge.x402_version
    if version == 1:
        document: dict[str, Any] = {
            "x402Version": 1,
            "scheme": requirement.scheme,
            "network": requirement.network,
            "payload": payload,
        }
        header_name = "X-PAYMENT"
    else:
        document = {"x402Version": 2}
        if quote.challenge.resource is not None:
            document["resource"] = quote.challenge.resource
        document["accepted"] = requirement.raw
        document["payload"] = payload
        extensions, payment_id = echoed_extensions(quote.challenge.extensions)
        if extensions is not None:
            document["extensions"] = extensions
        header_name = "PAYMENT-SIGNATURE"
    encoded = json.dumps(document, separators=(",", ":")).encode()
    return SignedPayment(
        x402_version=version,
        header_name=header_name,
        header_value=base64.b64encode(encoded).decode("ascii"),
        network=quote.network,
        asset=requirement.asset,
        pay_to=requirement.pay_to,
        payer=wallet_key.address,
        amount=requirement.amount,
        nonce=authorization["nonce"],
        valid_after=int(authorization["validAfter"]),
        valid_before=int(authorization["validBefore"]),
        signature=signature,
        payment_id=payment_id if version == 2 else None,
    )


def echoed_extensions(
    declared: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """The `extensions` a v2 payment sends back: what the server declared, as it declared it
    (x402 v2 §5.1.2: a client echoes them), with a `payment-identifier` id added when the
    server declared that extension (`info.required` a boolean), required or not: the server
    may then recognise a resent payment. Returns them and the id (`pay_` + 32 hex digits, a
    fresh one)."""
    if declared is None:
        return None, None
    extensions = dict(declared)
    declaration = extensions.get(PAYMENT_IDENTIFIER)
    if not (
        isinstance(declaration, dict)
        and isinstance(declaration.get("info"), dict)
        and isinstance(declaration["info"].get("required"), bool)
    ):
        return extensions, None
    payment_id = "pay_" + secrets.token_hex(16)
    extensions[PAYMENT_IDENTIFIER] = {
        **declaration,
        "info": {**declaration["info"], "id": payment_id},
    }
    return extensions, payment_id
