"""The local chain's USDC: its compiled code, its genesis storage, and the calls the dev server
makes to it. The source is `contracts/usdc.vy`; `contracts/usdc.bin-runtime` is its runtime
code as vyper compiles it (a test recompiles the source and compares).

No EVM loads here: this module only encodes calls (eth-abi) and reads the checked-in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

__all__ = [
    "AUTHORIZATION_USED_TOPIC",
    "DECIMALS",
    "RUNTIME_PATH",
    "SOURCE_PATH",
    "STORAGE_SLOTS",
    "TRANSFER_TOPIC",
    "VERSION",
    "Authorization",
    "authorization_state_call",
    "balance_of_call",
    "domain_separator",
    "genesis_storage",
    "mint_call",
    "runtime_code",
    "split_signature",
    "transfer_call",
    "transfer_with_authorization_call",
]

CONTRACTS = Path(__file__).resolve().parent / "contracts"
SOURCE_PATH = CONTRACTS / "usdc.vy"
RUNTIME_PATH = CONTRACTS / "usdc.bin-runtime"

DECIMALS = 6
VERSION = "2"

# Where the compiled contract keeps each variable (vyper's storage layout, checked by a test).
# `name` is a String[32]: its length in the first slot, its bytes left-aligned in the next.
STORAGE_SLOTS = {"name": 0, "minter": 2, "totalSupply": 3, "balanceOf": 4, "_authorizations": 5}

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
AUTHORIZATION_USED_TOPIC = "0x" + keccak(text="AuthorizationUsed(address,bytes32)").hex()

_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


_BALANCE_OF = _selector("balanceOf(address)")
_AUTHORIZATION_STATE = _selector("authorizationState(address,bytes32)")
_TRANSFER = _selector("transfer(address,uint256)")
_MINT = _selector("mint(address,uint256)")
_TRANSFER_WITH_AUTHORIZATION = _selector(
    "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)"
)


@dataclass(frozen=True, slots=True)
class Authorization:
    """An EIP-3009 transfer authorization as a payment carries it."""

    payer: str
    pay_to: str
    value: int
    valid_after: int
    valid_before: int
    nonce: str
    signature: str


@cache
def runtime_code() -> bytes:
    """The token's runtime bytecode, as checked in."""
    return bytes.fromhex(RUNTIME_PATH.read_text(encoding="ascii").strip().removeprefix("0x"))


def genesis_storage(name: str, minter: str) -> dict[int, int]:
    """The token's storage at genesis: what its constructor would have set, had one run."""
    raw = name.encode("utf-8")
    if len(raw) > 32:
        raise ValueError(f"a token name of at most 32 bytes, not {name!r}")
    return {
        STORAGE_SLOTS["name"]: len(raw),
        STORAGE_SLOTS["name"] + 1: int.from_bytes(raw.ljust(32, b"\0"), "big"),
        STORAGE_SLOTS["minter"]: int(minter, 16),
    }


def domain_separator(name: str, chain_id: int, token: str) -> bytes:
    """The EIP-712 domain separator the token builds for itself on chain `chain_id`."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [_DOMAIN_TYPEHASH, keccak(text=name), keccak(text=VERSION), chain_id, token],
        )
    )


def balance_of_call(owner: str) -> bytes:
    return _BALANCE_OF + encode(["address"], [to_checksum_address(owner)])


def authorization_state_call(authorizer: str, nonce: str | bytes) -> bytes:
    return _AUTHORIZATION_STATE + encode(
        ["address", "bytes32"], [to_checksum_address(authorizer), _bytes32(nonce)]
    )


def transfer_call(to: str, amount: int) -> bytes:
    return _TRANSFER + encode(["address", "uint256"], [to_checksum_address(to), amount])


def mint_call(to: str, amount: int) -> bytes:
    return _MINT + encode(["address", "uint256"], [to_checksum_address(to), amount])


def split_signature(signature: str | bytes) -> tuple[int, bytes, bytes]:
    """A 65-byte signature (r, s, v) as USDC's `transferWithAuthorization` takes it: v as 27
    or 28 (some signers write 0 or 1)."""
    raw = _raw(signature)
    if len(raw) != 65:
        raise ValueError(f"a signature is 65 bytes, not {len(raw)}")
    v = raw[64]
    return (v + 27 if v < 27 else v), raw[:32], raw[32:64]


def transfer_with_authorization_call(
    payer: str,
    to: str,
    value: int,
    valid_after: int,
    valid_before: int,
    nonce: str | bytes,
    signature: str | bytes,
) -> bytes:
    """EIP-3009's `transferWithAuthorization` with the signature split into v, r and s, as
    x402 settlers call it for a 65-byte signature."""
    v, r, s = split_signature(signature)
    return _TRANSFER_WITH_AUTHORIZATION + encode(
        [
            "address",
            "address",
            "uint256",
            "uint256",
            "uint256",
            "bytes32",
            "uint8",
            "bytes32",
            "bytes32",
        ],
        [
            to_checksum_address(payer),
            to_checksum_address(to),
            value,
            valid_after,
            valid_before,
            _bytes32(nonce),
            v,
            r,
            s,
        ],
    )


def _raw(value: str | bytes) -> bytes:
    return bytes.fromhex(value.removeprefix("0x")) if isinstance(value, str) else bytes(value)


def _bytes32(value: str | bytes) -> bytes:
    raw = _raw(value)
    if len(raw) != 32:
        raise ValueError(f"32 bytes, not {len(raw)}")
    return raw
