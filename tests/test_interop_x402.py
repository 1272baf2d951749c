"""Interop with the official x402 SDK (`pip install "x402[evm]"`), a peer that no one here wrote.

Part 1: the SDK's facilitator (v1 and v2 exact EVM schemes) verifies and settles the payments our
`payments` package signs, and rejects tampered ones for the right reason. It talks to
`StandInChain`, a small in-memory stand-in for Base / Base Sepolia that answers the contract calls
the SDK makes as a FiatToken v2 USDC contract and Multicall3 would: no RPC node, no facilitator, no
network at all.

Part 2: the SDK's own client (`x402Client` + `x402AsyncTransport` in an `httpx.AsyncClient`) pays
our local development router on 127.0.0.1, in x402 v1 and v2.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from typing import Any

import httpx
import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from x402 import x402Client, x402ClientSync
from x402.extensions.payment_identifier import (
    PAYMENT_IDENTIFIER,
    declare_payment_identifier_extension,
    extract_and_validate_payment_identifier,
    validate_payment_identifier_requirement,
)
from x402.facilitator import x402FacilitatorSync
from x402.http import x402HTTPClientSync
from x402.http.clients.httpx import x402AsyncTransport
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.mechanisms.evm.constants import MULTICALL3_ADDRESS
from x402.mechanisms.evm.default_assets import get_default_asset
from x402.mechanisms.evm.eip712 import hash_eip3009_authorization
from x402.mechanisms.evm.exact import (
    ExactEvmFacilitatorScheme,
    ExactEvmServerScheme,
    register_exact_evm_client,
)
from x402.mechanisms.evm.exact.v1.facilitator import ExactEvmSchemeV1
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.mechanisms.evm.types import (
    ExactEIP3009Authorization,
    TransactionReceipt,
    TypedDataDomain,
    TypedDataField,
)
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1
from x402.server import x402ResourceServerSync

from tests.payment_helpers import eth_typed_message
from xrouter_tui.payments import (
    BASE,
    BASE_SEPOLIA,
    SignedPayment,
    SpendingPolicy,
    parse_challenge,
    read_receipt,
    sign_payment,
)

# The SDK's own invalid-reason codes (x402.mechanisms.evm.constants), spelled out so that a renamed
# code shows up here as a failure rather than silently following the SDK.
VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
INVALID_SIGNATURE = "invalid_exact_evm_payload_signature"
VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
TOKEN_NAME_MISMATCH = "invalid_exact_evm_token_name_mismatch"
INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
NONCE_ALREADY_USED = "invalid_exact_evm_nonce_already_used"

PAY_TO = to_checksum_address("0xeb4da07be74b26b2966b3cd07842cade70e47d53")
RESOURCE_URL = "http://127.0.0.1/v1/chat/completions"
AMOUNT = 135168  # 0.135168 USDC, the upfront charge seen in the wild
FUNDED = 1_000 * 10**6  # 1,000 USDC: a well-funded payer

# (v1 name, CAIP-2) of the networks our client pays on.
NETWORKS = {"base": "eip155:8453", "base-sepolia": "eip155:84532"}


# --------------------------------------------------------------------------------------------
# A stand-in for the chain: USDC (FiatToken v2.2 semantics) and Multicall3, in memory.
# --------------------------------------------------------------------------------------------


class Revert(Exception):
    """An `eth_call` that reverted, worded as an RPC node reports it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"execution reverted: {reason}")
        self.reason = reason


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


_TRANSFER_ARGS = ["address", "address", "uint256", "uint256", "uint256", "bytes32"]
# selector -> (function, argument types, return types): what USDC answers.
_TOKEN_ABI: dict[bytes, tuple[str, list[str], list[str]]] = {
    _selector(f"{name}({','.join(args)})"): (name, args, returns)
    for name, args, returns in [
        ("balanceOf", ["address"], ["uint256"]),
        ("name", [], ["string"]),
        ("version", [], ["string"]),
        ("authorizationState", ["address", "bytes32"], ["bool"]),
        ("transferWithAuthorization", [*_TRANSFER_ARGS, "uint8", "bytes32", "bytes32"], []),
        ("transferWithAuthorization", [*_TRANSFER_ARGS, "bytes"], []),
    ]
}
_TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)")
_CODE = bytes.fromhex("6080604052")  # any non-empty bytecode: "a contract lives here"


class StandInChain:
    """Implements the SDK's `FacilitatorEvmSigner` protocol over an in-memory chain.

    It holds the network's USDC (address, EIP-712 name and version from the SDK's own asset table,
    so nothing here comes from our `networks.py`) and answers as the real contracts would:
    `transferWithAuthorization` checks the validity window, the nonce, the signature against the
    token's real EIP-712 domain and the balance, reverting with FiatToken's messages; Multicall3's
    `tryAggregate` runs sub-calls and returns their revert data. Every payer starts with `balance`.
    """

    def __init__(self, caip2: str, *, balance: int = FUNDED) -> None:
        asset = get_default_asset(caip2)
        self.caip2 = caip2
        self.chain_id = int(caip2.split(":")[1])
        self.token = to_checksum_address(asset["asset"])
        self.token_name = asset["name"]
        self.token_version = asset["version"]
        self.initial_balance = balance
        self.balances: dict[str, int] = {}
        self.used_nonces: set[tuple[str, bytes]] = set()
        self.receipts: dict[str, TransactionReceipt] = {}
        self.calls: list[str] = []  # every contract function the SDK called, in order
        self.relayer = Account.create().address

    # -- FacilitatorEvmSigner ----------------------------------------------------------------

    def get_addresses(self) -> list[str]:
        return [self.relayer]

    def get_chain_id(self) -> int:
        return self.chain_id

    def get_code(self, address: str) -> bytes:
        contracts = {self.token.lower(), MULTICALL3_ADDRESS.lower()}
        return _CODE if address.lower() in contracts else b""  # everyone else is an EOA

    def get_balance(self, address: str, token_address: str) -> int:
        if token_address.lower() != self.token.lower():
            return 0
        return self._balance(address)

    def read_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any
    ) -> Any:
        self.calls.append(function_name)
        if address.lower() == MULTICALL3_ADDRESS.lower() and function_name == "tryAggregate":
            _require_success, calls = args
            return [self._sub_call(target, data) for target, data in calls]
        if address.lower() == self.token.lower():
            return self._token(function_name, args, execute=False)
        raise Revert("call to an address without code")

    def write_contract(
        self,
        address: str,
        abi: list[dict[str, Any]],
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        self.calls.append(f"write:{function_name}")
        if address.lower() != self.token.lower() or function_name != "transferWithAuthorization":
            raise Revert(f"unexpected transaction {function_name} to {address}")
        self._token(function_name, args, execute=True)
        tx_hash = "0x" + os.urandom(32).hex()
        payer, payee, value = args[0], args[1], args[2]
        log = {
            "address": self.token,
            "topics": [
                "0x" + _TRANSFER_TOPIC.hex(),
                "0x" + abi_encode(["address"], [payer]).hex(),
                "0x" + abi_encode(["address"], [payee]).hex(),
            ],
            "data": "0x" + abi_encode(["uint256"], [value]).hex(),
        }
        self.receipts[tx_hash] = TransactionReceipt(
            status=1, block_number=len(self.receipts) + 1, tx_hash=tx_hash, logs=[log]
        )
        return tx_hash

    def send_transaction(self, to: str, data: bytes) -> str:
        raise Revert("no raw transactions on the stand-in chain")

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        return self.receipts[tx_hash]

    def verify_typed_data(
        self,
        address: str,
        domain: TypedDataDomain | dict[str, Any],
        types: dict[str, list[TypedDataField]] | dict[str, list[dict[str, str]]],
        primary_type: str,
        message: dict[str, Any],
        signature: bytes,
    ) -> bool:
        # The exact scheme's EIP-3009 path never calls this (it asks get_code, then ecrecovers
        # by itself); it is here because the protocol has it, and does real recovery.
        if isinstance(domain, TypedDataDomain):
            domain = {
                "name": domain.name,
                "version": domain.version,
                "chainId": domain.chain_id,
                "verifyingContract": domain.verifying_contract,
            }
        plain_types = {
            name: [f if isinstance(f, dict) else {"name": f.name, "type": f.type} for f in fields]
            for name, fields in types.items()
            if name != "EIP712Domain"
        }
        signable = encode_typed_data(
            domain_data=domain, message_types=plain_types, message_data=message
        )
        try:
            recovered = Account.recover_message(signable, signature=signature)
        except Exception:
            return False
        return recovered.lower() == address.lower()

    # -- the contracts -------------------------------------------------------------------------

    def _balance(self, address: str) -> int:
        return self.balances.get(address.lower(), self.initial_balance)

    def _sub_call(self, target: str, data: bytes) -> tuple[bool, bytes]:
        entry = _TOKEN_ABI.get(bytes(data[:4]))
        if target.lower() != self.token.lower() or entry is None:
            return (False, b"")
        name, arg_types, return_types = entry
        self.calls.append(name)
        try:
            result = self._token(name, abi_decode(arg_types, bytes(data[4:])), execute=False)
        except Revert as revert:
            return (False, _selector("Error(string)") + abi_encode(["string"], [revert.reason]))
        return (True, abi_encode(return_types, [result]) if return_types else b"")

    def _token(self, function_name: str, args: Any, *, execute: bool) -> Any:
        if function_name == "balanceOf":
            return self._balance(args[0])
        if function_name == "name":
            return self.token_name
        if function_name == "version":
            return self.token_version
        if function_name == "authorizationState":
            return (args[0].lower(), bytes(args[1])) in self.used_nonces
        if function_name == "transferWithAuthorization":
            return self._transfer_with_authorization(args, execute=execute)
        raise Revert(f"no function {function_name}")

    def _transfer_with_authorization(self, args: Any, *, execute: bool) -> None:
        payer, payee, value, valid_after, valid_before, nonce, *signature_parts = args
        now = int(time.time())
        if now <= valid_after:
            raise Revert("FiatTokenV2: authorization is not yet valid")
        if now >= valid_before:
            raise Revert("FiatTokenV2: authorization is expired")
        if (payer.lower(), bytes(nonce)) in self.used_nonces:
            raise Revert("FiatTokenV2: authorization is used or canceled")
        if len(signature_parts) == 3:
            v, r, s = signature_parts
            signature = bytes(r) + bytes(s) + bytes([v])
        else:
            signature = bytes(signature_parts[0])
        message = eth_typed_message(
            domain={
                "name": self.token_name,
                "version": self.token_version,
                "chainId": self.chain_id,
                "verifyingContract": self.token,
            },
            message={
                "from": to_checksum_address(payer),
                "to": to_checksum_address(payee),
                "value": value,
                "validAfter": valid_after,
                "validBefore": valid_before,
                "nonce": bytes(nonce),
            },
        )
        try:
            recovered = Account.recover_message(message, signature=signature)
        except Exception:
            recovered = None
        if recovered is None or recovered.lower() != payer.lower():
            raise Revert("FiatTokenV2: invalid signature")
        if self._balance(payer) < value:
            raise Revert("ERC20: transfer amount exceeds balance")
        if execute:
            self.used_nonces.add((payer.lower(), bytes(nonce)))
            self.balances[payer.lower()] = self._balance(payer) - value
            self.balances[payee.lower()] = self._balance(payee) + value


def sdk_facilitator(chain: StandInChain) -> x402FacilitatorSync:
    """The SDK's facilitator for one network: its v2 and v1 exact EVM schemes on `chain`."""
    v1_name = next(v1 for v1, caip2 in NETWORKS.items() if caip2 == chain.caip2)
    facilitator = x402FacilitatorSync()
    facilitator.register([chain.caip2], ExactEvmFacilitatorScheme(chain))
    facilitator.register_v1([v1_name], ExactEvmSchemeV1(chain))
    return facilitator


# --------------------------------------------------------------------------------------------
# Challenges, made with the SDK's types and encoders as a resource server would.
# --------------------------------------------------------------------------------------------


def sdk_challenge(
    version: int, v1_network: str, *, name: str | None = None
) -> tuple[dict[str, str], bytes, PaymentRequirements | PaymentRequirementsV1]:
    """A 402 (headers, body) for USDC on `v1_network`, and the requirement the server holds."""
    caip2 = NETWORKS[v1_network]
    asset = get_default_asset(caip2)
    extra = {"name": name or asset["name"], "version": asset["version"]}
    if version == 1:
        requirement_v1 = PaymentRequirementsV1(
            scheme="exact",
            network=v1_network,
            max_amount_required=str(AMOUNT),
            resource=RESOURCE_URL,
            description="Chat completion",
            mime_type="application/json",
            pay_to=PAY_TO,
            max_timeout_seconds=120,
            asset=asset["asset"],
            extra=extra,
        )
        required_v1 = PaymentRequiredV1(
            error="X-PAYMENT header is required", accepts=[requirement_v1]
        )
        body = required_v1.model_dump_json(by_alias=True, exclude_none=True).encode()
        return {"content-type": "application/json"}, body, requirement_v1
    requirement = PaymentRequirements(
        scheme="exact",
        network=caip2,
        asset=asset["asset"],
        amount=str(AMOUNT),
        pay_to=PAY_TO,
        max_timeout_seconds=120,
        extra=extra,
    )
    required = PaymentRequired(
        error="Payment required",
        resource=ResourceInfo(
            url=RESOURCE_URL, description="Chat completion", mime_type="application/json"
        ),
        accepts=[requirement],
    )
    return {"PAYMENT-REQUIRED": encode_payment_required_header(required)}, b"{}", requirement


def with_extensions(headers: dict[str, str], extensions: dict[str, Any]) -> dict[str, str]:
    """A v2 402's headers, its PaymentRequired declaring `extensions`."""
    required = decode_payment_required_header(headers["PAYMENT-REQUIRED"])
    required = required.model_copy(update={"extensions": extensions})
    return {"PAYMENT-REQUIRED": encode_payment_required_header(required)}


def our_payment(
    account: LocalAccount, headers: dict[str, str], body: bytes, *, now: int | None = None
) -> SignedPayment:
    """What our client sends for this 402: parse, choose under the policy, sign."""
    challenge = parse_challenge(headers, body)
    quote = SpendingPolicy(networks=(BASE, BASE_SEPOLIA)).choose(challenge)
    return sign_payment(account, quote, now=now)


def header_json(signed: SignedPayment) -> dict[str, Any]:
    return json.loads(base64.b64decode(signed.header_value, validate=True))


def sdk_payload(document: dict[str, Any]) -> PaymentPayload | PaymentPayloadV1:
    """A (possibly tampered) decoded payment header as the SDK's payload type."""
    if document["x402Version"] == 1:
        return PaymentPayloadV1.model_validate(document)
    return PaymentPayload.model_validate(document)


@pytest.fixture
def payer() -> LocalAccount:
    return Account.create()


# --------------------------------------------------------------------------------------------
# Part 1: the SDK's facilitator verifies and settles our payments.
# --------------------------------------------------------------------------------------------

VERSIONS_AND_NETWORKS = [(1, "base"), (1, "base-sepolia"), (2, "base"), (2, "base-sepolia")]


@pytest.mark.parametrize(("version", "network"), VERSIONS_AND_NETWORKS)
def test_sdk_facilitator_verifies_our_payment(
    payer: LocalAccount, version: int, network: str
) -> None:
    chain = StandInChain(NETWORKS[network])
    headers, body, requirement = sdk_challenge(version, network)

    signed = our_payment(payer, headers, body)
    assert signed.header_name == ("X-PAYMENT" if version == 1 else "PAYMENT-SIGNATURE")
    # The SDK's own header decoder reads our header.
    payload = decode_payment_signature_header(signed.header_value)
    assert payload.x402_version == version

    result = sdk_facilitator(chain).verify(payload, requirement)

    assert (result.is_valid, result.invalid_reason) == (True, None)
    assert result.payer == payer.address
    # The verdict went through the simulated transfer on the stand-in chain, not around it.
    assert "transferWithAuthorization" in chain.calls


@pytest.mark.parametrize("network", ["base", "base-sepolia"])
def test_sdk_resource_server_matches_our_echoed_requirement(
    payer: LocalAccount, network: str
) -> None:
    """v2: a resource server finds the requirement it offered in our `accepted` field."""
    headers, body, requirement = sdk_challenge(2, network)
    other_terms = requirement.model_copy(update={"amount": str(AMOUNT + 1)})
    payload = decode_payment_signature_header(our_payment(payer, headers, body).header_value)
    assert isinstance(payload, PaymentPayload)

    server = x402ResourceServerSync()
    server.register(NETWORKS[network], ExactEvmServerScheme())

    assert server.find_matching_requirements([other_terms, requirement], payload) == requirement
    assert server.find_matching_requirements([other_terms], payload) is None


@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_our_payment_identifier_passes_the_sdks_checks(payer: LocalAccount, required: bool) -> None:
    """v2 extensions are echoed, and a declared payment-identifier gets a fresh id of ours
    that the SDK's own helpers extract and validate."""
    headers, body, requirement = sdk_challenge(2, "base")
    declared = {
        PAYMENT_IDENTIFIER: declare_payment_identifier_extension(required=required),
        "other-extension": {"info": {"anything": [1, 2]}},
    }
    headers = with_extensions(headers, declared)
    first, second = (our_payment(payer, headers, body) for _ in range(2))
    payload = decode_payment_signature_header(first.header_value)
    assert isinstance(payload, PaymentPayload)

    payment_id, validation = extract_and_validate_payment_identifier(payload)
    assert validation.valid, validation.errors
    assert payment_id == first.payment_id
    assert re.fullmatch(r"pay_[0-9a-f]{32}", payment_id or "")
    assert validate_payment_identifier_requirement(payload, server_required=required).valid
    assert second.payment_id != first.payment_id, "a fresh id for every payment"
    # Every extension the server declared comes back as it was, the id added to its own.
    assert payload.extensions is not None
    assert payload.extensions["other-extension"] == declared["other-extension"]
    assert payload.extensions[PAYMENT_IDENTIFIER]["info"]["required"] is required
    # And the payment itself still verifies.
    chain = StandInChain(NETWORKS["base"])
    result = sdk_facilitator(chain).verify(payload, requirement)
    assert (result.is_valid, result.invalid_reason) == (True, None)


def test_no_extensions_declared_none_sent(payer: LocalAccount) -> None:
    headers, body, _ = sdk_challenge(2, "base")
    signed = our_payment(payer, headers, body)
    assert signed.payment_id is None
    assert "extensions" not in header_json(signed)


@pytest.mark.parametrize("version", [1, 2])
def test_sdk_facilitator_settles_our_payment_once(payer: LocalAccount, version: int) -> None:
    chain = StandInChain(NETWORKS["base"])
    facilitator = sdk_facilitator(chain)
    headers, body, requirement = sdk_challenge(version, "base")
    payload = decode_payment_signature_header(our_payment(payer, headers, body).header_value)
    receipt_header = "X-PAYMENT-RESPONSE" if version == 1 else "PAYMENT-RESPONSE"

    settled = facilitator.settle(payload, requirement)

    assert (settled.success, settled.error_reason) == (True, None)
    assert settled.payer == payer.address
    assert settled.transaction in chain.receipts
    assert chain.balances[payer.address.lower()] == FUNDED - AMOUNT
    assert chain.balances[PAY_TO.lower()] == FUNDED + AMOUNT
    # Our client reads the receipt a resource server makes of the SDK's settle response.
    receipt = read_receipt({receipt_header: encode_payment_response_header(settled)})
    assert receipt is not None
    assert (receipt.success, receipt.transaction) == (True, settled.transaction)
    assert (receipt.payer, receipt.network) == (payer.address, str(requirement.network))

    # The same authorization cannot be used twice.
    replay = facilitator.verify(payload, requirement)
    assert (replay.is_valid, replay.invalid_reason) == (False, NONCE_ALREADY_USED)
    refused = facilitator.settle(payload, requirement)
    assert (refused.success, refused.error_reason) == (False, NONCE_ALREADY_USED)
    assert chain.balances[payer.address.lower()] == FUNDED - AMOUNT
    receipt = read_receipt({receipt_header: encode_payment_response_header(refused)})
    assert receipt is not None
    assert (receipt.success, receipt.error_reason) == (False, NONCE_ALREADY_USED)


def _change_value(document: dict[str, Any], payer: LocalAccount) -> None:
    document["payload"]["authorization"]["value"] = str(AMOUNT - 1)


def _change_recipient(document: dict[str, Any], payer: LocalAccount) -> None:
    document["payload"]["authorization"]["to"] = Account.create().address


def _sign_with_another_key(document: dict[str, Any], payer: LocalAccount) -> None:
    """Keep the authorization (from = payer) but sign it with someone else's key."""
    auth = document["payload"]["authorization"]
    network = document.get("network") or document["accepted"]["network"]
    caip2 = NETWORKS.get(network, network)
    asset = get_default_asset(caip2)
    digest = hash_eip3009_authorization(
        ExactEIP3009Authorization(
            from_address=auth["from"],
            to=auth["to"],
            value=auth["value"],
            valid_after=auth["validAfter"],
            valid_before=auth["validBefore"],
            nonce=auth["nonce"],
        ),
        int(caip2.split(":")[1]),
        asset["asset"],
        asset["name"],
        asset["version"],
    )
    forged = Account.create().unsafe_sign_hash(digest).signature
    document["payload"]["signature"] = "0x" + bytes(forged).hex()


TAMPERINGS = {
    "value_changed": (_change_value, VALUE_MISMATCH),
    "recipient_changed": (_change_recipient, RECIPIENT_MISMATCH),
    "signed_by_another_key": (_sign_with_another_key, INVALID_SIGNATURE),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_sdk_facilitator_rejects_tampered_payment(
    payer: LocalAccount, version: int, tampering: str
) -> None:
    tamper, reason = TAMPERINGS[tampering]
    chain = StandInChain(NETWORKS["base"])
    headers, body, requirement = sdk_challenge(version, "base")
    document = header_json(our_payment(payer, headers, body))
    tamper(document, payer)

    result = sdk_facilitator(chain).verify(sdk_payload(document), requirement)

    assert (result.is_valid, result.invalid_reason) == (False, reason)
    assert result.payer == payer.address


@pytest.mark.parametrize("version", [1, 2])
def test_sdk_facilitator_rejects_expired_payment(payer: LocalAccount, version: int) -> None:
    chain = StandInChain(NETWORKS["base-sepolia"])
    headers, body, requirement = sdk_challenge(version, "base-sepolia")
    signed = our_payment(payer, headers, body, now=int(time.time()) - 10_000)
    assert signed.valid_before < time.time()

    result = sdk_facilitator(chain).verify(sdk_payload(header_json(signed)), requirement)

    assert (result.is_valid, result.invalid_reason) == (False, VALID_BEFORE)


@pytest.mark.parametrize(
    ("version", "reason"),
    # The SDK words this one differently per version: v2 maps the token's "invalid signature"
    # revert; v1 probes the token after the failed simulation and finds the name differs.
    [(1, TOKEN_NAME_MISMATCH), (2, INVALID_SIGNATURE)],
)
def test_sdk_facilitator_rejects_signature_under_wrong_domain_name(
    payer: LocalAccount, version: int, reason: str
) -> None:
    """A challenge naming Base USDC "USDC" (it is "USD Coin") yields a signature USDC refuses.

    The SDK checks the signature off-chain against the challenge's own `extra.name`, where it
    passes; the simulated transfer on the chain, with the token's real domain, is what fails.
    """
    chain = StandInChain(NETWORKS["base"])
    headers, body, requirement = sdk_challenge(version, "base", name="USDC")
    document = header_json(our_payment(payer, headers, body))

    result = sdk_facilitator(chain).verify(sdk_payload(document), requirement)

    assert (result.is_valid, result.invalid_reason) == (False, reason)
    assert "transferWithAuthorization" in chain.calls


@pytest.mark.parametrize("version", [1, 2])
def test_sdk_facilitator_rejects_unfunded_payer(payer: LocalAccount, version: int) -> None:
    """The stand-in chain is no rubber stamp: a payer without USDC fails the simulated transfer."""
    chain = StandInChain(NETWORKS["base"], balance=AMOUNT - 1)
    headers, body, requirement = sdk_challenge(version, "base")
    payload = decode_payment_signature_header(our_payment(payer, headers, body).header_value)

    result = sdk_facilitator(chain).verify(payload, requirement)

    assert (result.is_valid, result.invalid_reason) == (False, INSUFFICIENT_BALANCE)


@pytest.mark.parametrize("version", [1, 2])
def test_stand_in_chain_accepts_the_sdk_clients_own_payment(
    payer: LocalAccount, version: int
) -> None:
    """Control: the SDK client's payment passes the SDK facilitator on the stand-in chain, so a
    rejection of ours above is about our payment, not about the stand-in."""
    chain = StandInChain(NETWORKS["base-sepolia"])
    headers, body, requirement = sdk_challenge(version, "base-sepolia")
    client = register_exact_evm_client(x402ClientSync(), EthAccountSigner(payer))
    required = x402HTTPClientSync(client).get_payment_required_response(
        headers.get, json.loads(body)
    )

    payload = client.create_payment_payload(required)
    result = sdk_facilitator(chain).verify(payload, requirement)

    assert (result.is_valid, result.payer) == (True, payer.address)


# --------------------------------------------------------------------------------------------
# Part 2: the SDK's client pays our local router.
# --------------------------------------------------------------------------------------------

CHAT_REQUEST = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 64,
}


@pytest.mark.parametrize("version", [1, 2])
async def test_sdk_client_pays_our_devserver(payer: LocalAccount, version: int) -> None:
    from xrouter_tui.devserver import DevServerConfig, start_dev_server

    client = x402Client()
    register_exact_evm_client(client, EthAccountSigner(payer))
    transport = x402AsyncTransport(client, httpx.AsyncHTTPTransport())

    with start_dev_server(DevServerConfig(x402_version=version, network="base-sepolia")) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(
            transport=transport, base_url=server.url, trust_env=False, timeout=10
        ) as http:
            response = await http.post("/v1/chat/completions", json=CHAT_REQUEST)

        assert response.status_code == 200, response.text
        content = response.json()["choices"][0]["message"]["content"]
        assert isinstance(content, str) and content
        state = server.state
        assert [p.payer.lower() for p in state.payments] == [payer.address.lower()]
        assert state.rejections == []
        # One 402, then one paid retry: the SDK paid once and was not asked again.
        assert (state.unpaid_requests, state.paid_requests) == (1, 1)
        payment = state.payments[0]
        assert payment.network == ("base-sepolia" if version == 1 else "eip155:84532")
        assert payment.amount > 0

    # The SDK reads our receipt.
    receipt_header = "X-PAYMENT-RESPONSE" if version == 1 else "PAYMENT-RESPONSE"
    receipt = decode_payment_response_header(response.headers[receipt_header])
    assert (receipt.success, receipt.transaction) == (True, payment.transaction)
    assert (receipt.payer or "").lower() == payer.address.lower()
