"""The dev server's configuration, its fault list, and the record of what it did.
Shared by the app, its x402 side and its streams; a test may change either while the server runs.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from xrouter_tui.payments.networks import Network, find_network

if TYPE_CHECKING:
    from xrouter_tui.devserver.chain import LocalChain

__all__ = [
    "CHAIN_PAY_TO",
    "DEFAULT_PAY_TO",
    "DEFAULT_PORT",
    "DEFAULT_REJECT_REASON",
    "FAULTS",
    "MODELS_SHAPES",
    "RECEIPT_FAULTS",
    "AcceptedPayment",
    "DevServerConfig",
    "DevServerState",
    "Refund",
]

# The local router's port when none is given.
DEFAULT_PORT = 8402

FAULTS: dict[str, str] = {
    "comments": "a ': keep-alive' comment line before every stream event",
    "crlf": "CRLF line ends throughout the stream",
    "split": "the stream written in 1-5 byte pieces that cut lines and UTF-8 characters",
    "bad-json": "one unparseable data line mid-stream, then the stream goes on",
    "midstream-error": 'an {"error": ...} data line mid-stream, then the stream ends',
    "truncate": "the stream ends cleanly mid-reply: no finish_reason, no [DONE]",
    "disconnect": "the connection is dropped mid-stream",
    "stall-first-byte": "a paid request waits stall_seconds before any response header",
    "stall-mid-stream": "the stream pauses for stall_seconds mid-reply",
    "no-receipt": "no payment receipt header on the paid response",
    "failed-receipt": "the paid answer comes with a receipt that says success: false",
    "reject-payment": "a valid payment is refused with 402 and reject_reason",
    "settlement-pending": "a valid payment is answered 402 settlement_pending, with the "
    "transaction in a PAYMENT-RESPONSE: broadcast, not confirmed",
    "payment-id-required": "x402 v2: the 402 declares the payment-identifier extension as "
    "required, and a payment without a valid id is refused",
    "http-error-json": "the unpaid request gets error_status with a JSON error",
    "http-error-text": "the unpaid request gets error_status with a plain-text error",
    "paid-http-error": "the paid request gets 500 after the payment was accepted",
    "rate-limit": "the unpaid request gets 429 with Retry-After: 7",
    "bad-challenge-json": "the 402 body is plain text, not JSON",
    "bad-challenge-no-accepts": "the 402 lists no payment requirements",
    "bad-challenge-amount": "the 402 asks for a fractional amount (12.5)",
    "bad-challenge-header": "the PAYMENT-REQUIRED header is not base64 JSON",
    "ignore-stream": "a paid streaming request gets a plain JSON completion",
    "top-level-content": "a plain JSON completion puts its text in a top-level content field",
    # Hostile routers: what no client may pass to a terminal or a spreadsheet.
    "escape-answer": "terminal escape sequences in the answer's content and reasoning deltas",
    "escape-models": "escape sequences in /v1/models names and descriptions, and in one model id",
    "escape-error": "the unpaid request gets error_status with escape sequences in its message",
    "escape-challenge": "escape sequences in the 402's error and descriptions (still payable)",
    "escape-midstream-error": "a mid-stream error whose message carries escape sequences",
    "escape-receipt": "escape sequences after the receipt's transaction hash",
    "receipt-newline": "CR LF and NUL in the receipt's transaction",
    "receipt-u2028": "U+2028 (a line separator) in the receipt's transaction",
    "formula-receipt": "the receipt's transaction is a spreadsheet formula",
    # Hostile routers: what no client may let crash it, hold it, or fill its memory.
    "nested-models": "/v1/models is JSON arrays nested 100,000 deep",
    "nested-challenge": "the 402 nests JSON past any stack: v1 its body, v2 its PAYMENT-REQUIRED",
    "nested-stream": "after payment, one SSE data line of deeply nested JSON, then the end",
    "endless-line": "after payment, an SSE 'data: ' line of huge_bytes that never ends",
    "huge-answer": "after payment, an SSE stream of valid deltas totalling huge_bytes of text",
    "huge-json-answer": "after payment, a JSON completion (even if streamed) of huge_bytes",
    "huge-models": "/v1/models is a valid JSON document of huge_bytes",
    "huge-error": "the unpaid request gets error_status with a JSON error of huge_bytes",
    "drip-headers": "the paid response's and /v1/models' head, one line every drip_seconds",
    "drip-stream": "after payment, one byte of a data line every drip_seconds, no line ever ends",
    "no-read": "the chat endpoint never reads the request body, for stall_seconds",
    # Where money and answers part: what the client must reconcile from the chain.
    "drop-paid-settled": "a valid payment is settled, then the connection closes without an answer",
    "drop-paid-unsettled": "a valid payment is neither settled nor answered: the connection closes",
}
RECEIPT_FAULTS = ("escape-receipt", "receipt-newline", "receipt-u2028", "formula-receipt")

# Made up: payments to the dev server are verified but never settled, so nothing reaches it.
DEFAULT_PAY_TO = "0x402D3F5E7A1B9c8D6e4F20314253647586970a1B"
# With the local chain, payments go to an account whose key the dev server holds (a public
# development key, `chain.DEV_KEY`): it settles them, pays the gas and sends the refunds.
CHAIN_PAY_TO = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
DEFAULT_REJECT_REASON = "invalid_exact_evm_insufficient_balance"
MODELS_SHAPES = ("xrouter", "openai")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_NON_NEGATIVE = ("delta_delay", "stall_seconds", "fault_after", "huge_bytes", "drip_seconds")


@dataclass
class DevServerConfig:
    """How the dev server behaves; fields may be changed while it runs."""

    x402_version: int = 1
    network: str = "base-sepolia"
    pay_to: str = DEFAULT_PAY_TO
    max_timeout_seconds: int = 120
    reply_deltas: int | None = None
    # At least this many bytes of reply, in `reply_deltas` pieces: a benchmark's big reply.
    reply_bytes: int | None = None
    delta_delay: float = 0.0
    faults: set[str] = field(default_factory=set)
    fault_after: int = 5
    stall_seconds: float = 30.0
    reject_reason: str = DEFAULT_REJECT_REASON
    error_status: int = 503
    models_shape: str = "xrouter"
    # What the huge-* faults and endless-line send, and how slowly the drip-* faults send it.
    huge_bytes: int = 16 * 1024 * 1024
    drip_seconds: float = 2.0
    # A real EVM on loopback (`chain.py`): payments settle on it, /rpc serves it.
    chain: bool = False
    # USDC minted on the chain for each address (atomic units), once per address.
    fund: dict[str, int] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        # Checked on every assignment, not only in __init__: tests reconfigure a running server.
        object.__setattr__(self, name, _checked(name, value))

    @property
    def resolved_network(self) -> Network:
        network = find_network(self.network)
        assert network is not None  # guaranteed by _checked
        return network

    @property
    def payee(self) -> str:
        """Where payments go: `pay_to`, or on the chain the dev server's own account unless
        another was set (the dev server can then settle but not refund)."""
        if self.chain and self.pay_to == DEFAULT_PAY_TO:
            return CHAIN_PAY_TO
        return self.pay_to

    def copy_from(self, other: DevServerConfig) -> None:
        """Take every setting of `other`, keeping this object (which a running app holds)."""
        for item in fields(self):
            value = getattr(other, item.name)
            if isinstance(value, set | dict):
                value = value.copy()
            setattr(self, item.name, value)


def _checked(name: str, value: Any) -> Any:
    if name == "faults":
        names = {value} if isinstance(value, str) else set(value)
        unknown = sorted(names - FAULTS.keys())
        if unknown:
            raise ValueError(
                f"unknown fault {', '.join(unknown)}; known faults: {', '.join(FAULTS)}"
            )
        return names
    if name == "x402_version" and value not in (1, 2):
        raise ValueError(f"x402_version must be 1 or 2, not {value!r}")
    if name == "network" and (not isinstance(value, str) or find_network(value) is None):
        raise ValueError(f"unknown network {value!r}; use base, base-sepolia or their CAIP-2 ids")
    if name == "pay_to" and (not isinstance(value, str) or not _ADDRESS.match(value)):
        raise ValueError(f"pay_to must be an 0x address, not {value!r}")
    if name == "models_shape" and value not in MODELS_SHAPES:
        raise ValueError(f"models_shape must be one of {', '.join(MODELS_SHAPES)}")
    if name in ("reply_deltas", "reply_bytes") and value is not None and value < 0:
        raise ValueError(f"{name} must be zero or more")
    # `not >= 0` refuses NaN as well: a drip or a stall of NaN seconds has no meaning.
    if name in _NON_NEGATIVE and not value >= 0:
        raise ValueError(f"{name} must be zero or more")
    if name == "fund":
        return _checked_fund(value)
    return value


def _checked_fund(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError("fund must map addresses to atomic USDC amounts")
    for address, amount in value.items():
        if not isinstance(address, str) or not _ADDRESS.match(address):
            raise ValueError(f"fund: not an 0x address: {address!r}")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"fund: {address} needs a whole number of atomic units, zero or more")
    return dict(value)


@dataclass(frozen=True, slots=True)
class AcceptedPayment:
    """A payment the dev server verified (and pretends to have settled)."""

    payer: str
    amount: int
    nonce: str
    network: str
    transaction: str
    model: str
    # The conversation the paid request sent, so tests can see what each turn carried.
    messages: tuple[dict[str, Any], ...] = ()
    # The payment's x402 v2 payment-identifier, if it sent one.
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refund:
    """The unused part of a payment sent back to its payer on the local chain."""

    payer: str
    nonce: str
    amount: int
    # The refund's own transaction and its receipt's status (1: done, 0: reverted).
    transaction: str
    status: int


@dataclass
class DevServerState:
    """What happened, for tests to inspect. Written on the server's loop, read from any thread.

    `completed_streams` counts streams sent to their end (a fault may have shortened them);
    `disconnects` those whose client went away first; `dropped_streams` the `disconnect` fault.
    `open_streams` counts streams being sent now: a reset keeps it, since they are still going
    (a test waits for it to be 0 before it resets, so that a stream of the test before it does
    not end in its counters).
    """

    unpaid_requests: int = 0
    paid_requests: int = 0
    invalid_requests: int = 0
    payments: list[AcceptedPayment] = field(default_factory=list)
    rejections: list[str] = field(default_factory=list)
    completed_streams: int = 0
    disconnects: int = 0
    dropped_streams: int = 0
    used_nonces: set[tuple[str, str]] = field(default_factory=set)
    # Paid requests sent again with their own payment, and answered (see `owes_answer`): the
    # payment as the resend carried it (in `payments` once, from the first request).
    resends: list[AcceptedPayment] = field(default_factory=list)
    # (payer, nonce) of accepted payments whose answer was not delivered whole, with the
    # header that paid: the identical header again gets the answer, not a replay refusal.
    owed_answers: dict[tuple[str, str], str] = field(default_factory=dict)
    open_streams: int = 0
    # On the local chain: each settled payment's transaction by (payer, nonce), the refunds
    # owed once the answer is out, and those sent.
    settlements: dict[tuple[str, str], str] = field(default_factory=dict)
    refunds_due: dict[tuple[str, str], int] = field(default_factory=dict)
    refunded: set[tuple[str, str]] = field(default_factory=set)
    refunds: list[Refund] = field(default_factory=list)
    # Payments the drop-paid-* faults answered by closing the connection: (payer, nonce).
    dropped_payments: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # The local chain, started on first use and kept by `reset` (a test module shares one).
    _chain: LocalChain | None = field(default=None, repr=False, compare=False)
    _chain_start: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, counter: str, by: int = 1) -> None:
        """Add `by` (one) to the named counter."""
        with self._lock:
            setattr(self, counter, getattr(self, counter) + by)

    def nonce_used(self, payer: str, nonce: str) -> bool:
        with self._lock:
            return (payer.lower(), nonce.lower()) in self.used_nonces

    def claim_nonce(self, payer: str, nonce: str) -> bool:
        """Mark (payer, nonce) used; False when it already was, as a replay."""
        key = (payer.lower(), nonce.lower())
        with self._lock:
            if key in self.used_nonces:
                return False
            self.used_nonces.add(key)
            return True

    def release_nonce(self, payer: str, nonce: str) -> None:
        """Forget a claim: the payment was not taken after all (refused on chain, dropped
        unsettled), so the same authorization may come again."""
        with self._lock:
            self.used_nonces.discard((payer.lower(), nonce.lower()))

    def owe_answer(self, payer: str, nonce: str, header: str) -> None:
        """An accepted payment's answer is on its way; until `delivered`, the same header may
        ask for it again."""
        with self._lock:
            self.owed_answers[(payer.lower(), nonce.lower())] = header

    def delivered(self, payer: str, nonce: str) -> None:
        """The answer paid by (payer, nonce) went out whole: its refund, if one is due, goes
        back to the payer now."""
        key = (payer.lower(), nonce.lower())
        with self._lock:
            self.owed_answers.pop(key, None)
            refund = self.refunds_due.pop(key, None)
            if refund:
                self.refunded.add(key)
            chain = self._chain
        if refund and chain is not None:
            # RuntimeError: the server is stopping, and its chain with it.
            with contextlib.suppress(RuntimeError):
                chain.refund_later(payer, refund, on_done=self._refunded(payer, nonce, refund))

    def refund_due(self, payer: str, nonce: str, amount: int) -> None:
        """Once the answer paid by (payer, nonce) is out, send `amount` back (once only)."""
        key = (payer.lower(), nonce.lower())
        with self._lock:
            if key not in self.refunded:
                self.refunds_due[key] = amount

    def _refunded(self, payer: str, nonce: str, amount: int) -> Any:
        def record(transaction: str, status: int) -> None:
            with self._lock:
                self.refunds.append(Refund(payer, nonce, amount, transaction, status))

        return record

    def refund_of(self, payer: str, nonce: str) -> Refund | None:
        """The refund sent for (payer, nonce)'s payment, once mined."""
        key = (payer.lower(), nonce.lower())
        with self._lock:
            return next(
                (r for r in self.refunds if (r.payer.lower(), r.nonce.lower()) == key), None
            )

    def record_settlement(self, payer: str, nonce: str, transaction: str) -> None:
        with self._lock:
            self.settlements[(payer.lower(), nonce.lower())] = transaction

    def settlement_of(self, payer: str, nonce: str) -> str | None:
        """The transaction that settled (payer, nonce) on the local chain, if this server
        settled it."""
        with self._lock:
            return self.settlements.get((payer.lower(), nonce.lower()))

    def record_drop(self, payer: str, nonce: str) -> None:
        with self._lock:
            self.dropped_payments.append((payer, nonce))

    @property
    def chain(self) -> LocalChain | None:
        """The local chain, if one was started."""
        return self._chain

    def local_chain(self, config: DevServerConfig) -> LocalChain:
        """The local chain for `config`'s network, started on first use (it blocks for about
        half a second then, py-evm loading), with `config.fund` minted."""
        network = config.resolved_network
        with self._chain_start:
            chain = self._chain
            if chain is None or chain.network != network:
                # Loaded here, never before: most runs of the program serve no chain.
                from xrouter_tui.devserver.chain import LocalChain

                if chain is not None:
                    chain.close()
                chain = self._chain = LocalChain(network)
        chain.fund(config.fund)
        return chain

    def owes_answer(self, payer: str, nonce: str, header: str) -> bool:
        """True when (payer, nonce) paid for an answer that never arrived and `header` is the
        very one that paid: a resend, which X-Router's idempotent payments answer (its nonce
        can be charged once only)."""
        with self._lock:
            return self.owed_answers.get((payer.lower(), nonce.lower())) == header

    def record_payment(self, payment: AcceptedPayment, *, resent: bool = False) -> None:
        with self._lock:
            (self.resends if resent else self.payments).append(payment)

    def record_rejection(self, code: str) -> None:
        with self._lock:
            self.rejections.append(code)

    @property
    def total_paid(self) -> int:
        """All accepted payments, in atomic units."""
        with self._lock:
            return sum(payment.amount for payment in self.payments)

    def reset(self) -> None:
        """Forget everything, keeping this object (which a running app holds)."""
        with self._lock:
            for item in fields(self):
                if item.name not in ("_lock", "open_streams", "_chain", "_chain_start"):
                    value = (
                        item.default_factory() if callable(item.default_factory) else item.default
                    )
                    setattr(self, item.name, value)
