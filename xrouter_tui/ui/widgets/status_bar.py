"""The status bar: model, the price of the prompt as typed, state, live tokens and rate, last
charge, session spend, wallet."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from xrouter_tui.payments import format_usd, short_address
from xrouter_tui.safe_text import one_line

__all__ = ["ChatState", "StatusBar"]


class ChatState(StrEnum):
    """What the chat is doing, in the words the status bar shows."""

    IDLE = "idle"
    PAYING = "paying"
    STREAMING = "streaming"
    STOPPED = "stopped"
    ERROR = "error"


class StatusBar(Widget):
    """One line under the prompt, drawn as one piece of text: cheap to update many times a
    second, and it drops words before numbers when the terminal is narrow."""

    COMPONENT_CLASSES = {
        "status-bar--demo",
        "status-bar--model",
        "status-bar--estimate",
        "status-bar--idle",
        "status-bar--busy",
        "status-bar--stopped",
        "status-bar--error",
        "status-bar--muted",
    }

    model: reactive[str] = reactive("")
    state: reactive[ChatState] = reactive(ChatState.IDLE)
    tokens: reactive[str] = reactive("")
    last_charge: reactive[Decimal | None] = reactive(None)
    session_spend: reactive[Decimal] = reactive(Decimal(0))
    # What the prompt as typed would be charged up front at most ("" when there is no figure).
    estimate: reactive[Decimal | None] = reactive(None)
    # How much of that the conversation's history is: "12K tok · $0.004100" ("" for none).
    context: reactive[str] = reactive("")
    # The conversation's own settings where they differ from the user's: "temp 0.2 · max 2048".
    conversation_settings: reactive[str] = reactive("")
    wallet: reactive[str] = reactive("")
    # True while the wallet key is being read from the keyring, which may ask to be unlocked.
    opening_keyring: reactive[bool] = reactive(False)

    def __init__(self, *, demo: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.demo = demo

    def render(self) -> Text:
        width = self.content_size.width
        for wordy in (True, False):
            text = self._line(wordy=wordy)
            if text.cell_len <= width:
                return text
        text.truncate(width, overflow="ellipsis")
        return text

    def _line(self, *, wordy: bool) -> Text:
        style = self.get_component_rich_style
        state_class = {
            ChatState.IDLE: "status-bar--idle",
            ChatState.PAYING: "status-bar--busy",
            ChatState.STREAMING: "status-bar--busy",
            ChatState.STOPPED: "status-bar--stopped",
            ChatState.ERROR: "status-bar--error",
        }[self.state]
        last = "—" if self.last_charge is None else format_usd(self.last_charge)
        spend = format_usd(self.session_spend)
        money = f"last {last}  session {spend}" if wordy else f"{last} / {spend}"
        parts: list[tuple[str, str]] = []
        if self.demo:
            parts.append((" DEMO ", "status-bar--demo"))
        # The id as the router spelled it may hold escapes; it is shown without them.
        parts.append((one_line(self.model) or "no model", "status-bar--model"))
        if self.conversation_settings:
            parts.append((self.conversation_settings, "status-bar--muted"))
        if self.estimate is not None:
            estimate = format_usd(self.estimate)
            parts.append((f"up to {estimate}" if wordy else f"≤{estimate}", "status-bar--estimate"))
            if self.context and wordy:
                parts.append((f"context {self.context}", "status-bar--muted"))
        parts.append((self.state.value, state_class))
        if self.tokens:
            parts.append((self.tokens, ""))
        parts.append((money, "status-bar--muted"))
        if self.wallet:
            wallet = short_address(self.wallet)
        else:
            wallet = "opening keyring…" if self.opening_keyring else "no wallet"
        parts.append((wallet, "status-bar--muted"))
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, (piece, component) in enumerate(parts):
            if index:
                line.append("  ")
            line.append(piece, style(component) if component else "")
        return line
