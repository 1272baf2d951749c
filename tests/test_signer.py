"""The hand-written signer against eth-account, the signer of record: the same bytes throughout.

Random but seeded: keys, amounts, nonces, payees, x402 v1 and v2, domains from `extra` and from the
known table. eth-account only checks here; the program itself never imports it to sign.
"""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address as eth_to_checksum_address

from tests.payment_helpers import (
    authorization_message,
    decode_header,
    eth_typed_message,
    v1_body,
    v1_requirement,
    v2_headers,
    v2_requirement,
)
from xrouter_tui.payments import (
    NETWORKS,
    Network,
    SpendingPolicy,
    WalletKey,
    authorization_typed_data,
    parse_challenge,
    sign_payment,
)
from xrouter_tui.payments.signer import (
    SECP256K1_ORDER,
    to_checksum_address,
    transfer_authorization_digest,
)
from xrouter_tui.wallet import WalletError, account_from_key

ROOT = Path(__file__).resolve().parent.parent
# Keys at the edges of the range, and small ones whose bytes start with zeros.
EDGE_KEYS = (1, 2, 255, 2**200, SECP256K1_ORDER - 2, SECP256K1_ORDER - 1)
# Domain names a router may send: the real ones, a wrong one, and text that is not ASCII.
DOMAIN_NAMES = ("USD Coin", "USDC", "Bridged USDC (Base)", "Dólar ☃ 🪙", "")
ANY_PRICE = SpendingPolicy(networks=NETWORKS, max_per_request_usd=Decimal(10**12))


def random_keys(rng: random.Random, count: int) -> list[bytes]:
    numbers = [rng.randrange(1, SECP256K1_ORDER) for _ in range(count)]
    return [number.to_bytes(32, "big") for number in (*EDGE_KEYS, *numbers)]


def random_address(rng: random.Random) -> str:
    """0x and 40 hex digits, each letter in a random case (as routers write them)."""
    digits = f"{rng.getrandbits(160):040x}"
    return "0x" + "".join(rng.choice((c.lower(), c.upper())) for c in digits)


def random_extra(rng: random.Random) -> Any:
    """What a requirement's `extra` may hold; all but a full domain fall back to the table."""
    return rng.choice(
        (
            {"name": rng.choice(DOMAIN_NAMES), "version": rng.choice(("2", "1", "v2.0"))},
            {"name": rng.choice(DOMAIN_NAMES)},
            {"version": "2"},
            {},
            None,
            {"name": 5, "version": None},
        )
    )


def expected_domain(network: Network, asset: str, extra: Any) -> dict[str, Any]:
    """The EIP-712 domain, as the x402 spec reads it: from `extra`, else the known USDC table."""
    extra = extra if isinstance(extra, dict) else {}
    known = asset.lower() == network.usdc.address.lower()
    name, version = extra.get("name"), extra.get("version")
    return {
        "name": name if isinstance(name, str) else (network.usdc.eip712_name if known else ""),
        "version": version
        if isinstance(version, str)
        else (network.usdc.eip712_version if known else ""),
        "chainId": network.chain_id,
        "verifyingContract": eth_to_checksum_address(asset),
    }


def eth_account_signature(key: bytes, typed: dict[str, Any]) -> tuple[bytes, bytes]:
    """eth-account's (digest, signature) of an EIP-712 document."""
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key=key)
    return bytes(signed.message_hash), bytes(signed.signature)


# -- addresses and keys ------------------------------------------------------------------------


def test_addresses_are_those_eth_account_derives() -> None:
    for key in random_keys(random.Random(1), 300):
        wallet_key = WalletKey(key)
        assert wallet_key.address == Account.from_key(key).address
        assert wallet_key.key == key
        assert type(wallet_key.key) is bytes


def test_from_hex_reads_the_key_with_or_without_0x_in_any_case() -> None:
    key = random_keys(random.Random(2), 1)[-1]
    expected = Account.from_key(key).address
    for text in (key.hex(), "0x" + key.hex(), key.hex().upper(), "0x" + key.hex().upper()):
        assert WalletKey.from_hex(text).address == expected
    assert account_from_key(f"  0x{key.hex()}\n").address == expected


def test_generated_keys_are_in_range_and_differ() -> None:
    keys = [WalletKey.generate() for _ in range(50)]
    assert len({key.key for key in keys}) == 50
    for key in keys:
        assert 0 < int.from_bytes(key.key, "big") < SECP256K1_ORDER
        assert key.address == Account.from_key(key.key).address


def test_checksums_are_those_of_eth_utils() -> None:
    rng = random.Random(3)
    addresses = [random_address(rng) for _ in range(1000)]
    addresses += ["0x" + "0" * 40, "0x" + "f" * 40, "0x" + "F" * 40, "0x" + "9" * 40]
    for address in addresses:
        assert to_checksum_address(address) == eth_to_checksum_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "0x" + "a" * 39,
        "0x" + "a" * 41,
        "a" * 40,
        "0X" + "a" * 40,
        "0x" + "g" * 40,
        "0x" + "a" * 40 + "\n",
        " 0x" + "a" * 40,
        "0x" + "٣" * 40,  # digits, but not ASCII ones
        "",
        b"0x" + b"a" * 40,
        None,
    ],
)
def test_anything_but_0x_and_40_hex_digits_is_no_address(address: Any) -> None:
    with pytest.raises(ValueError, match="not an address") as caught:
        to_checksum_address(address)
    assert "aaaa" not in str(caught.value)


# Each is refused; the same two messages as when eth-account read the key.
NOT_HEX = "is not a private key: expected 64 hex digits (32 bytes), with or without 0x."
OUT_OF_RANGE = "is not a valid secp256k1 private key."
INVALID_KEYS = {
    "zero": ("0" * 64, OUT_OF_RANGE),
    "zero with 0x": ("0x" + "0" * 64, OUT_OF_RANGE),
    "the order": (f"{SECP256K1_ORDER:064x}", OUT_OF_RANGE),
    "the order + 1": (f"0x{SECP256K1_ORDER + 1:064X}", OUT_OF_RANGE),
    "all ones": ("f" * 64, OUT_OF_RANGE),
    "63 digits": ("7d" * 31 + "7", NOT_HEX),
    "65 digits": ("7d" * 32 + "7", NOT_HEX),
    "not hex": ("7d" * 31 + "zz", NOT_HEX),
    "0X": ("0X" + "7d" * 32, NOT_HEX),
    "inner space": ("7d" * 16 + " " + "7d" * 16, NOT_HEX),
    "empty": ("", NOT_HEX),
}


@pytest.mark.parametrize("case", sorted(INVALID_KEYS))
def test_invalid_keys_are_refused_without_quoting_them(case: str) -> None:
    text, message = INVALID_KEYS[case]
    bare = text.lower().removeprefix("0x").strip()
    with pytest.raises(ValueError) as caught:
        WalletKey.from_hex(text)
    assert not bare or bare[:16] not in str(caught.value).lower()
    with pytest.raises(WalletError) as caught:
        account_from_key(text, source="XROUTER_PRIVATE_KEY")
    assert str(caught.value) == f"XROUTER_PRIVATE_KEY {message}"
    # Nothing chained that could quote it in a traceback either.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize("key", [b"", b"\x01" * 31, b"\x01" * 33, "01" * 32, 1])
def test_a_key_is_32_bytes(key: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        WalletKey(key)
    assert "0101" not in str(caught.value)


def test_the_key_never_shows_in_repr_or_str() -> None:
    for key in random_keys(random.Random(4), 20):
        wallet_key = WalletKey(key)
        for shown in (repr(wallet_key), str(wallet_key), f"{wallet_key}"):
            assert key.hex() not in shown.lower()
            assert wallet_key.address in shown
        assert not hasattr(wallet_key, "__dict__")


def test_an_account_whose_address_is_not_its_keys_signs_nothing() -> None:
    @dataclass
    class Mismatched:
        address: str
        key: bytes

    keys = random_keys(random.Random(5), 2)
    liar = Mismatched(address=WalletKey(keys[-1]).address, key=keys[-2])
    quote = ANY_PRICE.choose(parse_challenge({}, v1_body(v1_requirement())))
    with pytest.raises(ValueError, match="does not belong to its key"):
        sign_payment(liar, quote)


# -- digests and signatures ------------------------------------------------------------------


def random_authorization(rng: random.Random, payer: str) -> dict[str, Any]:
    return {
        "from": payer,
        "to": random_address(rng),
        "value": str(rng.choice((0, 1, rng.getrandbits(64), rng.getrandbits(256)))),
        "validAfter": str(rng.choice((0, rng.getrandbits(32)))),
        "validBefore": str(rng.choice((2**256 - 1, rng.getrandbits(40)))),
        "nonce": "0x" + rng.randbytes(32).hex(),
    }


def test_digests_and_signatures_are_eth_accounts_for_random_documents() -> None:
    rng = random.Random(6)
    for key in random_keys(rng, 200):
        wallet_key = WalletKey(key)
        network = rng.choice(NETWORKS)
        asset = rng.choice(
            (network.usdc.address, network.usdc.address.lower(), random_address(rng))
        )
        typed = authorization_typed_data(
            network=network,
            asset=asset,
            extra=random_extra(rng),
            authorization=random_authorization(rng, wallet_key.address),
        )
        digest, signature = eth_account_signature(key, typed)
        assert transfer_authorization_digest(typed) == digest
        assert wallet_key.sign_digest(digest) == signature
        assert Account.recover_message(
            encode_typed_data(full_message=typed), signature=signature
        ) == (wallet_key.address)


def random_challenge(rng: random.Random, version: int) -> tuple[Network, Any, dict[str, Any]]:
    """(network, extra, challenge as parse_challenge reads it) for a random priced request."""
    network = rng.choice(NETWORKS)
    extra = random_extra(rng)
    amount = str(rng.choice((1, rng.randrange(1, 10**6), rng.randrange(1, 10**15))))
    changes = {"payTo": random_address(rng), "maxTimeoutSeconds": rng.randrange(1, 3600)}
    if version == 1:
        entry = v1_requirement(network, amount, extra=extra, **changes)
        return network, extra, {"headers": {}, "body": v1_body(entry)}
    entry = v2_requirement(network, amount, extra=extra, **changes)
    return network, extra, {"headers": v2_headers(entry), "body": b""}


@pytest.mark.parametrize("version", [1, 2])
def test_payments_are_signed_byte_for_byte_as_eth_account_would(version: int) -> None:
    rng = random.Random(100 + version)
    for key in random_keys(rng, 150):
        wallet_key = WalletKey(key)
        network, extra, challenge = random_challenge(rng, version)
        quote = ANY_PRICE.choose(parse_challenge(challenge["headers"], challenge["body"]))
        now, nonce = rng.randrange(10**6, 2 * 10**9), rng.randbytes(32)

        signed = sign_payment(wallet_key, quote, now=now, nonce=nonce)
        # An eth-account account pays through the same protocol, with the same bytes.
        assert sign_payment(Account.from_key(key), quote, now=now, nonce=nonce) == signed

        document = decode_header(signed.header_value)
        auth = document["payload"]["authorization"]
        assert auth["from"] == wallet_key.address == signed.payer
        assert auth["nonce"] == "0x" + nonce.hex()
        # The message built apart from the program's own typed data: domain as the spec says.
        message = eth_typed_message(
            domain=expected_domain(network, quote.requirement.asset, extra),
            message=authorization_message(auth),
        )
        expected = Account.sign_message(message, private_key=key)
        assert signed.signature == "0x" + bytes(expected.signature).hex()
        assert Account.recover_message(message, signature=signed.signature) == wallet_key.address


def test_only_a_transfer_with_authorization_is_digested() -> None:
    rng = random.Random(7)
    typed = authorization_typed_data(
        network=NETWORKS[0],
        asset=NETWORKS[0].usdc.address,
        extra={},
        authorization=random_authorization(rng, random_address(rng)),
    )
    transfer_authorization_digest(typed)
    other_type = {**typed, "primaryType": "ReceiveWithAuthorization"}
    reordered = {
        **typed,
        "types": {
            **typed["types"],
            "TransferWithAuthorization": typed["types"]["TransferWithAuthorization"][::-1],
        },
    }
    short_nonce = {**typed, "message": {**typed["message"], "nonce": b"\x01" * 31}}
    negative = {**typed, "message": {**typed["message"], "value": -1}}
    too_big = {**typed, "message": {**typed["message"], "validBefore": 2**256}}
    extra_field = {**typed, "domain": {**typed["domain"], "salt": b"\x00" * 32}}
    for document in (other_type, reordered, short_nonce, negative, too_big, extra_field):
        with pytest.raises(ValueError):
            transfer_authorization_digest(document)


# -- the program's path ------------------------------------------------------------------------


def test_signing_and_the_wallet_import_no_eth_account() -> None:
    # A fresh interpreter: what importing these two modules loads is the subject.
    code = (
        "import xrouter_tui.payments.signing, xrouter_tui.wallet, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'eth_account','eth_keyfile','py_ecc','eth_utils','eth_keys','hexbytes'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
