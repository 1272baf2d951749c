"""The command palette (ctrl+p), made to run the entry it shows for the text typed.

Textual's palette searches in a worker and refreshes its list in batches, a moment after each
key. Enter acts on whatever is highlighted when the Enter reaches the palette: on a busy
machine that could be the list of a shorter prefix (typed "keys", the list still showed the
entries for "k") or a list a late batch replaced under the reader's eyes. Here Enter waits for
the search of the text as typed, then runs the entry the list highlights; and a move through
the list ends the search, so the entry the reader moved to stays where it is.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.command import CommandPalette
from textual.widgets import Input
from textual.worker import Worker, WorkerState

__all__ = ["Palette"]

_SEARCHING = (WorkerState.PENDING, WorkerState.RUNNING)


class Palette(CommandPalette):
    """Textual's command palette, whose Enter acts on the list of the text as typed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The search for the text now in the box (each key starts one and cancels the last).
        self._search: Worker[None] | None = None
        # Enter came while that search ran: act when its list is shown.
        self._enter_waiting = False

    def _gather_commands(self, search_value: str) -> Worker[None]:  # type: ignore[override]
        # Textual's own search worker, kept to know when the list shows what was typed.
        self._search = super()._gather_commands(search_value)
        return self._search

    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        # Instead of Textual's handler, which acts on the list as it is when Enter arrives.
        event.stop()
        event.prevent_default()
        if self._search is not None and self._search.state in _SEARCHING:
            self._enter_waiting = True
        else:
            self._select_or_command()

    @on(Worker.StateChanged)
    def _searched(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._search or event.state in _SEARCHING:
            return
        if self._enter_waiting:
            self._enter_waiting = False
            self._select_or_command()

    def _action_command_list(self, action: str) -> None:
        # A move picks from the list as shown: a search still running would rebuild the list
        # and put the highlight back on its first entry.
        if action != "select":
            self._stop_searching()
        super()._action_command_list(action)

    def _action_cursor_down(self) -> None:
        self._stop_searching()
        super()._action_cursor_down()

    def _stop_searching(self) -> None:
        self._cancel_gather_commands()
        # Textual stops its "busy" countdown only when a search ends by itself.
        self._stop_busy_countdown()
        self._show_busy = False
