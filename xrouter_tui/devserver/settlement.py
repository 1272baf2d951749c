"""Taking a verified payment: settling it on the local chain (without one, only a made-up
transaction), refunding what the answer did not use, and the faults that drop a paid request.

The chain itself loads on first use, in a worker thread: the server's loop never waits on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.responses import Response

from xrouter_tui.devserver import x402
from xrouter_tui.devserver.catalog import PriceEstimate, price_used
from xrouter_tui.devserver.state import CHAIN_PAY_TO, DevServerConfig, DevServerState
from xrouter_tui.devserver.stream import Answer, DrippedHead
from xrouter_tui.devserver.token import Authorization
from xrouter_tui.devserver.verify import (
    NONCE_ALREADY_USED,
    SIGNATURE_INVALID,
    VALID_AFTER,
    VALID_BEFORE,
    Offer,
    PaymentCheck,
)

__all__ = [
    "INSUFFICIENT_BALANCE",
    "SIMULATION_FAILED",
    "TRANSACTION_FAILED",
    "Settled",
    "dropped",
    "refund_due",
    "settle",
]

INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
TRANSACTION_FAILED = "transaction_failed"

# USDC's revert reasons, under the codes x402 facilitators give them.
_REVERTS = {
    "authorization is used or canceled": NONCE_ALREADY_USED,
    "transfer amount exceeds balance": INSUFFICIENT_BALANCE,
    "authorization is expired": VALID_BEFORE,
    "authorization is not yet valid": VALID_AFTER,
    "invalid signature": SIGNATURE_INVALID,
}


@dataclass(frozen=True, slots=True)
class Settled:
    """A payment taken (`transaction`), refused (`error`, for the 402), or to be answered by
    closing the connection (`drop`)."""

    transaction: str | None = None
    error: str | None = None
    drop: bool = False

    @property
    def ok(self) -> bool:
        return self.transaction is not None

    def refusal(self, offer: Offer, resource: str, about: str) -> Response:
        """The answer to a payment not taken."""
        if self.drop:
            return dropped()
        return x402.challenge(offer, resource, about, error=self.error)


def dropped() -> Response:
    """The connection closed without a word: no status line, no body."""
    return DrippedHead((), 0.0)


async def settle(
    config: DevServerConfig,
    state: DevServerState,
    check: PaymentCheck,
    resent: bool,
    faults: frozenset[str],
) -> Settled:
    """Take the verified payment `check`: on the chain, simulate then send its
    `transferWithAuthorization` and read the receipt; a resend of a payment this server
    settled is answered without settling again (its nonce is used on chain)."""
    payer, nonce = check.payer, check.nonce
    assert payer is not None and nonce is not None
    if "drop-paid-unsettled" in faults and not resent:
        # As a router that fails before it settles: the authorization stays unused.
        state.release_nonce(payer, nonce)
        state.record_drop(payer, nonce)
        return Settled(drop=True)
    if not config.chain:
        return Settled(x402.transaction_hash(nonce))
    chain = await asyncio.to_thread(state.local_chain, config)
    if resent:
        return Settled(state.settlement_of(payer, nonce) or x402.transaction_hash(nonce))
    assert check.amount is not None and check.pay_to is not None and check.signature is not None
    assert check.valid_after is not None and check.valid_before is not None
    authorization = Authorization(
        payer,
        check.pay_to,
        check.amount,
        check.valid_after,
        check.valid_before,
        nonce,
        check.signature,
    )
    settlement = await asyncio.to_thread(chain.settle, authorization)
    if settlement.outcome is None:
        error = _code(settlement.revert or "")
    elif not settlement.outcome.ok:
        error = TRANSACTION_FAILED
    else:
        state.record_settlement(payer, nonce, settlement.outcome.transaction)
        return Settled(settlement.outcome.transaction)
    if error != NONCE_ALREADY_USED:
        # Not used on chain: the same authorization may be paid with later (once funded).
        state.release_nonce(payer, nonce)
    state.record_rejection(error)
    return Settled(error=error)


def refund_due(
    config: DevServerConfig,
    state: DevServerState,
    check: PaymentCheck,
    price: PriceEstimate,
    answer: Answer,
) -> None:
    """On the chain, owe the payer what `answer` did not use of the upfront amount: sent back
    from the dev server's account once the answer is out (see `DevServerState.delivered`)."""
    if not config.chain or config.payee != CHAIN_PAY_TO:
        return
    assert check.payer is not None and check.nonce is not None and check.amount is not None
    usage = answer.usage
    used = price_used(price.model, usage["prompt_tokens"], usage["completion_tokens"])
    if check.amount > used:
        state.refund_due(check.payer, check.nonce, check.amount - used)


def _code(revert: str) -> str:
    for reason, code in _REVERTS.items():
        if reason in revert:
            return code
    return SIMULATION_FAILED
