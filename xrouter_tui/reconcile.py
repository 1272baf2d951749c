"""What became of each payment, from the chain itself.

A payment whose outcome is not known (`unknown`, or `signed`/`sent` left by a crash or a router
without a receipt) is settled by `authorizationState(payer, nonce)`: used means charged
(`settled`, with the transaction found from its `AuthorizationUsed` log when it can be); unused
past its validBefore, by the chain's own clock (its latest block's time: this computer's may
be wrong), means not charged, ever (it stays `unknown`, shown "expired, not charged", and no
longer counts). Unused before then, it is left for a later look.

A USDC transfer to the wallet from a payment's `payTo` after the payment is taken for its refund
(X-Router says it refunds the unused part of the upfront charge; how is not documented): of the
payments to that payee used on chain before it, not refunded yet and at least as large, the
latest gets it (a refund that never comes then costs no other payment its own). It is shown as
seen on chain, never promised. A payment whose refund window passed with none seen
gets a refund of 0, and is not looked at again.

Blocks are found from times: Base makes one every 2 seconds, so a payment's blocks are sought
in a window around the time it was signed (counted back from the latest block's time), never
the whole chain. Each run does a bounded
amount of reading (`Limits`); what is left waits for the next one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from xrouter_tui.chain import (
    BLOCK_SECONDS,
    AuthorizationUsedLog,
    Balance,
    BalanceWatch,
    ChainError,
    ChainReaders,
    TransferLog,
    UsdcReader,
)
from xrouter_tui.chain.usdc import checked_address
from xrouter_tui.history.store import SPENT, Store, StoredPayment, StoreError
from xrouter_tui.payments import Network

__all__ = [
    "COMMAND_DEADLINE",
    "REFUND_WINDOW",
    "ChainSession",
    "Reconciled",
    "RunLimits",
    "reconcile",
    "reconcile_now",
    "reconcile_within",
]

# A refund is looked for this long after its payment was signed.
REFUND_WINDOW = 3600.0
# Times on this computer and the chain's, and the estimate of a block from a time, may differ
# by this much: every window of blocks is widened by it.
SLACK = 900.0
# A command (`spend`, `wallet`) waits this long for the chain at most, then goes on with what it
# has: the rest is looked up next time.
COMMAND_DEADLINE = 15.0
# Outcomes still open: a crash or a router without a receipt leaves `signed` or `sent`.
_OPEN = ("signed", "sent")


@dataclass(frozen=True, slots=True)
class RunLimits:
    """The most one run reads: authorizationState calls, eth_getLogs calls, blocks in one
    eth_getLogs (public endpoints refuse wide ranges)."""

    state_calls: int = 50
    log_calls: int = 24
    log_blocks: int = 5000


@dataclass(slots=True)
class Reconciled:
    """What one run found: payments settled or seen expired, refunds seen, and what could not
    be read (one line per network)."""

    settled: int = 0
    expired: int = 0
    refunds: int = 0
    refunded: int = 0  # atomic units
    errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.settled or self.expired or self.refunds)


Readers = Callable[[Network], UsdcReader | None]


async def reconcile(
    store: Store,
    readers: Readers,
    networks: Sequence[Network],
    *,
    since: str | None = None,
    limits: RunLimits = RunLimits(),
) -> Reconciled:
    """Look up on chain the payments of `networks` whose outcome or refund is open (signed at
    or after `since`, when given: a demo's chain knows only its own run), and write what is
    found to `store`. `readers` gives each network's reader (None: not read). Never raises for
    the chain: what could not be read is in `errors`, and is looked at again next time."""
    result = Reconciled()
    for network in networks:
        reader = readers(network)
        if reader is None:
            continue
        payments = store.payments(networks=[network.v1_name], since=since)
        try:
            await _network(store, reader, payments, limits, result)
        except ChainError as exc:
            result.errors.append(str(exc))
    return result


async def reconcile_within(
    store: Store,
    readers: Readers,
    networks: Sequence[Network],
    *,
    deadline: float,
    since: str | None = None,
) -> Reconciled:
    """`reconcile`, given up after `deadline` seconds (what was found by then is kept), and
    a history that cannot be written said in `errors` rather than raised: for callers that must
    go on whatever the chain and the disk do."""
    try:
        async with asyncio.timeout(deadline):
            return await reconcile(store, readers, networks, since=since)
    except TimeoutError:
        return Reconciled(errors=[f"the chain did not answer within {deadline:g} s"])
    except StoreError as exc:
        return Reconciled(errors=[str(exc)])


def reconcile_now(
    store: Store,
    rpc_urls: Mapping[str, str],
    networks: Sequence[Network],
    *,
    deadline: float = COMMAND_DEADLINE,
    since: str | None = None,
) -> Reconciled:
    """`reconcile_within` for a command: its own event loop and readers, closed after."""

    async def run() -> Reconciled:
        readers = ChainReaders(rpc_urls)
        try:
            return await reconcile_within(store, readers, networks, deadline=deadline, since=since)
        finally:
            await readers.aclose()

    return asyncio.run(run())


class ChainSession:
    """What a long-lived process (the chat, the proxy) keeps of the chain: a reader per
    network, the wallet's balance (`balances`, whose `funds` is the check before signing), and
    reconciliation, one run at a time. Made off the first frame; lives on one event loop;
    `aclose()` it.

    The chat reads the balance and reconciles at start, after each turn and on `r` in the
    ledger: `refresh(address)` and `reconcile(store)`, each in a worker."""

    def __init__(
        self,
        rpc_urls: Mapping[str, str],
        networks: Sequence[Network],
        *,
        since: str | None = None,
        deadline: float = COMMAND_DEADLINE,
    ) -> None:
        self.networks = tuple(networks)
        self.readers = ChainReaders(rpc_urls)
        self.balances = BalanceWatch(self.readers)
        # A demo's chain knows only the payments of its own run.
        self.since = since
        self.deadline = deadline
        self._running: asyncio.Lock | None = None

    @property
    def funds(self) -> Callable[[Network, str], Awaitable[int | None]]:
        """For `RouterClient(funds=…)`: the balance the check before signing compares."""
        return self.balances.funds

    def last(self, address: str) -> Balance | None:
        """The wallet's latest balance read on the first allowed network (the status bar's)."""
        return self.balances.last(self.networks[0], address) if self.networks else None

    async def refresh(self, address: str) -> Balance | None:
        """Read the wallet's balance on the first allowed network now."""
        if not self.networks:
            return None
        return await self.balances.read(self.networks[0], address)

    async def reconcile(self, store: Store) -> Reconciled:
        """One reconciliation run (waiting for one under way), within the deadline; never
        raises for the chain or the disk."""
        if self._running is None:
            self._running = asyncio.Lock()
        async with self._running:
            return await reconcile_within(
                store, self.readers, self.networks, deadline=self.deadline, since=self.since
            )

    async def aclose(self) -> None:
        await self.balances.aclose()
        await self.readers.aclose()


@dataclass(slots=True)
class _Payment:
    row: StoredPayment
    signed_at: float
    # Where its authorization was used, when seen: block and log index.
    used_at: tuple[int, int] | None = None
    used_tx: str | None = None
    # Its blocks were all read this run (for a refund, up to the end of its window).
    covered: bool = False


async def _network(
    store: Store,
    reader: UsdcReader,
    payments: Sequence[StoredPayment],
    limits: RunLimits,
    result: Reconciled,
) -> None:
    open_outcome = [p for p in payments if _outcome_open(p)]
    refund_open = [p for p in payments if p.status in SPENT and p.refund is None]
    if not open_outcome and not refund_open:
        return  # nothing to ask: not even the block number
    # A refund seen already is not taken for another payment's.
    seen_refunds = [p.refund_tx for p in payments if p.refund and p.refund_tx]
    block = await reader.latest_block()
    # The chain's clock: an authorization is expired when the chain's time says so.
    latest, now = block.number, float(block.timestamp)
    # Newest first: what a run leaves for the next is the oldest.
    wanted = {p.id: p for p in sorted([*open_outcome, *refund_open], key=lambda p: -p.id)}
    by_payer: dict[str, list[_Payment]] = {}
    for row in wanted.values():
        try:
            payer = checked_address(row.payer)
            checked_address(row.pay_to)
        except ValueError:
            continue  # not a payment this client made: nothing to look up
        by_payer.setdefault(payer, []).append(_Payment(row, _epoch(row.created) or now))

    calls = _Budget(limits)
    for payer, group in by_payer.items():
        used, transfers = await _read_logs(reader, payer, group, latest, now, calls)
        # Outcomes first: a payment settled now may get its refund in this very run.
        for item in group:
            row = item.row
            log = used.get(row.nonce.lower())
            if log is not None:
                item.used_at, item.used_tx = log.position, log.tx
            if not _outcome_open(row) or not calls.state():
                continue
            if await reader.authorization_state(row.payer, row.nonce):
                if store.settled_on_chain(row.id, was=row.status, tx=item.used_tx):
                    result.settled += 1
                    item.row = _as_settled(row)
            elif now >= row.valid_before and store.expired_on_chain(row.id, was=row.status):
                # Read after the block whose time is past it: no later block can use it.
                result.expired += 1
        _match_refunds(store, group, transfers, seen_refunds, now, result)


def _outcome_open(p: StoredPayment) -> bool:
    return p.status in _OPEN or (p.status == "unknown" and p.expired_seen is None)


class _Budget:
    """What is left of a run's calls."""

    def __init__(self, limits: RunLimits) -> None:
        self.limits = limits
        self.states = limits.state_calls
        self.logs = limits.log_calls

    def state(self) -> bool:
        if self.states <= 0:
            return False
        self.states -= 1
        return True

    def log(self) -> bool:
        if self.logs <= 0:
            return False
        self.logs -= 1
        return True


async def _read_logs(
    reader: UsdcReader,
    payer: str,
    group: list[_Payment],
    latest: int,
    now: float,
    calls: _Budget,
) -> tuple[dict[str, AuthorizationUsedLog], list[TransferLog]]:
    """The payer's used authorizations and the transfers to it from the group's payees, in the
    blocks around each payment (windows merged, newest first, cut to the run's limits); marks
    the payments whose whole window was read."""

    def block_at(moment: float) -> int:
        return latest - math.ceil((now - moment) / BLOCK_SECONDS)

    windows: list[tuple[int, int, list[_Payment]]] = []
    for item in group:
        start = max(block_at(item.signed_at - SLACK), 0)
        end = min(block_at(item.signed_at + REFUND_WINDOW + SLACK), latest)
        windows.append((start, max(end, start), [item]))
    windows.sort(key=lambda w: w[0])
    merged: list[tuple[int, int, list[_Payment]]] = []
    for start, end, items in windows:
        if merged and start <= merged[-1][1] + 1:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2] + items)
        else:
            merged.append((start, end, items))

    payees = tuple(dict.fromkeys(item.row.pay_to.lower() for item in group))
    used: dict[str, AuthorizationUsedLog] = {}
    transfers: dict[tuple[int, int], TransferLog] = {}
    step = calls.limits.log_blocks
    for start, end, items in reversed(merged):
        whole = True
        for low in range(start, end + 1, step):
            high = min(low + step - 1, end)
            if not (calls.log() and calls.log()):
                whole = False
                break
            for log in await reader.authorization_used(payer, from_block=low, to_block=high):
                used[log.nonce] = log
            for log in await reader.transfers_to(payer, low, high, senders=payees):
                transfers[log.position] = log
        for item in items:
            item.covered = whole
    return used, sorted(transfers.values(), key=lambda log: log.position)


def _match_refunds(
    store: Store,
    group: Iterable[_Payment],
    transfers: Sequence[TransferLog],
    seen_refunds: list[str],
    now: float,
    result: Reconciled,
) -> None:
    waiting = sorted(
        (item for item in group if item.row.status in SPENT and item.row.refund is None),
        key=lambda item: (item.used_at or (0, 0), item.row.id),
    )
    # A transaction already taken for a refund: as many of its transfers as it refunded.
    taken = {tx: seen_refunds.count(tx) for tx in seen_refunds}
    for transfer in transfers:
        if taken.get(transfer.tx, 0) > 0:
            taken[transfer.tx] -= 1
            continue
        before = [
            item
            for item in waiting
            if item.row.pay_to.lower() == transfer.sender
            and item.row.amount >= transfer.value
            and item.used_at is not None
            and item.used_at < transfer.position
        ]
        if not before:
            continue  # not a refund of any payment here (or of one not looked at)
        item = before[-1]
        if store.record_refund(item.row.id, transfer.value, transfer.tx):
            result.refunds += 1
            result.refunded += transfer.value
        waiting.remove(item)
    for item in waiting:
        # Its whole window read, none seen: none is coming that could be told apart.
        if item.covered and now >= item.signed_at + REFUND_WINDOW + SLACK:
            store.record_refund(item.row.id, 0, None)


def _as_settled(row: StoredPayment) -> StoredPayment:
    return replace(row, status="settled")


def _epoch(created: str) -> float | None:
    """A recorded UTC time (`2026-11-25T09:14:03.512Z`) in seconds since the epoch."""
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
