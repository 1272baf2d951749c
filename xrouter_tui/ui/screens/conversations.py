"""The saved conversations (ctrl+o): open one to go on with it, start a new chat, rename,
delete, and search every message (the store's full-text index). It opens on the conversation
open in the chat; an empty list says whether the search found nothing or nothing is saved yet.

Reads are one short local query each and run on the UI thread, like every store write: the
list is capped, and a search is an FTS5 lookup. Titles, models and snippets are shown through
`safe_text.one_line`, as plain text: the history keeps what the router (or `ask`) wrote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from xrouter_tui.history.store import ConversationInfo, Store, StoreError
from xrouter_tui.payments import format_usd
from xrouter_tui.safe_text import one_line
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.widgets.picker_list import PickerList

if TYPE_CHECKING:
    from xrouter_tui.ui.app import ChatApp

__all__ = ["NEW_CHAT", "ConversationsScreen", "TitleDialog", "conversation_row"]

# What the screen returns for "start a new chat" (a conversation's id opens it; None: closed).
NEW_CHAT: Literal["new"] = "new"
# Enough to find a recent conversation by eye; older ones are found with `/`.
LIST_LIMIT = 500
# Where a search matched is shown for this many conversations (those on screen).
SNIPPETS = 30
_TITLE_WIDTH = 44
_NOTHING_SAVED = "No saved conversations yet: each chat is kept here from its first question."
_SNIPPET_WIDTH = 90


class ConversationsScreen(ModalScreen[int | Literal["new"] | None]):
    """Returns the id of the conversation to open, `NEW_CHAT`, or None when closed. `current`:
    the conversation open in the chat (marked, and where the cursor starts)."""

    BINDINGS = [
        Binding("escape", "close", "Close", show=True),
        Binding("down", "move(1)", "Next", show=False, priority=True),
        Binding("up", "move(-1)", "Previous", show=False, priority=True),
        Binding("pagedown", "move(10)", show=False, priority=True),
        Binding("pageup", "move(-10)", show=False, priority=True),
        Binding("n", "new_chat", "New chat"),
        Binding("r", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
        Binding("slash", "search", "Search"),
    ]

    app: ChatApp

    def __init__(self, store: Store, *, current: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.current = current
        self._shown: list[ConversationInfo] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="conversations"):
            yield Label("Conversations", id="conversations-title", markup=False)
            yield Input(
                placeholder="Search every message: words, all of them", id="conversations-search"
            )
            yield PickerList(id="conversations-list")
            yield Label("", id="conversations-empty", markup=False)
            yield Label(
                "↑↓ move · Enter open · n new · r rename · d delete · / search · Esc close",
                id="conversations-help",
            )

    def on_mount(self) -> None:
        self.query_one("#conversations-search", Input).display = False
        self._show(keep=self.current)
        self.query_one(OptionList).focus()

    @property
    def search(self) -> str:
        """The words searched for now ("" when not searching)."""
        field = self.query_one("#conversations-search", Input)
        return field.value.strip() if field.display else ""

    def _show(self, keep: int | None = None) -> None:
        """List the conversations (or the search's matches), most recent first, the cursor on
        `keep` (else on the open conversation) when it is listed, or on the first."""
        query = self.search
        # What an empty list means: the search found nothing, or there is nothing yet.
        empty = _NOTHING_SAVED
        try:
            found = self.store.conversations(search=query or None, limit=LIST_LIMIT)
            # Each snippet reads a conversation's messages: only for the first screenful.
            snippets = {info.id: self._snippet(info, query) for info in found[:SNIPPETS]}
            if not found and query and self.store.latest_conversation_id() is not None:
                empty = f"No conversation matches “{one_line(query)}”. Esc shows them all."
        except StoreError as exc:
            self.notify(str(exc), title="History", severity="error")
            found, snippets = [], {}
            empty = "The saved conversations could not be read."
        self._shown = found
        title = self.query_one("#conversations-title", Label)
        if query:
            title.update(f"Conversations · {len(found)} matching “{one_line(query)}”")
        else:
            title.update(f"Conversations · {len(found)} saved")
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(
            Option(
                conversation_row(
                    info, current=info.id == self.current, snippet=snippets.get(info.id, "")
                ),
                id=str(info.id),
            )
            for info in found
        )
        placeholder = self.query_one("#conversations-empty", Label)
        placeholder.update(empty)
        options.display, placeholder.display = bool(found), not found
        if found:
            ids = [info.id for info in found]
            target = keep if keep is not None else self.current
            options.highlighted = ids.index(target) if target in ids else 0

    def _snippet(self, info: ConversationInfo, query: str) -> str:
        """The first line of the conversation (a message, else the system prompt) where one of
        the searched words occurs, or its stem: "shipping" shows where "ships" is."""
        if not query:
            return ""
        # The search finds words by their stems and prefixes; a word's first four letters
        # find most of what it matched.
        words = {word.lower() for word in query.split()}
        words |= {word[:4] for word in words if len(word) > 4}
        texts = [message.content for message in self.store.messages(info.id)]
        for text, label in [*((text, "") for text in texts), (info.system_prompt, "System: ")]:
            line = one_line(text)
            lower = line.lower()
            hits = [lower.find(word) for word in words if word in lower]
            if hits:
                start = max(0, min(hits) - 30)
                piece = line[start : start + _SNIPPET_WIDTH]
                return (
                    label
                    + ("…" if start else "")
                    + piece
                    + ("…" if start + _SNIPPET_WIDTH < len(line) else "")
                )
        return ""

    def _highlighted(self) -> ConversationInfo | None:
        index = self.query_one(OptionList).highlighted
        return self._shown[index] if index is not None and self._shown else None

    # -- keys ----------------------------------------------------------------------------

    def action_move(self, step: int) -> None:
        """Arrows move in the list even while the search box has the focus."""
        self.query_one(PickerList).move(step)

    def action_close(self) -> None:
        """Esc: leave the search first (back to every conversation), then the screen."""
        field = self.query_one("#conversations-search", Input)
        if field.display:
            field.value = ""
            field.display = False
            self._show()
            self.query_one(OptionList).focus()
            return
        self.dismiss(None)

    def action_new_chat(self) -> None:
        """n: close and start an empty chat."""
        self.dismiss(NEW_CHAT)

    def action_search(self) -> None:
        """/: search every title and message (the store's full-text index) as you type."""
        field = self.query_one("#conversations-search", Input)
        field.display = True
        field.focus()

    @on(Input.Changed, "#conversations-search")
    def _search_changed(self) -> None:
        self._show()

    @on(Input.Submitted, "#conversations-search")
    def _open_highlighted(self) -> None:
        info = self._highlighted()
        if info is not None:
            self.dismiss(info.id)

    @on(OptionList.OptionSelected, "#conversations-list")
    def _open_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._shown[event.option_index].id)

    def action_rename(self) -> None:
        """r: give the highlighted conversation a new title."""
        info = self._highlighted()
        if info is None:
            return

        def renamed(title: str | None) -> None:
            # The box showed the title without control characters: unchanged is unchanged.
            if not title or title in (info.title, one_line(info.title)):
                return
            try:
                self.store.rename(info.id, title)
            except StoreError as exc:
                self.notify(str(exc), title="History", severity="error")
                return
            self._show(keep=info.id)

        self.app.push_screen(TitleDialog(info.title), renamed)

    def action_delete(self) -> None:
        """d: delete the highlighted conversation, after a yes (it cannot be undone)."""
        info = self._highlighted()
        if info is None:
            return

        def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.store.delete(info.id)
            except StoreError as exc:
                self.notify(str(exc), title="History", severity="error")
                return
            self.app.conversation_deleted(info.id)
            if info.id == self.current:
                self.current = None
            self._show()
            self.notify(f"Deleted “{one_line(info.title)}”.", title="Conversations", timeout=3)

        # The payments stay: money spent stays spent, in the ledger and in the budgets.
        spent = (
            f" What it cost ({format_usd(info.spent_usd)}) stays in the ledger (F3), where the "
            "budgets count it."
            if info.spent_usd
            else ""
        )
        self.app.push_screen(
            ConfirmDialog(
                "Delete this conversation?",
                f"“{one_line(info.title)}”: its {info.messages} messages are deleted from this "
                f"computer. This cannot be undone.{spent}",
                yes="Delete it",
            ),
            answered,
        )


class TitleDialog(ModalScreen[str | None]):
    """A new title for a conversation: Enter keeps it, Esc leaves the old one."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.old_title = title

    def compose(self) -> ComposeResult:
        with Vertical(id="title-dialog"):
            yield Label("Rename the conversation", id="title-dialog-title")
            yield Input(one_line(self.old_title), id="title-dialog-input")
            yield Label("Enter rename · Esc cancel", id="title-dialog-help")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Esc: keep the old title."""
        self.dismiss(None)


def conversation_row(info: ConversationInfo, *, current: bool = False, snippet: str = "") -> Text:
    """One row: a mark (✓ open in the chat), title, message count, spend, last change (to the
    minute, UTC, as `xrouter-tui history` shows it), model; under a search, where it matched."""
    title = one_line(info.title, _TITLE_WIDTH)
    row = Text()
    row.append("✓ " if current else "  ", style="bold")
    row.append(title.ljust(_TITLE_WIDTH), style="bold")
    row.append(f"  {info.messages:>3} msgs", style="dim")
    # Six decimals: up to $99.999999 before the column shifts.
    row.append(f"  {format_usd(info.spent_usd):>10}")
    row.append(f"  {info.updated[:16].replace('T', ' ')}", style="dim")
    # Last: the longest and least needed column is the one a narrow terminal cuts.
    row.append(f"  {one_line(info.model)}", style="italic")
    if snippet:
        row.append(f"\n    {one_line(snippet)}", style="dim")
    return row
