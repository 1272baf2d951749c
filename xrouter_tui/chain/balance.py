"""The wallet's balance, read in the background and kept a few seconds: what the status bar
shows and what the check before signing compares with the router's amount.

A read never holds up a turn: the check takes a figure read moments ago, or waits a short grace
for a read under way (`ask` starts one beside its unpaid request), and otherwise goes on as if
the balance were unknown (the router then judges, as it always does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass

from xrouter_tui.api.reading import Limits, Timeouts
from xrouter_tui.chain.reader import ChainReaders, UsdcReader
from xrouter_tui.chain.rpc import RPC_TIMEOUTS, ChainError
from xrouter_tui.payments import Network

__all__ = ["Balance", "BalanceWatch"]

# A figure this old still serves the check before signing, once.
FRESH_SECONDS = 5.0
# How long the check waits for a read under way before it goes on without it.
GRACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Balance:
    """What is known of one wallet's USDC on one network: the figure (atomic units) and when it
    was read (`time.monotonic`), or why it could not be."""

    network: Network
    address: str
    atomic: int | None
    read_at: float
    error: str = ""

    @property
    def known(self) -> bool:
        return self.atomic is not None


class BalanceWatch:
    """Balances of wallets, one read at a time per wallet and network, each through the
    network's reader (`readers`, or readers made from RPC URLs by the network's x402 v1 name;
    a network without one has no balance to show). Lives on one event loop; `aclose()` it."""

    def __init__(
        self,
        readers: ChainReaders | Mapping[str, str],
        *,
        timeouts: Timeouts = RPC_TIMEOUTS,
        limits: Limits | None = None,
        fresh_seconds: float = FRESH_SECONDS,
        grace_seconds: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Readers made here are closed here; given ones belong to the giver.
        self._owns_readers = not isinstance(readers, ChainReaders)
        self.readers = (
            readers
            if isinstance(readers, ChainReaders)
            else ChainReaders(readers, timeouts=timeouts, limits=limits)
        )
        self.fresh_seconds = fresh_seconds
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._last: dict[tuple[str, str], Balance] = {}
        self._reads: dict[tuple[str, str], asyncio.Task[Balance]] = {}
        # When the check before signing last took a figure: each figure serves one payment.
        self._checked: dict[tuple[str, str], float] = {}

    async def aclose(self) -> None:
        for task in self._reads.values():
            task.cancel()
        for task in list(self._reads.values()):
            with suppress(asyncio.CancelledError, Exception):
                await task
        self._reads.clear()
        if self._owns_readers:
            await self.readers.aclose()

    def reader(self, network: Network) -> UsdcReader | None:
        """The network's reader; None without an RPC endpoint for it."""
        return self.readers(network)

    def last(self, network: Network, address: str) -> Balance | None:
        """The latest figure (or failure) read, however old; None before the first read ends."""
        return self._last.get(_key(network, address))

    def refresh(self, network: Network, address: str) -> asyncio.Task[Balance]:
        """Start reading the balance now (or join the read under way); the task's result is the
        new `Balance`, known or not. Never raises: a failure is a Balance with its error."""
        key = _key(network, address)
        task = self._reads.get(key)
        if task is None or task.done():
            task = self._reads[key] = asyncio.get_running_loop().create_task(
                self._read(network, address)
            )
        return task

    async def read(self, network: Network, address: str) -> Balance:
        """Read the balance now (joining a read under way) and return it."""
        return await asyncio.shield(self.refresh(network, address))

    async def funds(self, network: Network, payer: str) -> int | None:
        """The check before signing asks: the balance in atomic units, if known now. A figure
        read in the last few seconds, not yet used by a check, serves; else a read under way (or
        a new one) is given a short grace; else None: the payment goes on unchecked."""
        key = _key(network, payer)
        last = self._last.get(key)
        now = self._clock()
        used = self._checked.get(key, float("-inf"))
        fresh = last is not None and last.known and last.read_at >= now - self.fresh_seconds
        if fresh and last is not None and last.read_at > used:
            self._checked[key] = now
            return last.atomic
        task = self.refresh(network, payer)
        try:
            async with asyncio.timeout(self.grace_seconds):
                balance = await asyncio.shield(task)
        except TimeoutError:
            return None  # it goes on in the background, for the next look
        self._checked[key] = self._clock()
        return balance.atomic

    async def _read(self, network: Network, address: str) -> Balance:
        reader = self.reader(network)
        if reader is None:
            balance = Balance(
                network, address, None, self._clock(), f"no RPC endpoint for {network.label}"
            )
        else:
            try:
                atomic = await reader.balance_of(address)
                balance = Balance(network, address, atomic, self._clock())
            except (ChainError, ValueError) as exc:
                balance = Balance(network, address, None, self._clock(), str(exc))
        key = _key(network, address)
        previous = self._last.get(key)
        # A failed read does not hide the figure before it from the status bar's look
        # (`last`); the check takes only a fresh figure anyway.
        if balance.known or previous is None or not previous.known:
            self._last[key] = balance
        else:
            self._last[key] = Balance(
                network, address, previous.atomic, previous.read_at, balance.error
            )
        return balance


def _key(network: Network, address: str) -> tuple[str, str]:
    return (network.v1_name, address.lower())
