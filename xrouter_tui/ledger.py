"""The money side of the history: every payment as it happens, and the budgets it must fit.

Every payment is recorded when it is signed, before the paid request goes out, then updated
with what became of it. Budgets are checked twice: from the totals before signing (so that a
refusal signs nothing), and again inside the very write transaction that records the signature,
so that two processes paying at once cannot both slip under the same daily budget.

The daily budget counts every process's payments from the history; the session's are this
process's. Without a history (it could not be opened) the session is kept in memory, and the
day is the session.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from xrouter_tui.api import NeverSent, PaymentRejected, RouterError
from xrouter_tui.history.store import (
    SPENT,
    PaymentRecord,
    Store,
    StoredPayment,
    StoreError,
    at_risk,
)
from xrouter_tui.payments import (
    Budget,
    Network,
    PaymentRefused,
    Receipt,
    SignedPayment,
    check_budgets,
    format_usd,
)
from xrouter_tui.payments.networks import usd_text
from xrouter_tui.payments.reasons import PROVES_NOT_CHARGED
from xrouter_tui.resends import Resend, kept_resend, resend_record
from xrouter_tui.safe_text import csv_cell, shown_tx

__all__ = [
    "CSV_COLUMNS",
    "Ledger",
    "ModelSpend",
    "Spending",
    "local_midnight",
    "local_time",
    "payment_record",
    "payments_csv",
    "utc_iso",
]


def payment_record(payment: SignedPayment) -> PaymentRecord:
    """What the store keeps of a signed payment: never the signature or the header."""
    return PaymentRecord(
        network=payment.network.v1_name,
        asset=payment.asset,
        amount=payment.amount,
        decimals=payment.network.usdc.decimals,
        pay_to=payment.pay_to,
        payer=payment.payer,
        nonce=payment.nonce,
        valid_before=payment.valid_before,
    )


CSV_COLUMNS = (
    "time",
    "model",
    "amount_usd",
    "network",
    "status",
    "tx",
    "payer",
    "pay_to",
    "nonce",
    "valid_before",
    "reason",
    "conversation_id",
    "refund_usd",
    "refund_tx",
)


def payments_csv(payments: Iterable[StoredPayment], *, now: float | None = None) -> str:
    """The payments as CSV (a header, then a row each), as the ledger screen and `spend --csv`
    write them: amounts in dollars, exactly; times in UTC as recorded.

    Models, transactions and reasons came from a router, and a spreadsheet runs a cell that
    begins like a formula: every cell goes through `csv_cell`, a malformed transaction is
    written `(malformed)`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in payments:
        row = (
            p.created,
            p.model,
            usd_text(p.amount_usd),
            p.network,
            p.shown_status_at(time.time() if now is None else now),
            shown_tx(p.tx) if p.tx else "",
            p.payer,
            p.pay_to,
            p.nonce,
            p.valid_before,
            p.reason,
            "" if p.conversation_id is None else p.conversation_id,
            usd_text(p.refund_usd) if p.refund else "",
            shown_tx(p.refund_tx) if p.refund and p.refund_tx else "",
        )
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()


def local_time(created: str) -> str:
    """A recorded UTC time (`2026-11-25T09:14:03.512Z`) as the user's local time, to the
    minute (`2026-11-25 10:14`)."""
    try:
        moment = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created[:16].replace("T", " ")
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def local_midnight(now: float) -> str:
    """The start of the user's day containing `now`, as the store writes times (UTC ISO 8601)."""
    local = datetime.fromtimestamp(now).astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True, slots=True)
class ModelSpend:
    """What one model cost, in all."""

    model: str
    usd: Decimal
    payments: int


@dataclass(frozen=True, slots=True)
class Spending:
    """Totals and payments, as the ledger screen and `spend` show them. Totals count payments
    the router took, at what was charged up front; `uncertain_usd` those whose outcome is not
    known yet (they may settle); the `refunded` totals what came back from their payees, as
    seen on chain."""

    session_usd: Decimal | None
    today_usd: Decimal
    all_time_usd: Decimal
    uncertain_usd: Decimal
    by_model: tuple[ModelSpend, ...]
    payments: tuple[StoredPayment, ...]
    # Ids of the payments made by this session.
    session_ids: frozenset[int] = frozenset()
    # When it was read (the ledger's clock): an `unknown` payment past its validBefore then is
    # shown "expired, not charged".
    read_at: float = 0.0
    # Refunds seen on chain of the payments counted in `today_usd` and `all_time_usd`.
    today_refunded_usd: Decimal = Decimal(0)
    all_time_refunded_usd: Decimal = Decimal(0)

    def status_of(self, payment: StoredPayment) -> str:
        """How `payment` reads in the tables and the CSV, as of `read_at`."""
        return payment.shown_status_at(self.read_at)


@dataclass(slots=True)
class _SessionPayment:
    payment_id: int | None
    amount_usd: Decimal
    status: str
    signed_at: float
    valid_before: int

    def at_risk_at(self, now: float) -> bool:
        """Paid, or may yet be charged at `now` (see `store.AT_RISK`)."""
        return at_risk(self.status, self.valid_before, now)


class Ledger:
    """Records payments and keeps the budgets. One per process (one per chat, one per `ask`)."""

    def __init__(
        self,
        store: Store | None,
        networks: Sequence[Network],
        *,
        session_budget_usd: Decimal | None = None,
        daily_budget_usd: Decimal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        # Only payments on these networks count: a demo's test money is not the user's money.
        self.networks = tuple(network.v1_name for network in networks)
        self.session_budget_usd = session_budget_usd
        self.daily_budget_usd = daily_budget_usd
        self._clock = clock
        self._session: dict[str, _SessionPayment] = {}

    # -- budgets ----------------------------------------------------------------------------

    def budgets(self) -> tuple[Budget, ...]:
        """The budgets that are set, each with what is spent of it now."""
        budgets: list[Budget] = []
        if self.session_budget_usd is not None:
            budgets.append(
                Budget(self.session_budget_usd, self.session_at_risk(), "session_budget_usd")
            )
        if self.daily_budget_usd is not None:
            if self.store is None:
                raise PaymentRefused(
                    "Your daily budget (setting daily_budget_usd) cannot be checked: the "
                    "history, where every payment is counted, could not be opened. Nothing "
                    "was signed.",
                    code="budget_unchecked",
                    setting="daily_budget_usd",
                )
            budgets.append(Budget(self.daily_budget_usd, self.today_at_risk(), "daily_budget_usd"))
        return tuple(budgets)

    def session_usd(self) -> Decimal:
        """What this session paid that the router took."""
        return _total(p.amount_usd for p in self._session.values() if p.status in SPENT)

    def session_at_risk(self) -> Decimal:
        """What this session paid or may yet be charged: each payment's amount until its refund
        is seen on chain, then the net. The history has the last word on each (the chain may
        have told it more since: a refund, an authorization that expired unused)."""
        now = self._clock()
        stored: dict[int, StoredPayment] = {}
        ids = [p.payment_id for p in self._session.values() if p.payment_id is not None]
        if self.store is not None and ids:
            with suppress(StoreError):
                stored = {p.id: p for p in self.store.payments(ids=ids)}
        total = Decimal(0)
        for entry in self._session.values():
            row = stored.get(entry.payment_id) if entry.payment_id is not None else None
            if row is None:
                total += entry.amount_usd if entry.at_risk_at(now) else 0
            elif row.at_risk_at(now):
                total += row.net_usd
        return total

    def today_at_risk(self) -> Decimal:
        """What every process paid today, or may yet be charged for today's payments (the net of
        those whose refund was seen on chain)."""
        if self.store is None:
            now = self._clock()
            since = local_midnight(now)
            return _total(
                p.amount_usd
                for p in self._session.values()
                if p.at_risk_at(now) and utc_iso(p.signed_at) >= since
            )
        now = self._clock()
        payments = self.store.payments(since=local_midnight(now), networks=self.networks)
        return _total(p.net_usd for p in payments if p.at_risk_at(now))

    def explain(self, refusal: PaymentRefused) -> str:
        """The refusal's sentence, with what is spent already when it does not say so."""
        if refusal.code != "over_cap":
            return refusal.message
        try:
            today = self.today_at_risk()
        except StoreError:
            return refusal.message
        return f"{refusal.message} Spent today so far: {format_usd(today)}."

    # -- recording --------------------------------------------------------------------------

    def signed(
        self,
        payment: SignedPayment,
        request: Mapping[str, Any] | None = None,
        *,
        message_id: int | None = None,
        model: str = "",
    ) -> None:
        """Record a payment just signed, before it is sent. Raises `PaymentRefused` when a
        budget no longer has room for it (another process paid meanwhile): then nothing is
        recorded, and the caller must not send it. With the `request` body it pays for and the
        answer's `message_id`, what a resend takes is kept with it (see `resends`)."""
        amount = payment.amount_usd
        if self.store is None:
            check_budgets(amount, self.budgets())
            payment_id = None
        else:
            resend = resend_record(payment, request) if request is not None else None
            with self.store.transaction():
                # Inside the write lock: no other process can record a payment until this ends.
                check_budgets(amount, self.budgets())
                payment_id = self.store.record_payment(
                    message_id, payment_record(payment), model=model, resend=resend
                )
        self._session[payment.nonce] = _SessionPayment(
            payment_id, amount, "signed", self._clock(), payment.valid_before
        )

    def resending(self, resend: Resend) -> None:
        """A recorded payment is about to be sent again as it was: the same payment, counted
        once (no budget is checked: it adds nothing to what may be charged). Its outcome is
        written to its own row."""
        entry = self._session.get(resend.payment.nonce)
        if entry is None:
            # Made by another process (or an earlier run): this session now answers for it.
            self._session[resend.payment.nonce] = _SessionPayment(
                resend.payment_row,
                resend.payment.amount_usd,
                "unknown",
                self._clock(),
                resend.payment.valid_before,
            )

    def resend_of(self, payment: SignedPayment | None) -> Resend | None:
        """The resend of this session's `payment` while it can help (see `resends`), or None."""
        entry = self._session.get(payment.nonce) if payment is not None else None
        if entry is None or entry.payment_id is None or self.store is None:
            return None
        try:
            stored = self.store.payments(ids=[entry.payment_id])
            return kept_resend(self.store, stored[0], now=self._clock()) if stored else None
        except StoreError:
            return None

    def paid(self, payment: SignedPayment, receipt: Receipt | None) -> None:
        """The router took the paid request: settled with its transaction, or as the receipt
        says. A busy database does not cost the answer: the row then stays `signed`."""
        if receipt is None:
            self._update(payment, "sent", reason="no receipt")
        elif receipt.success:
            # The router's figure, kept as said if it fits a column (a hostile one may not).
            amount = receipt.amount
            if amount is not None and not 0 <= amount < 2**63:
                amount = None
            self._update(payment, "settled", tx=receipt.transaction, receipt_amount=amount)
        else:
            # The router's word: the signed authorization is in its hands, and it can settle
            # until it expires (see payments/reasons.py). It counts until then.
            reason = receipt.error_reason or "the receipt says the payment failed"
            self._update(payment, "unknown", tx=receipt.transaction, reason=reason)

    def failed(self, payment: SignedPayment | None, exc: BaseException, *, accepted: bool) -> None:
        """What became of a payment when its turn broke before the router accepted it."""
        if payment is None or accepted:
            return
        if isinstance(exc, NeverSent):
            # No connection was made: the signed payment never left, and cannot settle.
            self._update(payment, "rejected", reason="never sent: " + exc.message)
        elif isinstance(exc, PaymentRejected) and exc.charged:
            # A resend refused for its used nonce: the first request was charged, and no resend
            # will bring its answer.
            self._update(
                payment,
                "settled",
                tx=exc.transaction,
                reason="nonce already used: charged for the first request",
            )
            entry = self._session.get(payment.nonce)
            if self.store is not None and entry is not None and entry.payment_id is not None:
                with suppress(StoreError):
                    self.store.forget_resend(entry.payment_id)
        elif isinstance(exc, PaymentRejected):
            # Refused after it left: it may still settle, unless its code proves otherwise (none
            # does: see payments/reasons.py). A transaction sent with the refusal
            # (settlement_pending) is kept.
            status = "rejected" if exc.code in PROVES_NOT_CHARGED else "unknown"
            self._update(payment, status, tx=exc.transaction, reason=exc.code or exc.message)
        else:
            reason = exc.message if isinstance(exc, RouterError) else "interrupted"
            self._update(payment, "unknown", reason=reason)

    def _update(
        self,
        payment: SignedPayment,
        status: str,
        *,
        tx: str | None = None,
        reason: str = "",
        receipt_amount: int | None = None,
    ) -> None:
        entry = self._session.get(payment.nonce)
        if entry is None:
            return
        entry.status = status
        if self.store is None or entry.payment_id is None:
            return
        # On a busy database the row keeps its last status, with payer and nonce to reconcile.
        with suppress(StoreError):
            self.store.update_payment(
                entry.payment_id, status, tx=tx, reason=reason, receipt_amount=receipt_amount
            )

    # -- reading ----------------------------------------------------------------------------

    def spending(self, *, session: bool = True) -> Spending:
        """Totals (this session, unless `session` is False; today; ever), per model, and every
        payment, newest first."""
        payments = tuple(self.store.payments(networks=self.networks)) if self.store else ()
        now = self._clock()  # one reading: the totals, the statuses and the CSV agree
        since = local_midnight(now)
        taken = [p for p in payments if p.taken]
        by_model: dict[str, list[Decimal]] = {}
        for p in taken:
            by_model.setdefault(p.model or "(unknown model)", []).append(p.amount_usd)
        models = [
            ModelSpend(name, _total(amounts), len(amounts)) for name, amounts in by_model.items()
        ]
        return Spending(
            session_usd=self.session_usd() if session else None,
            today_usd=_total(p.amount_usd for p in taken if p.created >= since),
            all_time_usd=_total(p.amount_usd for p in taken),
            today_refunded_usd=_total(p.refund_usd for p in taken if p.created >= since),
            all_time_refunded_usd=_total(p.refund_usd for p in taken),
            uncertain_usd=_total(
                p.amount_usd for p in payments if p.at_risk_at(now) and not p.taken
            ),
            by_model=tuple(sorted(models, key=lambda spend: (-spend.usd, spend.model))),
            payments=payments,
            session_ids=frozenset(
                p.payment_id for p in self._session.values() if p.payment_id is not None
            ),
            read_at=now,
        )


def _total(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, Decimal(0))


def utc_iso(moment: float) -> str:
    """A time (seconds since the epoch) as the history writes times: UTC ISO 8601, to the
    millisecond (`2026-11-25T09:14:03.512Z`)."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
