"""Challenges as routers send them, for the payment tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from xrouter_tui.payments import BASE, BASE_SEPOLIA, Network

PAY_TO = "0xeb4da07be74b26b2966b3cd07842cade70e47d53"


def v1_requirement(net: Network = BASE, amount: str = "135168", **changes: Any) -> dict:
    entry = {
        "scheme": "exact",
        "network": net.v1_name,
        "maxAmountRequired": amount,
        "resource": "https://api.x-router.ai/v1/chat/completions",
        "description": "Chat completion",
        "mimeType": "application/json",
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 120,
        "asset": net.usdc.address,
        "outputSchema": None,
        "extra": {"name": net.usdc.eip712_name, "version": "2"},
    }
    entry.update(changes)
    return entry


def v1_body(*accepts: dict, error: str = "X-PAYMENT header is required") -> bytes:
    return json.dumps({"x402Version": 1, "error": error, "accepts": list(accepts)}).encode()


def v2_requirement(net: Network = BASE_SEPOLIA, amount: str = "13500", **changes: Any) -> dict:
    entry = {
        "scheme": "exact",
        "network": net.caip2,
        "amount": amount,
        "asset": net.usdc.address,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 60,
        "extra": {"name": net.usdc.eip712_name, "version": "2"},
    }
    entry.update(changes)
    return entry


def v2_headers(*accepts: dict, **top: Any) -> dict[str, str]:
    document = {
        "x402Version": 2,
        "error": "Payment required",
        "resource": {"url": "http://127.0.0.1/v1/chat/completions", "mimeType": "application/json"},
        "accepts": list(accepts),
        **top,
    }
    return {"PAYMENT-REQUIRED": base64.b64encode(json.dumps(document).encode()).decode()}


def decode_header(value: str) -> dict:
    return json.loads(base64.b64decode(value))


def recover_payer(document: dict, network: Network, *, domain_name: str | None = None) -> str:
    """Who signed a decoded payment, by EIP-712 recovery built here, apart from the signer."""
    auth = document["payload"]["authorization"]
    message = eth_typed_message(
        domain={
            "name": domain_name or network.usdc.eip712_name,
            "version": "2",
            "chainId": network.chain_id,
            "verifyingContract": network.usdc.address,
        },
        message=authorization_message(auth),
    )
    return Account.recover_message(message, signature=document["payload"]["signature"])


def authorization_message(auth: dict) -> dict:
    """The EIP-712 message of a payment header's authorization, read apart from the program."""
    return {
        "from": auth["from"],
        "to": auth["to"],
        "value": int(auth["value"]),
        "validAfter": int(auth["validAfter"]),
        "validBefore": int(auth["validBefore"]),
        "nonce": bytes.fromhex(auth["nonce"][2:]),
    }


def eth_typed_message(*, domain: dict, message: dict):
    types = {
        "TransferWithAuthorization": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
        ]
    }
    return encode_typed_data(domain_data=domain, message_types=types, message_data=message)
