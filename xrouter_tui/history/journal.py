"""Writing one turn to the history as it happens, so that a crash loses next to nothing.

The question is committed before any network I/O and the answer's text about once a second
while it streams; the turn's payment goes to the `Ledger`, before the paid request goes out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from xrouter_tui.api import Usage
from xrouter_tui.config import data_dir
from xrouter_tui.history.store import Store, StoreError, make_title

__all__ = ["DEMO_HISTORY_FILE", "HISTORY_FILE", "TurnJournal", "history_path"]

HISTORY_FILE = "history.sqlite3"
# The demo's conversations and test-network payments, kept apart from the user's own.
DEMO_HISTORY_FILE = "demo-history.sqlite3"
# How often a growing answer is saved: a hard kill loses at most about this much of it.
SAVE_INTERVAL = 1.0


def history_path(env: Mapping[str, str] = os.environ, *, demo: bool = False) -> Path:
    """The history database: `history.sqlite3` in the data dir (`XROUTER_DATA_DIR`), or with
    `demo` the demo's own, `demo-history.sqlite3` beside it."""
    return data_dir(env) / (DEMO_HISTORY_FILE if demo else HISTORY_FILE)


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
        # The question's row, once `begin` saved it.
        self.question_id: int | None = None
        self._parts: list[str] = []
        self._saved_parts = 0
        self._interval = save_interval
        self._last_save = time.monotonic()
        self._finished = False

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self._parts)

    def begin(self, prompt: str | None, *, earlier: Sequence[Mapping[str, str]] = ()) -> int:
        """Commit the question (and the conversation, if new, with the `earlier` messages it
        arrived with) and an empty answer marked `streaming`; returns the conversation's id.
        Call it before any network I/O. `prompt` None: the last of `earlier` is the question.
        """
        with self.store.transaction():
            if self.conversation_id is None:
                title = (
                    prompt if prompt is not None else (earlier[-1]["content"] if earlier else "")
                )
                self.conversation_id = self.store.new_conversation(
                    self.model, self.system_prompt, make_title(title)
                )
                for message in earlier:
                    self.store.add_message(
                        self.conversation_id, message["role"], message["content"], model=self.model
                    )
            if prompt is not None:
                self.question_id = self.store.add_message(
                    self.conversation_id, "user", prompt, model=self.model
                )
            self.reply_id = self.store.add_message(
                self.conversation_id, "assistant", "", model=self.model, status="streaming"
            )
        self._last_save = time.monotonic()
        return self.conversation_id

    def resume(self, reply_id: int) -> None:
        """Take up a lost answer again (its request is being resent): it is `streaming` anew,
        empty, until `finish`."""
        self.store.reopen_answer(reply_id)
        self.reply_id = reply_id
        self._last_save = time.monotonic()

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
