"""The history on disk: conversations, their messages, and what each answer paid (SQLite).

Every write is one short transaction, so a crash leaves either all of a change or none of it;
WAL and a busy timeout let several processes (the chat, an `ask` in a script) write at once.
A leaf: the standard library only. Amounts are kept in atomic units, never as floats.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Self

__all__ = [
    "AT_RISK",
    "EXPIRED",
    "MESSAGE_STATUSES",
    "PAYMENT_STATUSES",
    "SCHEMA_VERSION",
    "SPENT",
    "ConversationInfo",
    "PaymentRecord",
    "ResendRecord",
    "Store",
    "StoreError",
    "StoredMessage",
    "StoredPayment",
    "at_risk",
    "expired",
    "make_title",
]

MESSAGE_STATUSES = ("complete", "streaming", "stopped", "failed", "interrupted")
PAYMENT_STATUSES = ("signed", "sent", "settled", "rejected", "unknown")
# Payments the router took: what a conversation "spent".
SPENT = ("sent", "settled")
# Payments that are or may yet be charged: signed ones may be on their way, and an authorization
# of unknown outcome (`unknown`: it left the machine, and the router refused it, said its
# transfer failed, or its answer was lost) can settle until it expires. Budgets count all of
# these; an `unknown` one only until its validBefore, after which it is "expired, not charged".
AT_RISK = ("signed", "sent", "settled", "unknown")
# How an `unknown` payment whose authorization has expired is shown: it can no longer settle.
EXPIRED = "expired, not charged"


def expired(status: str, valid_before: int, now: float) -> bool:
    """True for a payment of unknown outcome whose authorization can no longer settle at
    `now`: past its validBefore, nobody can submit it any more."""
    return status == "unknown" and valid_before <= now


def at_risk(status: str, valid_before: int, now: float) -> bool:
    """True for a payment that is or may yet be charged at `now`: budgets count these."""
    return status in AT_RISK and not expired(status, valid_before, now)


_TITLE_LENGTH = 60
# Long enough for a writer that is busy saving a big answer; a real deadlock is not possible
# because every write takes the lock up front (BEGIN IMMEDIATE).
_BUSY_TIMEOUT_MS = 10_000
_NOW = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
_NEXT_SEQ = "(SELECT coalesce(max(seq), 0) + 1 FROM conversations)"

# One entry per schema version, each a list of statements run in one transaction. Never edit
# a released entry: add the next one.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT NOT NULL DEFAULT '',
            system_prompt TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL DEFAULT ({_NOW}),
            updated TEXT NOT NULL DEFAULT ({_NOW}),
            -- Orders conversations by their last change: clock times can tie or go back.
            seq INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX conversations_by_seq ON conversations (seq)",
        f"""CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL CHECK (status IN {MESSAGE_STATUSES!r}),
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            error TEXT NOT NULL DEFAULT '',
            writer_pid INTEGER,
            created TEXT NOT NULL DEFAULT ({_NOW}),
            updated TEXT NOT NULL DEFAULT ({_NOW})
        )""",
        "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
        "CREATE INDEX messages_streaming ON messages (status) WHERE status = 'streaming'",
        f"""CREATE TABLE payments (
            id INTEGER PRIMARY KEY,
            message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            network TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount INTEGER NOT NULL,
            decimals INTEGER NOT NULL,
            pay_to TEXT NOT NULL,
            payer TEXT NOT NULL,
            nonce TEXT NOT NULL,
            valid_before INTEGER NOT NULL,
            tx TEXT,
            status TEXT NOT NULL CHECK (status IN {PAYMENT_STATUSES!r}),
            reason TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL DEFAULT ({_NOW}),
            updated TEXT NOT NULL DEFAULT ({_NOW})
        )""",
        "CREATE INDEX payments_by_message ON payments (message_id)",
        # Full-text search over titles and message text; the tables index the rows in place.
        "CREATE VIRTUAL TABLE messages_fts USING fts5 (content, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
        "CREATE VIRTUAL TABLE titles_fts USING fts5 ("
        "title, content='conversations', content_rowid='id', "
        "tokenize='unicode61 remove_diacritics 2')",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END""",
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title);
        END""",
        """CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
            INSERT INTO titles_fts (titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
        END""",
        """CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
            INSERT INTO titles_fts (titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
            INSERT INTO titles_fts (rowid, title) VALUES (new.id, new.title);
        END""",
    ),
    # 2: the ledger. A payment outlives its conversation (money spent stays spent, and a
    # daily budget must not shrink when a chat is deleted), may have no message at all
    # (`ask --no-history`), and keeps its model for the per-model totals.
    (
        f"""CREATE TABLE payments_v2 (
            id INTEGER PRIMARY KEY,
            message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
            model TEXT NOT NULL DEFAULT '',
            network TEXT NOT NULL,
            asset TEXT NOT NULL,
            amount INTEGER NOT NULL,
            decimals INTEGER NOT NULL,
            pay_to TEXT NOT NULL,
            payer TEXT NOT NULL,
            nonce TEXT NOT NULL,
            valid_before INTEGER NOT NULL,
            tx TEXT,
            status TEXT NOT NULL CHECK (status IN {PAYMENT_STATUSES!r}),
            reason TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL DEFAULT ({_NOW}),
            updated TEXT NOT NULL DEFAULT ({_NOW})
        )""",
        "INSERT INTO payments_v2 SELECT p.id, p.message_id, coalesce(m.model, ''), p.network, "
        "p.asset, p.amount, p.decimals, p.pay_to, p.payer, p.nonce, p.valid_before, p.tx, "
        "p.status, p.reason, p.created, p.updated "
        "FROM payments AS p LEFT JOIN messages AS m ON m.id = p.message_id",
        "DROP TABLE payments",
        "ALTER TABLE payments_v2 RENAME TO payments",
        "CREATE INDEX payments_by_message ON payments (message_id)",
        "CREATE INDEX payments_by_time ON payments (created)",
    ),
    # 3: what it takes to send a paid request again with its own payment (the identical signed
    # header and body: its nonce can be charged once at most). Kept only while a resend could
    # help: the authorization still valid, not settled, its answer not arrived (see `Store`).
    (
        """CREATE TABLE resends (
            payment_id INTEGER PRIMARY KEY REFERENCES payments (id) ON DELETE CASCADE,
            x402_version INTEGER NOT NULL,
            header_name TEXT NOT NULL,
            header_value TEXT NOT NULL,
            valid_after INTEGER NOT NULL,
            signature TEXT NOT NULL,
            payment_ident TEXT,
            body TEXT NOT NULL
        )""",
        # The amount the router's receipt (PAYMENT-RESPONSE) names, when it names one: its
        # word, kept beside the signed amount (which is what an `exact` transfer moves).
        "ALTER TABLE payments ADD COLUMN receipt_amount INTEGER",
    ),
    # 4: a conversation's own settings (NULL: the user's defaults), where it was forked from,
    # and a search that finds words by their stems and prefixes ("ship" finds "shipping") in
    # titles, system prompts and messages: the indexes are made anew and filled from the rows.
    (
        "ALTER TABLE conversations ADD COLUMN temperature REAL",
        "ALTER TABLE conversations ADD COLUMN max_tokens INTEGER",
        # A fork outlives its original: deleting that one leaves the fork, no longer linked.
        "ALTER TABLE conversations ADD COLUMN forked_from INTEGER "
        "REFERENCES conversations (id) ON DELETE SET NULL",
        "CREATE INDEX conversations_by_fork ON conversations (forked_from) "
        "WHERE forked_from IS NOT NULL",
        # A fork's copy of a message: the message it copies (no reference: that one may be
        # deleted). Its payment stays with the original, so the copy has none of its own.
        "ALTER TABLE messages ADD COLUMN copied_from INTEGER",
        *(
            f"DROP TRIGGER {table}_fts_{event}"
            for table in ("messages", "titles")
            for event in ("insert", "delete", "update")
        ),
        "DROP TABLE messages_fts",
        "DROP TABLE titles_fts",
        # Words cut by their stems (porter keeps "shipping" as "ship"), case and accents
        # ignored; a search asks for each word as a prefix too. No prefix index: on 20,000
        # messages it made a one- or two-letter search 4 ms faster (of 20) for 40% more file.
        "CREATE VIRTUAL TABLE messages_fts USING fts5 (content, content='messages', "
        "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
        "CREATE VIRTUAL TABLE conversations_fts USING fts5 (title, system_prompt, "
        "content='conversations', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END""",
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts (messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO conversations_fts (rowid, title, system_prompt)
                VALUES (new.id, new.title, new.system_prompt);
        END""",
        """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
            INSERT INTO conversations_fts (conversations_fts, rowid, title, system_prompt)
                VALUES ('delete', old.id, old.title, old.system_prompt);
        END""",
        """CREATE TRIGGER conversations_fts_update
            AFTER UPDATE OF title, system_prompt ON conversations BEGIN
            INSERT INTO conversations_fts (conversations_fts, rowid, title, system_prompt)
                VALUES ('delete', old.id, old.title, old.system_prompt);
            INSERT INTO conversations_fts (rowid, title, system_prompt)
                VALUES (new.id, new.title, new.system_prompt);
        END""",
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
        "INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild')",
    ),
    # 5: what the chain says of a payment (`reconcile`). The USDC seen coming back from its
    # payee after it (the router's refund of the unused part, as seen on chain; NULL: none
    # seen yet, 0: none seen while one could be told apart) with its transaction; and when
    # its authorization was seen unused past its validBefore: not charged, for certain.
    (
        "ALTER TABLE payments ADD COLUMN refund INTEGER",
        "ALTER TABLE payments ADD COLUMN refund_tx TEXT",
        "ALTER TABLE payments ADD COLUMN expired_seen TEXT",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# (database file, message id) of answers this process is streaming right now: another Store in
# the same process must not take them for a crash's leftovers.
_LIVE: set[tuple[str, int]] = set()


class StoreError(Exception):
    """The history could not be read or written; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """What identifies a signed payment on chain (never the signature, never the key)."""

    network: str
    asset: str
    amount: int
    decimals: int
    pay_to: str
    payer: str
    nonce: str
    valid_before: int


@dataclass(frozen=True, slots=True)
class ResendRecord:
    """What sending a paid request again with the same payment takes: the signed header as it
    was sent, the rest of the signed authorization, and the request body exactly (JSON)."""

    x402_version: int
    header_name: str
    header_value: str
    valid_after: int
    signature: str
    payment_ident: str | None
    body: str


@dataclass(frozen=True, slots=True)
class StoredPayment:
    """A payment as recorded, with what became of it."""

    id: int
    message_id: int
    network: str
    asset: str
    amount: int
    decimals: int
    pay_to: str
    payer: str
    nonce: str
    valid_before: int
    status: str
    tx: str | None
    reason: str
    model: str = ""
    # When it was signed: UTC, ISO 8601 (`2026-11-25T09:14:03.512Z`).
    created: str = ""
    conversation_id: int | None = None
    # What the router's receipt says was settled, in atomic units, when it said.
    receipt_amount: int | None = None
    # USDC seen coming back from the payee after it, on chain (atomic units; None: none seen
    # yet, 0: none seen in the time a refund was looked for), and its transaction.
    refund: int | None = None
    refund_tx: str | None = None
    # When the chain showed its authorization unused past validBefore (UTC ISO 8601).
    expired_seen: str | None = None

    @property
    def amount_usd(self) -> Decimal:
        """The amount in dollars (USDC), exactly."""
        return Decimal(self.amount).scaleb(-self.decimals)

    @property
    def receipt_amount_usd(self) -> Decimal | None:
        """The receipt's amount in dollars, when it named one."""
        if self.receipt_amount is None:
            return None
        return Decimal(self.receipt_amount).scaleb(-self.decimals)

    @property
    def refund_usd(self) -> Decimal:
        """The refund seen on chain, in dollars (0 when none was seen)."""
        return Decimal(self.refund or 0).scaleb(-self.decimals)

    @property
    def net_usd(self) -> Decimal:
        """What it costs once its refund is seen: the amount until then."""
        return self.amount_usd - self.refund_usd

    @property
    def taken(self) -> bool:
        """True when the router took it: it counts towards what was spent."""
        return self.status in SPENT

    @property
    def at_risk(self) -> bool:
        """True unless it is known that it cannot be charged: budgets count these."""
        return self.at_risk_at(time.time())

    def at_risk_at(self, now: float) -> bool:
        """`at_risk` at the time `now` (seconds since the epoch)."""
        return at_risk(self.status, self.valid_before, now)

    @property
    def shown_status(self) -> str:
        """The status as people read it now: an expired `unknown` one is "expired, not
        charged"."""
        return self.shown_status_at(time.time())

    def shown_status_at(self, now: float) -> str:
        """`shown_status` at the time `now` (seconds since the epoch)."""
        return EXPIRED if expired(self.status, self.valid_before, now) else self.status


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message of a conversation, with the payment of its answer if any."""

    id: int
    conversation_id: int
    role: str
    content: str
    model: str
    status: str
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str
    created: str
    updated: str
    payment: StoredPayment | None
    # For a fork's copy: the message it copies, whose payment stays with it (`Store.fork`).
    copied_from: int | None = None


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A conversation without its messages: what a list of conversations shows."""

    id: int
    title: str
    model: str
    system_prompt: str
    created: str
    updated: str
    messages: int
    spent_usd: Decimal
    # The conversation's own settings; None: the user's defaults.
    temperature: float | None = None
    max_tokens: int | None = None
    # The conversation this one was forked from (`Store.fork`), while that one is kept.
    forked_from: int | None = None


def make_title(text: str, length: int = _TITLE_LENGTH) -> str:
    """A conversation's title from its first question: one line, at most `length` characters."""
    words = " ".join(text.split())
    if len(words) <= length:
        return words or "(untitled)"
    cut = words[: length - 1]
    if " " in cut[length // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


class Store:
    """The history database. Open it with `Store.open(path)`; close it (or use `with`)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        # The answers this Store is streaming (see `_LIVE`).
        self._streaming: set[int] = set()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str) -> Self:
        """Open (or create) the history at `path`, bring its schema up to date, and mark the
        answers a crashed process left `streaming` as `interrupted`.

        The folder is made private (0700) and the file 0600; SQLite gives its WAL files the
        file's permissions.
        """
        path = Path(path)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.chmod(0o700)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            path.chmod(0o600)
        except OSError as exc:
            raise StoreError(f"{path}: the history cannot be created ({exc.strerror})") from None
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: the history cannot be opened ({exc})") from None
        store = cls(connection, path)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA journal_mode = WAL")
            # With WAL, NORMAL loses no committed transaction on a process crash.
            connection.execute("PRAGMA synchronous = NORMAL")
            store._migrate()
            store._mark_interrupted()
            store._forget_resends()
        except StoreError:
            connection.close()
            raise
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"{path}: the history cannot be opened ({exc})") from None
        return store

    def close(self) -> None:
        """Close the database; answers still streaming will be marked interrupted next time."""
        for message_id in self._streaming:
            _LIVE.discard((str(self.path), message_id))
        self._streaming.clear()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (`PRAGMA user_version`)."""
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self._write():
            version = self.schema_version
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: the history was written by a newer xrouter-tui "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade to read it"
                )
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _mark_interrupted(self) -> None:
        """Answers left `streaming` by a process that is gone are `interrupted` now; their
        payments, if never resolved, have an `unknown` outcome."""
        with self._write():
            rows = self._db.execute(
                "SELECT id, writer_pid FROM messages WHERE status = 'streaming'"
            ).fetchall()
            gone = [id_ for id_, pid in rows if not self._writer_alive(id_, pid)]
            for id_ in gone:
                self._db.execute(
                    f"UPDATE messages SET status = 'interrupted', updated = {_NOW} WHERE id = ?",
                    (id_,),
                )
                self._db.execute(
                    "UPDATE payments SET status = 'unknown', reason = 'the program stopped "
                    f"before the answer came', updated = {_NOW} "
                    "WHERE message_id = ? AND status = 'signed'",
                    (id_,),
                )

    def _forget_resends(self) -> None:
        """Wipe the signed headers no resend can use any more: past their validBefore, never
        sent, or their answer arrived."""
        with self._write():
            self._db.execute(
                "DELETE FROM resends WHERE payment_id IN (SELECT p.id FROM payments AS p "
                "LEFT JOIN messages AS m ON m.id = p.message_id "
                f"WHERE p.valid_before <= ? OR p.status = '{_NO_RESEND}' "
                "OR m.status IS NULL OR m.status = 'complete')",
                (int(time.time()),),
            )

    def _writer_alive(self, message_id: int, pid: int | None) -> bool:
        if pid is None:
            return False
        if pid == os.getpid():
            return (str(self.path), message_id) in _LIVE
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OSError):
            return True  # someone else's process: leave it be
        return True

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the lock is taken up front so that writers queue, never
        deadlock. Nested uses join the outer transaction."""
        if self._db.in_transaction:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """Several writes as one: all of them are kept, or none."""
        try:
            with self._write():
                yield self
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: the history could not be written ({exc})") from None

    # -- writing ----------------------------------------------------------------------------

    def new_conversation(self, model: str, system_prompt: str = "", title: str = "") -> int:
        """Start a conversation and return its id."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO conversations (title, model, system_prompt, seq) "
                f"VALUES (?, ?, ?, {_NEXT_SEQ})",
                (title or "(untitled)", model, system_prompt),
            )
        return _rowid(cursor)

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        model: str = "",
        status: str = "complete",
    ) -> int:
        """Append a message and return its id. A `streaming` answer belongs to this process
        until `finish_message`; if the process dies first, the next `open` marks it
        `interrupted`."""
        _check_status(status, MESSAGE_STATUSES)
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, model, status, writer_pid)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, model, status, os.getpid()),
            )
            self._touch(conversation_id, model)
        message_id = _rowid(cursor)
        if status == "streaming":
            _LIVE.add((str(self.path), message_id))
            self._streaming.add(message_id)
        return message_id

    def reopen_answer(self, message_id: int) -> None:
        """Make a lost answer `streaming` again, empty, for this process: its request is being
        sent again (with its own payment), and its text comes anew."""
        with self.transaction():
            self._db.execute(
                "UPDATE messages SET status = 'streaming', content = '', error = '', "
                f"writer_pid = ?, updated = {_NOW} WHERE id = ?",
                (os.getpid(), message_id),
            )
        _LIVE.add((str(self.path), message_id))
        self._streaming.add(message_id)

    def update_message_text(self, message_id: int, text: str) -> None:
        """Save the text of an answer as it grows (call it about once a second, not per
        piece: each call rewrites the whole text and its search index)."""
        with self.transaction():
            self._db.execute(
                f"UPDATE messages SET content = ?, updated = {_NOW} WHERE id = ?",
                (text, message_id),
            )

    def finish_message(
        self,
        message_id: int,
        status: str,
        *,
        text: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: str = "",
    ) -> None:
        """Say how an answer ended (complete, stopped, failed), with its final text, its token
        counts and the error, if any."""
        _check_status(status, MESSAGE_STATUSES)
        with self.transaction():
            self._db.execute(
                "UPDATE messages SET status = ?, content = coalesce(?, content), "
                "prompt_tokens = coalesce(?, prompt_tokens), "
                "completion_tokens = coalesce(?, completion_tokens), error = ?, "
                f"updated = {_NOW} WHERE id = ?",
                (status, text, prompt_tokens, completion_tokens, error, message_id),
            )
            if status == "complete":
                # The answer came: its payment's header is of no more use.
                self._db.execute(
                    "DELETE FROM resends WHERE payment_id IN "
                    "(SELECT id FROM payments WHERE message_id = ?)",
                    (message_id,),
                )
            self._db.execute(
                f"UPDATE conversations SET updated = {_NOW}, seq = {_NEXT_SEQ} WHERE id = "
                "(SELECT conversation_id FROM messages WHERE id = ?)",
                (message_id,),
            )
        _LIVE.discard((str(self.path), message_id))
        self._streaming.discard(message_id)

    def record_payment(
        self,
        message_id: int | None,
        payment: PaymentRecord,
        *,
        model: str = "",
        resend: ResendRecord | None = None,
    ) -> int:
        """Record a payment just signed (status `signed`), for an answer or for none; call it
        before the paid request is sent, so that a crash cannot hide a possible charge. With
        `resend` (an answer's payment only), what it takes to send the request again with it
        is kept until a resend can no longer help."""
        with self.transaction():
            cursor = self._db.execute(
                "INSERT INTO payments (message_id, model, network, asset, amount, decimals, "
                "pay_to, payer, nonce, valid_before, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'signed')",
                (
                    message_id,
                    model,
                    payment.network,
                    payment.asset,
                    payment.amount,
                    payment.decimals,
                    payment.pay_to,
                    payment.payer,
                    payment.nonce,
                    payment.valid_before,
                ),
            )
            if resend is not None and message_id is not None:
                self._db.execute(
                    "INSERT INTO resends (payment_id, x402_version, header_name, header_value, "
                    "valid_after, signature, payment_ident, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cursor.lastrowid,
                        resend.x402_version,
                        resend.header_name,
                        resend.header_value,
                        resend.valid_after,
                        resend.signature,
                        resend.payment_ident,
                        resend.body,
                    ),
                )
        return _rowid(cursor)

    def resend(self, payment_id: int, *, now: float | None = None) -> ResendRecord | None:
        """What it takes to send the payment's request again, while that can still help: None
        once its validBefore has passed (at `now`), or when it was never kept or is wiped."""
        rows = self._read(
            "SELECT r.x402_version, r.header_name, r.header_value, r.valid_after, r.signature, "
            "r.payment_ident, r.body FROM resends AS r JOIN payments AS p ON p.id = r.payment_id "
            "WHERE r.payment_id = ? AND p.valid_before > ?",
            (payment_id, time.time() if now is None else now),
        )
        return ResendRecord(*rows[0]) if rows else None

    def forget_resend(self, payment_id: int) -> None:
        """Wipe the payment's kept header and body: no resend will use them."""
        with self.transaction():
            self._db.execute("DELETE FROM resends WHERE payment_id = ?", (payment_id,))

    def update_payment(
        self,
        payment_id: int,
        status: str,
        *,
        tx: str | None = None,
        reason: str = "",
        receipt_amount: int | None = None,
    ) -> None:
        """What became of a payment: sent, settled (with its transaction and the receipt's
        amount), rejected or unknown (with the reason)."""
        _check_status(status, PAYMENT_STATUSES)
        with self.transaction():
            self._db.execute(
                "UPDATE payments SET status = ?, tx = coalesce(?, tx), reason = ?, "
                f"receipt_amount = coalesce(?, receipt_amount), updated = {_NOW} WHERE id = ?",
                (status, tx, reason, receipt_amount, payment_id),
            )
            if status == _NO_RESEND:
                self._db.execute("DELETE FROM resends WHERE payment_id = ?", (payment_id,))

    # -- what the chain says (`reconcile`) ------------------------------------------------------

    def settled_on_chain(self, payment_id: int, *, was: str, tx: str | None) -> bool:
        """The chain shows the payment's authorization used: it was charged (`settled`), with
        the transaction that used it when found. Only while its status is still `was` (another
        process may have written it meanwhile); False when it was not."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE payments SET status = 'settled', tx = coalesce(?, tx), "
                "reason = 'charged: its authorization was used on chain', "
                f"updated = {_NOW} WHERE id = ? AND status = ?",
                (tx, payment_id, was),
            )
        return cursor.rowcount > 0

    def expired_on_chain(self, payment_id: int, *, was: str) -> bool:
        """The chain shows the payment's authorization unused past its validBefore: it was not
        charged and never can be. It stays `unknown` (shown "expired, not charged"), and no
        longer counts. Only while its status is still `was`."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE payments SET status = 'unknown', "
                "reason = 'not charged: its authorization expired unused (seen on chain)', "
                f"expired_seen = {_NOW}, updated = {_NOW} WHERE id = ? AND status = ?",
                (payment_id, was),
            )
            self._db.execute("DELETE FROM resends WHERE payment_id = ?", (payment_id,))
        return cursor.rowcount > 0

    def record_refund(self, payment_id: int, amount: int, tx: str | None) -> bool:
        """USDC seen coming back from the payment's payee after it: its refund, as seen on
        chain (`amount` 0: none seen in the time one was looked for). Kept once."""
        with self.transaction():
            cursor = self._db.execute(
                f"UPDATE payments SET refund = ?, refund_tx = ?, updated = {_NOW} "
                "WHERE id = ? AND refund IS NULL",
                (amount, tx, payment_id),
            )
        return cursor.rowcount > 0

    def rename(self, conversation_id: int, title: str) -> bool:
        """Give a conversation a new title; False when there is no such conversation."""
        with self.transaction():
            cursor = self._db.execute(
                "UPDATE conversations SET title = ? WHERE id = ?",
                (make_title(title, 200), conversation_id),
            )
        return cursor.rowcount > 0

    def set_settings(
        self,
        conversation_id: int,
        *,
        system_prompt: str,
        temperature: float | None,
        max_tokens: int | None,
    ) -> None:
        """Keep a conversation's own system prompt, temperature and max_tokens for its later
        turns (None: the user's defaults)."""
        with self.transaction():
            self._db.execute(
                "UPDATE conversations SET system_prompt = ?, temperature = ?, max_tokens = ? "
                "WHERE id = ?",
                (system_prompt, temperature, max_tokens, conversation_id),
            )

    def fork(
        self, conversation_id: int, through_message_id: int, *, title: str | None = None
    ) -> int:
        """A new conversation with copies of this one's messages up to and including
        `through_message_id`, its system prompt and settings, `forked_from` it, titled
        "<title> (fork)" unless `title` is given; returns its id. The original is left as it
        was, and so are its payments: the money stays with the answers it paid for, so the
        copies carry none (each names the message it copies: `copied_from`). An answer still
        streaming is copied as `interrupted`."""
        with self.transaction():
            rows = self._db.execute(
                "SELECT c.title FROM conversations AS c JOIN messages AS m "
                "ON m.conversation_id = c.id WHERE c.id = ? AND m.id = ?",
                (conversation_id, through_message_id),
            ).fetchall()
            if not rows:
                raise StoreError(
                    f"{self.path}: conversation {conversation_id} has no message "
                    f"{through_message_id} to fork at (deleted meanwhile?)"
                )
            new_title = make_title(title if title is not None else f"{rows[0][0]} (fork)", 200)
            cursor = self._db.execute(
                "INSERT INTO conversations (title, model, system_prompt, temperature, "
                "max_tokens, forked_from, seq) SELECT ?, model, system_prompt, temperature, "
                f"max_tokens, id, {_NEXT_SEQ} FROM conversations WHERE id = ?",
                (new_title, conversation_id),
            )
            fork_id = _rowid(cursor)
            self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, model, status, "
                "prompt_tokens, completion_tokens, error, created, updated, copied_from) "
                "SELECT ?, role, content, model, "
                "CASE status WHEN 'streaming' THEN 'interrupted' ELSE status END, "
                "prompt_tokens, completion_tokens, error, created, updated, "
                "coalesce(copied_from, id) FROM messages "
                "WHERE conversation_id = ? AND id <= ? ORDER BY id",
                (fork_id, conversation_id, through_message_id),
            )
        return fork_id

    def set_system_prompt(self, conversation_id: int, system_prompt: str) -> None:
        """Replace a conversation's system prompt for its later turns."""
        with self.transaction():
            self._db.execute(
                "UPDATE conversations SET system_prompt = ? WHERE id = ?",
                (system_prompt, conversation_id),
            )

    def delete(self, conversation_id: int) -> bool:
        """Delete a conversation with its messages; its payments stay in the ledger. False when
        there is none."""
        with self.transaction():
            # Its questions are gone, so are the signed headers kept to ask them again.
            self._db.execute(
                "DELETE FROM resends WHERE payment_id IN (SELECT p.id FROM payments AS p "
                "JOIN messages AS m ON m.id = p.message_id WHERE m.conversation_id = ?)",
                (conversation_id,),
            )
            cursor = self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return cursor.rowcount > 0

    def _touch(self, conversation_id: int, model: str) -> None:
        self._db.execute(
            f"UPDATE conversations SET updated = {_NOW}, seq = {_NEXT_SEQ}, "
            "model = CASE WHEN ? != '' THEN ? ELSE model END WHERE id = ?",
            (model, model, conversation_id),
        )

    # -- reading ----------------------------------------------------------------------------

    def conversations(
        self, search: str | None = None, *, limit: int | None = None
    ) -> list[ConversationInfo]:
        """Conversations, the most recently updated first; `search` keeps those in which every
        word of it occurs somewhere: in the title, the system prompt or any message, each word
        also as the start of a longer one and by its stem ("ship" finds "ships", "shipping"),
        case and accents ignored. Nothing the user types is taken for FTS5 syntax."""
        where, params = "", []
        if search is not None:
            terms = _fts_terms(search)
            if not terms:
                return []
            # One set of conversations per word, intersected: the words may be in different
            # messages (or one in the title, another in an answer).
            where = "WHERE " + " AND ".join([_HAS_TERM] * len(terms))
            params = [value for term in terms for value in (term, term)]
        sql = f"{_CONVERSATION_SELECT} {where} ORDER BY c.seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._read(sql, params)
        return [_conversation(row) for row in rows]

    def conversation(self, conversation_id: int) -> ConversationInfo | None:
        """One conversation's summary, or None."""
        rows = self._read(f"{_CONVERSATION_SELECT} WHERE c.id = ?", (conversation_id,))
        return _conversation(rows[0]) if rows else None

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        """A conversation's messages, oldest first, each with its payment."""
        rows = self._read(
            "SELECT m.id, m.conversation_id, m.role, m.content, m.model, m.status, "
            "m.prompt_tokens, m.completion_tokens, m.error, m.created, m.updated, "
            "m.copied_from, "
            "p.id, p.message_id, p.network, p.asset, p.amount, p.decimals, p.pay_to, p.payer, "
            "p.nonce, p.valid_before, p.status, p.tx, p.reason, "
            "coalesce(nullif(p.model, ''), m.model, ''), p.created, m.conversation_id, "
            "p.receipt_amount, p.refund, p.refund_tx, p.expired_seen "
            "FROM messages AS m LEFT JOIN payments AS p ON p.id = "
            "(SELECT max(id) FROM payments WHERE message_id = m.id) "
            "WHERE m.conversation_id = ? ORDER BY m.id",
            (conversation_id,),
        )
        return [
            StoredMessage(
                *row[:11],
                payment=StoredPayment(*row[12:]) if row[12] else None,
                copied_from=row[11],
            )
            for row in rows
        ]

    def payments(
        self,
        *,
        since: str | None = None,
        networks: Sequence[str] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[StoredPayment]:
        """Payments, newest first: those signed at or after `since` (UTC ISO 8601), on the
        given `networks`, with the given `ids`; each filter only when given."""
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("p.created >= ?")
            params.append(since)
        for column, values in (("p.network", networks), ("p.id", ids)):
            if values is not None:
                where.append(f"{column} IN ({', '.join('?' * len(values))})" if values else "0")
                params.extend(values)
        rows = self._read(
            "SELECT p.id, p.message_id, p.network, p.asset, p.amount, p.decimals, p.pay_to, "
            "p.payer, p.nonce, p.valid_before, p.status, p.tx, p.reason, "
            "coalesce(nullif(p.model, ''), m.model, ''), p.created, m.conversation_id, "
            "p.receipt_amount, p.refund, p.refund_tx, p.expired_seen "
            "FROM payments AS p LEFT JOIN messages AS m ON m.id = p.message_id "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "ORDER BY p.id DESC",
            params,
        )
        return [StoredPayment(*row) for row in rows]

    def recent_prompts(self, limit: int = 200) -> list[str]:
        """The questions asked lately, in every conversation, newest first, each once."""
        rows = self._read(
            "SELECT content FROM messages WHERE role = 'user' AND content != '' "
            "ORDER BY id DESC LIMIT ?",
            (limit * 2,),
        )
        prompts = list(dict.fromkeys(row[0] for row in rows))
        return prompts[:limit]

    def latest_conversation_id(self) -> int | None:
        """The most recently updated conversation, or None when there is none."""
        rows = self._read("SELECT id FROM conversations ORDER BY seq DESC LIMIT 1")
        return rows[0][0] if rows else None

    def history_messages(self, conversation_id: int) -> list[dict[str, str]]:
        """What to send the router to go on with a conversation: its system prompt, then every
        question whose answer is complete or stopped with text (as `Conversation.history()`).
        A question left without such an answer is not sent again."""
        info = self.conversation(conversation_id)
        if info is None:
            return []
        sent = [{"role": "system", "content": info.system_prompt}] if info.system_prompt else []
        question: StoredMessage | None = None
        for message in self.messages(conversation_id):
            if message.role == "user":
                question = message if message.status != "failed" else None
                continue
            if message.role != "assistant":
                continue
            if question is not None and message.content and message.status in _RESENT:
                sent.append({"role": "user", "content": question.content})
                sent.append({"role": "assistant", "content": message.content})
            question = None
        return sent

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: the history could not be read ({exc})") from None


_RESENT = ("complete", "stopped")
# The payments whose signed header is wiped: those that never left (they are not counted, so they
# must not be sent later either). A settled one is kept while its answer is lost: a router that
# knows the payment (x402's payment-identifier) may send the answer again for it, and one that
# does not refuses it as used, which charges nothing more.
_NO_RESEND = "rejected"

_CONVERSATION_SELECT = (
    "SELECT c.id, c.title, c.model, c.system_prompt, c.created, c.updated, "
    "(SELECT count(*) FROM messages WHERE conversation_id = c.id), "
    "(SELECT group_concat(p.amount || ':' || p.decimals) FROM payments AS p "
    f"JOIN messages AS m ON m.id = p.message_id WHERE m.conversation_id = c.id "
    f"AND p.status IN {SPENT!r}), "
    "c.temperature, c.max_tokens, c.forked_from "
    "FROM conversations AS c"
)
# The conversations in which one search term occurs: in the title or system prompt, or in a
# message (two parameters, both the term).
_HAS_TERM = (
    "c.id IN (SELECT rowid FROM conversations_fts WHERE conversations_fts MATCH ? "
    "UNION SELECT m.conversation_id FROM messages_fts AS f "
    "JOIN messages AS m ON m.id = f.rowid WHERE messages_fts MATCH ?)"
)


def _conversation(row: tuple) -> ConversationInfo:
    spent = Decimal(0)
    for item in (row[7] or "").split(","):
        if item:
            amount, decimals = item.split(":")
            spent += Decimal(int(amount)).scaleb(-int(decimals))
    return ConversationInfo(
        *row[:7], spent_usd=spent, temperature=row[8], max_tokens=row[9], forked_from=row[10]
    )


def _fts_terms(text: str) -> list[str]:
    """The user's words as FTS5 prefix queries, one per word: `"word"*`. Each is quoted, so
    that no character of theirs is FTS5 syntax (a word the tokenizer cuts, such as "x-402",
    is a phrase of its pieces); a word without a letter or digit finds nothing, and is left
    out; a word said twice counts once."""
    terms: list[str] = []
    for word in text.split():
        if not any(char.isalnum() for char in word):
            continue
        term = '"' + word.replace('"', '""') + '"*'
        if term.casefold() not in (known.casefold() for known in terms):
            terms.append(term)
    return terms


def _check_status(status: str, allowed: tuple[str, ...]) -> None:
    if status not in allowed:
        raise ValueError(f"unknown status {status!r} (known: {', '.join(allowed)})")


def _rowid(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None
    return cursor.lastrowid
