"""Writing one turn to the history as it happens, so that a crash loses next to nothing.

The question is committed before any network I/O, the payment before the paid request goes
out, and the answer's text about once a second while it streams.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from xrouter_tui.api import PaymentRejected, RouterError, Usage
from xrouter_tui.config import data_dir
from xrouter_tui.payments import Receipt, SignedPayment
from xrouter_tui.store import PaymentRecord, Store, StoreError, make_title

__all__ = ["HISTORY_FILE", "TurnJournal", "history_path", "payment_record"]

HISTORY_FILE = "history.sqlite3"
# How often a growing answer is saved: a hard kill loses at most about this much of it.
SAVE_INTERVAL = 1.0


def history_path(env: Mapping[str, str] = os.environ) -> Path:
    """The history database: `history.sqlite3` in the data dir (`XROUTER_DATA_DIR`)."""
    return data_dir(env) / HISTORY_FILE


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


class TurnJournal:
    """One question and its answer, written to `store` as the turn goes."""

    def __init__(
        self,
        store: Store,
        *,
        conversation_id: int | None,
        model: str,
        system_prompt: str,
        save_interval: float = SAVE_INTERVAL,
    ) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.model = model
        self.system_prompt = system_prompt
        self.reply_id: int | None = None
        self.payment_id: int | None = None
        self._parts: list[str] = []
        self._saved_parts = 0
        self._interval = save_interval
        self._last_save = time.monotonic()
        self._finished = False

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self._parts)

    def begin(self, prompt: str) -> int:
        """Commit the question (and the conversation, if new) with an empty answer marked
        `streaming`; returns the conversation's id. Call it before any network I/O."""
        with self.store.transaction():
            if self.conversation_id is None:
                self.conversation_id = self.store.new_conversation(
                    self.model, self.system_prompt, make_title(prompt)
                )
            self.store.add_message(self.conversation_id, "user", prompt, model=self.model)
            self.reply_id = self.store.add_message(
                self.conversation_id, "assistant", "", model=self.model, status="streaming"
            )
        self._last_save = time.monotonic()
        return self.conversation_id

    def signed(self, payment: SignedPayment) -> None:
        """Record the payment (status `signed`) before the paid request is sent."""
        assert self.reply_id is not None, "begin() first"
        self.payment_id = self.store.record_payment(self.reply_id, payment_record(payment))

    def paid(self, receipt: Receipt | None) -> None:
        """The router accepted the paid request: settled with its transaction, or what the
        receipt says."""
        if self.payment_id is None:
            return
        try:
            if receipt is None:
                self.store.update_payment(self.payment_id, "sent", reason="no receipt")
            elif receipt.success:
                self.store.update_payment(self.payment_id, "settled", tx=receipt.transaction)
            else:
                reason = receipt.error_reason or "the receipt says the payment failed"
                self.store.update_payment(self.payment_id, "rejected", reason=reason)
        except StoreError:
            # A paid answer is not thrown away for a busy database: the row stays `signed`
            # (with payer and nonce, enough to reconcile it on chain).
            pass

    def delta(self, text: str) -> None:
        """A piece of the answer; the text is saved when a second has passed since the last
        save (time-based: a fast stream must not cost a write per piece)."""
        self._parts.append(text)
        now = time.monotonic()
        if now - self._last_save >= self._interval:
            self._last_save = now
            self._save()

    def _save(self) -> None:
        if self.reply_id is None or self._saved_parts == len(self._parts):
            return
        try:
            self.store.update_message_text(self.reply_id, self.text)
        except StoreError:
            return  # busy or full for now: the next save (or the final one) writes it all
        self._saved_parts = len(self._parts)

    def failed_payment(self, exc: BaseException, *, accepted: bool) -> None:
        """What became of the payment when the turn broke before the router accepted it."""
        if self.payment_id is None or accepted:
            return
        if isinstance(exc, PaymentRejected):
            self.store.update_payment(self.payment_id, "rejected", reason=exc.code or exc.message)
        else:
            reason = exc.message if isinstance(exc, RouterError) else "interrupted"
            self.store.update_payment(self.payment_id, "unknown", reason=reason)

    def finish(
        self,
        status: str,
        *,
        usage: Usage | None = None,
        error: str = "",
        partial_text: str = "",
    ) -> None:
        """Mark the answer complete, stopped or failed, with all of its text."""
        if self._finished or self.reply_id is None:
            return
        text = self.text or partial_text
        self.store.finish_message(
            self.reply_id,
            status,
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            error=error,
        )
        self._finished = True
