"""The wallet key and its signatures by hand: coincurve's secp256k1, Keccak-256, EIP-712, EIP-55.

Importing eth-account costs most of a second; the program signs x402 payments without it. Only one
kind of document is ever signed (an EIP-3009 `TransferWithAuthorization`), so its EIP-712 digest
is written out here for exactly that type. eth-account stays the signer of record: the tests
prove that addresses, digests and signatures made here are byte-identical to its own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from coincurve import PrivateKey

__all__ = [
    "SECP256K1_ORDER",
    "Signer",
    "WalletKey",
    "as_wallet_key",
    "keccak256",
    "to_checksum_address",
    "transfer_authorization_digest",
]

# The number of points on secp256k1: a private key is a number from 1 to this minus one.
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# The two EIP-712 struct types of an EIP-3009 authorization, field by field, in order.
_DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
)
_TRANSFER_FIELDS = (
    ("from", "address"),
    ("to", "address"),
    ("value", "uint256"),
    ("validAfter", "uint256"),
    ("validBefore", "uint256"),
    ("nonce", "bytes32"),
)


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (the original padding, not NIST's SHA3-256)."""
    # Imported on first use: pycryptodome reaches its C code through cffi, whose parser of C
    # declarations alone takes ~15 ms to import, and the program starts without hashing anything.
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=data).digest()


class Signer(Protocol):
    """Whoever pays: an address and its 32-byte private key (a `WalletKey`, an eth-account one)."""

    @property
    def address(self) -> str: ...

    @property
    def key(self) -> bytes: ...


class WalletKey:
    """A secp256k1 private key and its checksummed address; repr and str show the address only."""

    __slots__ = ("_address", "_private_key", "_secret")

    def __init__(self, key: bytes) -> None:
        # No message below may quote the key: they end up on screens and in logs.
        if not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError("a private key is 32 bytes")
        secret = bytes(key)
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            raise ValueError("a private key is a number from 1 to the secp256k1 order minus one")
        self._secret = secret
        # The curve point and the address are worked out when first needed: loading coincurve
        # and Keccak takes ~30 ms, which the chat's first frame and `--version` do not wait for.
        self._private_key: PrivateKey | None = None
        self._address: str | None = None

    def _curve_key(self) -> PrivateKey:
        if self._private_key is None:
            from coincurve import PrivateKey

            self._private_key = PrivateKey(self._secret)
        return self._private_key

    @classmethod
    def from_hex(cls, text: str) -> WalletKey:
        """The key written as 64 hex digits, `0x` optional; ValueError (without the text) if not."""
        if not isinstance(text, str) or not _HEX_KEY.fullmatch(text):
            raise ValueError("a private key is 64 hex digits (32 bytes), with or without 0x")
        return cls(bytes.fromhex(text.removeprefix("0x")))

    @classmethod
    def generate(cls) -> WalletKey:
        """A new random key from the operating system's random source."""
        while True:
            secret = secrets.token_bytes(32)
            # Out of range about once in 2**128 draws: draw again rather than bend the odds.
            if 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
                return cls(secret)

    @property
    def address(self) -> str:
        """The EIP-55 checksummed address."""
        if self._address is None:
            public = self._curve_key().public_key.format(compressed=False)
            # The last 20 bytes of the hash of the public point (x || y, without the 0x04).
            self._address = _checksummed(keccak256(public[1:])[-20:].hex())
        return self._address

    @property
    def key(self) -> bytes:
        """The 32 private-key bytes: for the keyring and `key export` only."""
        return self._secret

    def sign_digest(self, digest: bytes) -> bytes:
        """The 65-byte signature r || s || v of a 32-byte digest, v = 27 + recovery id.

        Deterministic (RFC 6979) and low-s, as eth-account's: the same key and digest give the
        same bytes.
        """
        if len(digest) != 32:
            raise ValueError("a digest is 32 bytes")
        # coincurve lays a recoverable signature out as r || s || recovery id (0 or 1).
        signature = self._curve_key().sign_recoverable(bytes(digest), hasher=None)
        return signature[:64] + bytes([27 + signature[64]])

    def __repr__(self) -> str:
        return f"<WalletKey {self.address}>"

    def __str__(self) -> str:
        return self.address


def as_wallet_key(signer: Signer) -> WalletKey:
    """`signer` as a `WalletKey`; ValueError if its address is not the one its key gives."""
    if isinstance(signer, WalletKey):
        return signer
    wallet_key = WalletKey(bytes(signer.key))
    if wallet_key.address.lower() != str(signer.address).lower():
        raise ValueError("the signer's address does not belong to its key")
    return wallet_key


def to_checksum_address(address: str) -> str:
    """`address` in EIP-55 mixed case; ValueError unless it is 0x and 40 hex digits."""
    if not isinstance(address, str) or not _HEX_ADDRESS.fullmatch(address):
        # The address may come from a router: it is not repeated here.
        raise ValueError("not an address: expected 0x and 40 hex digits")
    return _checksummed(address[2:].lower())


def _checksummed(lower_hex: str) -> str:
    # EIP-55: a letter is upper case where the matching hex digit of the hash is 8 or more.
    hashed = keccak256(lower_hex.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if int(nibble, 16) >= 8 else char
        for char, nibble in zip(lower_hex, hashed, strict=False)
    )


def transfer_authorization_digest(typed: Mapping[str, Any]) -> bytes:
    """The 32 bytes an EIP-3009 `TransferWithAuthorization` signature signs.

    `typed` is the EIP-712 document `signing.authorization_typed_data` builds; any other type is
    refused. The digest is keccak(0x1901 || domainSeparator || hashStruct(message)).
    """
    if typed.get("primaryType") != "TransferWithAuthorization" or typed.get("types") != {
        "EIP712Domain": _field_list(_DOMAIN_FIELDS),
        "TransferWithAuthorization": _field_list(_TRANSFER_FIELDS),
    }:
        raise ValueError("not an EIP-712 TransferWithAuthorization document")
    domain_separator = _hash_struct("EIP712Domain", _DOMAIN_FIELDS, typed["domain"])
    struct_hash = _hash_struct("TransferWithAuthorization", _TRANSFER_FIELDS, typed["message"])
    return keccak256(b"\x19\x01" + domain_separator + struct_hash)


def _field_list(fields: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in fields]


def _hash_struct(
    type_name: str, fields: tuple[tuple[str, str], ...], values: Mapping[str, Any]
) -> bytes:
    # EIP-712 hashStruct: keccak(typeHash || encodeData), where typeHash is the hash of
    # "Name(type1 field1,type2 field2,...)" and every field takes one 32-byte word.
    if set(values) != {name for name, _ in fields}:
        raise ValueError("the fields do not match the EIP-712 type")
    typehash = keccak256(_encode_type(type_name, fields))
    return keccak256(
        typehash + b"".join(_encode_value(kind, values[name]) for name, kind in fields)
    )


def _encode_type(name: str, fields: tuple[tuple[str, str], ...]) -> bytes:
    return f"{name}({','.join(f'{kind} {field}' for field, kind in fields)})".encode()


def _encode_value(kind: str, value: Any) -> bytes:
    if kind == "string" and isinstance(value, str):
        return keccak256(value.encode("utf-8"))
    if kind == "uint256" and type(value) is int and 0 <= value < 2**256:
        return value.to_bytes(32, "big")
    if kind == "address" and isinstance(value, str) and _HEX_ADDRESS.fullmatch(value):
        return bytes(12) + bytes.fromhex(value[2:])
    if kind == "bytes32" and isinstance(value, bytes) and len(value) == 32:
        return value
    raise ValueError(f"a {kind} field holds something else")
