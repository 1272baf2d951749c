"""USDC's calls and events as JSON-RPC hex, both ways, strictly: what an RPC endpoint answers is
read as untrusted (a word of the wrong size, a quantity of 300 digits, a log of another token or
another event is an error or is left out, never taken for money).

The calls take only addresses and 32-byte words, so their ABI encoding is written out here;
the tests prove it byte-identical to eth-abi's. Selectors and topics are Keccak-256 hashes of
the signatures (the tests work them out again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AUTHORIZATION_STATE",
    "AUTHORIZATION_USED_TOPIC",
    "BALANCE_OF",
    "TRANSFER_TOPIC",
    "AuthorizationUsedLog",
    "ChainDataError",
    "TransferLog",
    "address_topic",
    "authorization_state_call",
    "balance_of_call",
    "checked_address",
    "checked_tx",
    "hex_quantity",
    "read_bool",
    "read_logs",
    "read_quantity",
    "read_uint256",
    "word_hex",
]

# balanceOf(address), authorizationState(address,bytes32): the first 4 bytes of their hashes.
BALANCE_OF = "0x70a08231"
AUTHORIZATION_STATE = "0xe94a0102"
# Transfer(address indexed from, address indexed to, uint256 value)
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
# AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)
AUTHORIZATION_USED_TOPIC = "0x98de503528ee59b575ef0c0a2576a82497bfc029a5685b209e9ec333479b10a5"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_WORD = re.compile(r"0x[0-9a-fA-F]{64}")
# A JSON-RPC quantity: at most 256 bits (a block number or a status is far smaller).
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_DATA = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


class ChainDataError(ValueError):
    """An RPC answer is not what the call returns; the message says what, on one line."""


@dataclass(frozen=True, slots=True)
class TransferLog:
    """A USDC transfer seen on chain: who sent how much to whom, where in the chain."""

    sender: str
    recipient: str
    value: int
    tx: str
    block: int
    log_index: int

    @property
    def position(self) -> tuple[int, int]:
        """Where it is in the chain's order: block, then log."""
        return (self.block, self.log_index)


@dataclass(frozen=True, slots=True)
class AuthorizationUsedLog:
    """An EIP-3009 authorization used on chain (by a transfer): its payer, nonce and
    transaction."""

    authorizer: str
    nonce: str
    tx: str
    block: int
    log_index: int

    @property
    def position(self) -> tuple[int, int]:
        return (self.block, self.log_index)


# -- what is sent ---------------------------------------------------------------------------


def checked_address(address: str) -> str:
    """`address` as 0x and 40 lowercase hex digits; ValueError when it is not an address."""
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise ValueError(f"not an address: {address!r}")
    return address.lower()


def checked_tx(tx: str) -> str:
    """A transaction hash as 0x and 64 lowercase hex digits; ValueError when it is not one."""
    if not isinstance(tx, str) or not _WORD.fullmatch(tx):
        raise ValueError("not a transaction hash")
    return tx.lower()


def address_topic(address: str) -> str:
    """An address as an indexed event argument (a topic): left-padded to 32 bytes."""
    return "0x" + "0" * 24 + checked_address(address)[2:]


def word_hex(nonce: str) -> str:
    """A bytes32 (a nonce) as 0x and 64 lowercase hex digits; ValueError when it is not one."""
    if not isinstance(nonce, str) or not _WORD.fullmatch(nonce):
        raise ValueError("not a 32-byte value")
    return nonce.lower()


def balance_of_call(owner: str) -> str:
    """The calldata of `balanceOf(owner)`."""
    return BALANCE_OF + address_topic(owner)[2:]


def authorization_state_call(authorizer: str, nonce: str) -> str:
    """The calldata of `authorizationState(authorizer, nonce)`."""
    return AUTHORIZATION_STATE + address_topic(authorizer)[2:] + word_hex(nonce)[2:]


def hex_quantity(value: int) -> str:
    """A number as a JSON-RPC quantity (`0x1a`, never a leading zero)."""
    return hex(value)


# -- what comes back ------------------------------------------------------------------------


def read_quantity(value: Any, what: str) -> int:
    """A JSON-RPC quantity (`0x1a`) as a number; ChainDataError for anything else."""
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise ChainDataError(f"{what} is not a number in hex: {_shown(value)}")
    return int(value, 16)


def _data(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not _DATA.fullmatch(value):
        raise ChainDataError(f"{what} is not hex data: {_shown(value)}")
    return bytes.fromhex(value[2:])


def read_uint256(value: Any, what: str) -> int:
    """A call's result that is one uint256 (a balance)."""
    data = _data(value, what)
    if len(data) != 32:
        # "0x" is what a node answers for a call to an address without code.
        raise ChainDataError(
            f"{what} is {len(data)} bytes, not the 32 of a number"
            + (" (is the token at that address on this chain?)" if not data else "")
        )
    return int.from_bytes(data, "big")


def read_bool(value: Any, what: str) -> bool:
    """A call's result that is one bool."""
    number = read_uint256(value, what)
    if number not in (0, 1):
        raise ChainDataError(f"{what} is neither true nor false")
    return number == 1


def _topic_address(topic: str, what: str) -> str:
    if topic[2:26] != "0" * 24:
        raise ChainDataError(f"{what} is not an address")
    return "0x" + topic[26:]


def read_logs(
    value: Any, *, address: str, topic: str
) -> list[TransferLog] | list[AuthorizationUsedLog]:
    """`eth_getLogs`'s answer as the logs of `topic`'s event emitted by the contract at
    `address`, in chain order. The filter was asked of the RPC, but what it sends is checked
    anyway: logs of another contract or event, and removed ones (a reorganised block), are left
    out; a log that is malformed makes the whole answer an error."""
    if not isinstance(value, list):
        raise ChainDataError(f"the logs are not a list: {_shown(value)}")
    contract = checked_address(address)
    logs: list[Any] = []
    for number, item in enumerate(value):
        what = f"log {number}"
        if not isinstance(item, dict):
            raise ChainDataError(f"{what} is not an object")
        if item.get("removed") is True:
            continue
        emitter = item.get("address")
        if not isinstance(emitter, str) or not _ADDRESS.fullmatch(emitter):
            raise ChainDataError(f"{what} has no contract address")
        topics = item.get("topics")
        if not isinstance(topics, list) or not all(
            isinstance(t, str) and _WORD.fullmatch(t) for t in topics
        ):
            raise ChainDataError(f"{what} has malformed topics")
        topics = [t.lower() for t in topics]
        if emitter.lower() != contract or not topics or topics[0] != topic or len(topics) != 3:
            continue  # not the event asked for (or its non-standard twin): not ours to read
        tx = item.get("transactionHash")
        if not isinstance(tx, str) or not _WORD.fullmatch(tx):
            raise ChainDataError(f"{what} has no transaction hash")
        block = read_quantity(item.get("blockNumber"), f"{what}'s block")
        index = read_quantity(item.get("logIndex"), f"{what}'s index")
        if topic == TRANSFER_TOPIC:
            data = _data(item.get("data"), f"{what}'s value")
            if len(data) != 32:
                raise ChainDataError(f"{what}'s value is not one number")
            logs.append(
                TransferLog(
                    sender=_topic_address(topics[1], f"{what}'s sender"),
                    recipient=_topic_address(topics[2], f"{what}'s recipient"),
                    value=int.from_bytes(data, "big"),
                    tx=tx.lower(),
                    block=block,
                    log_index=index,
                )
            )
        else:
            logs.append(
                AuthorizationUsedLog(
                    authorizer=_topic_address(topics[1], f"{what}'s authorizer"),
                    nonce=topics[2],
                    tx=tx.lower(),
                    block=block,
                    log_index=index,
                )
            )
    logs.sort(key=lambda log: log.position)
    return logs


def _shown(value: Any) -> str:
    """A bad value, briefly: enough to recognise, never a whole hostile document."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
