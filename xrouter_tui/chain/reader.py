"""The wallet's USDC as the chain holds it: the balance, whether an authorization was used, the
transfers and authorizations seen in a range of blocks, a transaction's receipt.

Every read first checks once that the endpoint serves the network's chain (`eth_chainId`): a
Base Sepolia endpoint set for Base would show test money as real. Each failure is a
`ChainError` with one line; nothing here retries or waits beyond the RPC's deadlines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from xrouter_tui.api.reading import Limits, Timeouts
from xrouter_tui.chain.rpc import RPC_TIMEOUTS, ChainError, JsonRpc
from xrouter_tui.chain.usdc import (
    AUTHORIZATION_USED_TOPIC,
    TRANSFER_TOPIC,
    AuthorizationUsedLog,
    ChainDataError,
    TransferLog,
    address_topic,
    authorization_state_call,
    balance_of_call,
    checked_tx,
    hex_quantity,
    read_bool,
    read_logs,
    read_quantity,
    read_uint256,
    word_hex,
)
from xrouter_tui.payments import Network

__all__ = ["BLOCK_SECONDS", "Block", "ChainReaders", "TxReceipt", "UsdcReader"]

# Base and Base Sepolia make a block every 2 seconds: how a time becomes a block number.
BLOCK_SECONDS = 2


@dataclass(frozen=True, slots=True)
class Block:
    """A block's number and time (seconds since the epoch, as the chain keeps it)."""

    number: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """A mined transaction: whether it succeeded, its block, and the USDC transfers it made."""

    tx: str
    block: int
    succeeded: bool
    transfers: tuple[TransferLog, ...] = ()


class UsdcReader:
    """Reads of one network's USDC through one RPC endpoint. Use it with `async with`."""

    def __init__(
        self,
        url: str,
        network: Network,
        *,
        timeouts: Timeouts = RPC_TIMEOUTS,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.network = network
        self.asset = network.usdc.address
        self.rpc = JsonRpc(url, timeouts=timeouts, limits=limits, transport=transport)
        self._chain_checked = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.rpc.aclose()

    @property
    def host(self) -> str:
        return self.rpc.host

    # -- reads ----------------------------------------------------------------------------

    async def balance_of(self, address: str) -> int:
        """`address`'s USDC, in atomic units (6 decimals)."""
        result = await self._eth_call(balance_of_call(address), "balanceOf")
        return self._read(read_uint256, result, "the balance")

    async def authorization_state(self, payer: str, nonce: str) -> bool:
        """True once `payer`'s authorization with `nonce` was used (or cancelled) on chain."""
        result = await self._eth_call(authorization_state_call(payer, nonce), "authorizationState")
        return self._read(read_bool, result, "authorizationState")

    async def block_number(self) -> int:
        """The latest block's number."""
        await self._check_chain()
        result = await self.rpc.call("eth_blockNumber", [])
        return self._read(read_quantity, result, "the block number")

    async def latest_block(self) -> Block:
        """The latest block: its number, and the chain's time (an authorization whose
        validBefore is at or before it can no longer be used, in this block or any later)."""
        await self._check_chain()
        result = await self.rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(result, dict):
            raise self._bad("the latest block is not an object")
        return Block(
            number=self._read(read_quantity, result.get("number"), "the block's number"),
            timestamp=self._read(read_quantity, result.get("timestamp"), "the block's time"),
        )

    async def transfers_to(
        self,
        address: str,
        from_block: int,
        to_block: int | None = None,
        *,
        senders: tuple[str, ...] = (),
    ) -> list[TransferLog]:
        """USDC transfers to `address` in the blocks from `from_block` to `to_block` (the
        latest when None), from any of `senders` (anyone when empty), in chain order."""
        sender_topics: Any = [address_topic(s) for s in dict.fromkeys(senders)] or None
        topics = [TRANSFER_TOPIC, sender_topics, address_topic(address)]
        logs = await self._logs(topics, from_block, to_block, TRANSFER_TOPIC)
        return [log for log in logs if isinstance(log, TransferLog)]

    async def authorization_used(
        self, payer: str, nonce: str | None = None, *, from_block: int, to_block: int | None = None
    ) -> list[AuthorizationUsedLog]:
        """The `AuthorizationUsed` events of `payer` (of one `nonce`, or all) in the blocks
        from `from_block` to `to_block` (the latest when None), in chain order: each names the
        transaction that used the authorization."""
        topics: list[Any] = [AUTHORIZATION_USED_TOPIC, address_topic(payer)]
        if nonce is not None:
            topics.append(word_hex(nonce))
        logs = await self._logs(topics, from_block, to_block, AUTHORIZATION_USED_TOPIC)
        used = [log for log in logs if isinstance(log, AuthorizationUsedLog)]
        wanted = payer.lower()
        return [
            log
            for log in used
            if log.authorizer == wanted and (nonce is None or log.nonce == nonce.lower())
        ]

    async def receipt(self, tx: str) -> TxReceipt | None:
        """The receipt of transaction `tx`, or None while it is not mined (or unknown)."""
        await self._check_chain()
        result = await self.rpc.call("eth_getTransactionReceipt", [checked_tx(tx)])
        if result is None:
            return None
        if not isinstance(result, dict):
            raise self._bad("the receipt is not an object")
        status = self._read(read_quantity, result.get("status"), "the receipt's status")
        block = self._read(read_quantity, result.get("blockNumber"), "the receipt's block")
        transfers = self._read_logs(result.get("logs", []), TRANSFER_TOPIC)
        return TxReceipt(
            tx=checked_tx(tx),
            block=block,
            succeeded=status == 1,
            transfers=tuple(log for log in transfers if isinstance(log, TransferLog)),
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def _check_chain(self) -> None:
        if self._chain_checked:
            return
        result = await self.rpc.call("eth_chainId", [])
        chain_id = self._read(read_quantity, result, "the chain id")
        if chain_id != self.network.chain_id:
            raise ChainError(
                f"The chain's RPC at {self.host} serves chain {chain_id}, not "
                f"{self.network.label} ({self.network.chain_id}): set "
                f"rpc_url_{self.network.v1_name.replace('-', '_')} to one that does."
            )
        self._chain_checked = True

    async def _eth_call(self, data: str, name: str) -> Any:
        await self._check_chain()
        return await self.rpc.call("eth_call", [{"to": self.asset, "data": data}, "latest"])

    async def _logs(
        self, topics: list[Any], from_block: int, to_block: int | None, topic: str
    ) -> list[Any]:
        await self._check_chain()
        query = {
            "address": self.asset,
            "topics": topics,
            "fromBlock": hex_quantity(max(from_block, 0)),
            "toBlock": "latest" if to_block is None else hex_quantity(max(to_block, 0)),
        }
        result = await self.rpc.call("eth_getLogs", [query])
        return self._read_logs(result, topic)

    def _read_logs(self, value: Any, topic: str) -> list[Any]:
        try:
            return list(read_logs(value, address=self.asset, topic=topic))
        except ChainDataError as exc:
            raise self._bad(str(exc)) from None

    def _read(self, reader: Any, value: Any, what: str) -> Any:
        try:
            return reader(value, what)
        except ChainDataError as exc:
            raise self._bad(str(exc)) from None

    def _bad(self, what: str) -> ChainError:
        return ChainError(f"The chain's RPC at {self.host} sent an answer that is wrong: {what}.")


class ChainReaders:
    """A reader per network, made on first use from `rpc_urls` (by the network's x402 v1 name;
    a network without one is not read). Lives on one event loop; `aclose()` it."""

    def __init__(
        self,
        rpc_urls: Mapping[str, str],
        *,
        timeouts: Timeouts = RPC_TIMEOUTS,
        limits: Limits | None = None,
    ) -> None:
        self.rpc_urls = dict(rpc_urls)
        self.timeouts = timeouts
        self.limits = limits
        self._readers: dict[str, UsdcReader] = {}

    def __call__(self, network: Network) -> UsdcReader | None:
        """The network's reader; None without an RPC endpoint for it."""
        reader = self._readers.get(network.v1_name)
        if reader is None:
            url = self.rpc_urls.get(network.v1_name)
            if not url:
                return None
            reader = self._readers[network.v1_name] = UsdcReader(
                url, network, timeouts=self.timeouts, limits=self.limits
            )
        return reader

    async def aclose(self) -> None:
        readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            await reader.aclose()
