"""The status bar: model, state, live tokens and rate, the price of the prompt as typed, last
charge, session spend, wallet; one form at every width, figures kept when room runs out."""

from __future__ import annotations

from collections.abc import Iterable
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
    second.

    The chat's own facts on the left (DEMO, model, settings, state, tokens), the money on the
    right (the price of the prompt as typed, last charge, session total, wallet). Every piece
    keeps its one form ("up to $X", "last $Y", "session $Z") at every width. Where the line is
    too long, pieces give way in this order: the context share of the price, the wallet, the
    model id's provider part, the word "idle", the token counts, the conversation's own
    settings; then the model name is cut short, and the DEMO tag goes. Prices and totals never
    give way. Room for the price of the prompt is kept while there is none, so its appearance
    as the user types moves nothing else.
    """

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
    # The wallet's USDC as last read on chain ("$4.984616"; "balance ?" when it could not be).
    balance: reactive[str] = reactive("")
    # True while the wallet key is being read from the keyring, which may ask to be unlocked.
    opening_keyring: reactive[bool] = reactive(False)

    def __init__(self, *, demo: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.demo = demo

    def render(self) -> Text:
        width = self.content_size.width
        if width <= 0:
            return Text()
        for gone in _GIVING_WAY:
            if self._needs(gone) <= width:
                return self._draw(width, gone)
        # All that may give way is gone: the model name is cut to the room left, then the
        # DEMO tag goes.
        gone = _GIVING_WAY[-1]
        room = width - self._needs(gone, model="") - _GAP
        if room >= 2:
            return self._draw(width, gone, self._model(gone)[: room - 1] + "…")
        return self._draw(width, gone | {"demo"}, "")

    def _needs(self, gone: frozenset[str], model: str | None = None) -> int:
        """The width the line takes without the pieces `gone`, counting the room of the price
        of the prompt even while there is none: typing moves nothing."""
        price = max(self._price(context=False).cell_len, _PRICE_ROOM)
        money = self._money(gone)
        return _cells(self._left(gone, model)) + _GAP + price + _GAP + _cells(money)

    def _draw(self, width: int, gone: frozenset[str], model: str | None = None) -> Text:
        """The left side from the left edge, the money to the right edge of `width`."""
        left = _joined(self._left(gone, model))
        money = self._money(gone)
        price = self._price(context=True)
        if left.cell_len + _GAP + _cells([price, *money]) > width:
            # The history's share of the price shows only where there is room left for it.
            price = self._price(context=False)
        pieces = [price, *money] if price else money
        # Only on a terminal too narrow for the figures and the state: the state is cut, and
        # then the figures go from the left, the session total last.
        while len(pieces) > 1 and _cells(pieces) > width:
            pieces = pieces[1:]
        right = _joined(pieces)
        right.truncate(width, overflow="ellipsis")
        # The left side ends where the price would begin, whether or not there is one now.
        price_room = max(price.cell_len, _PRICE_ROOM) + _GAP
        room = width - _GAP - min(width, max(right.cell_len, _cells(money) + price_room))
        if room > 0:
            left.truncate(room, overflow="ellipsis")
        else:
            left = Text()
        gap = width - left.cell_len - right.cell_len
        line = Text(no_wrap=True)
        line.append_text(left)
        line.append(" " * max(_GAP if left else 0, gap))
        line.append_text(right)
        return line

    def _model(self, gone: frozenset[str]) -> str:
        # The id as the router spelled it may hold escapes; it is shown without them.
        model = one_line(self.model) or "no model"
        if "provider" in gone:
            model = model.rpartition("/")[2] or model
        return model

    def _left(self, gone: frozenset[str], model: str | None = None) -> list[Text]:
        """DEMO, model, the conversation's own settings, state, tokens."""
        piece = self._piece
        pieces: list[Text] = []
        if self.demo and "demo" not in gone:
            pieces.append(piece(" DEMO ", "status-bar--demo"))
        model = self._model(gone) if model is None else model
        if model:
            pieces.append(piece(model, "status-bar--model"))
        if self.conversation_settings and "settings" not in gone:
            pieces.append(piece(self.conversation_settings, "status-bar--muted"))
        if self.state is not ChatState.IDLE or "idle" not in gone:
            pieces.append(piece(self.state.value, _STATE_CLASSES[self.state]))
        if self.tokens and "tokens" not in gone:
            pieces.append(piece(self.tokens, ""))
        return pieces

    def _price(self, *, context: bool) -> Text:
        """The price of the prompt as typed ("up to $X"), with `context` the history's share
        of it; empty while there is no figure."""
        if self.estimate is None:
            return Text()
        price = self._piece(f"up to {format_usd(self.estimate)}", "status-bar--estimate")
        if context and self.context:
            price.append_text(self._piece(f" (context {self.context})", "status-bar--muted"))
        return price

    def _money(self, gone: frozenset[str]) -> list[Text]:
        """Last charge, session total and the wallet."""
        last = "—" if self.last_charge is None else format_usd(self.last_charge)
        pieces = [
            self._piece(f"last {last}", "status-bar--muted"),
            self._piece(f"session {format_usd(self.session_spend)}", "status-bar--muted"),
        ]
        if "wallet" not in gone:
            if self.wallet:
                wallet = short_address(self.wallet)
                if self.balance:
                    wallet = f"{wallet} {self.balance}"
            else:
                wallet = "opening keyring…" if self.opening_keyring else "no wallet"
            pieces.append(self._piece(wallet, "status-bar--muted"))
        return pieces

    def _piece(self, text: str, component: str) -> Text:
        return Text(text, self.get_component_rich_style(component) if component else "")


# Between two pieces; at least as much between the left side and the right.
_GAP = 2
# The room of "up to $0.013500", kept for the price of the prompt while there is none.
_PRICE_ROOM = len("up to $0.000000")

_STATE_CLASSES = {
    ChatState.IDLE: "status-bar--idle",
    ChatState.PAYING: "status-bar--busy",
    ChatState.STREAMING: "status-bar--busy",
    ChatState.STOPPED: "status-bar--stopped",
    ChatState.ERROR: "status-bar--error",
}


def _giving_way(order: Iterable[str]) -> tuple[frozenset[str], ...]:
    """Nothing gone, then the first piece gone, then the first two, and so on."""
    gone: list[str] = []
    steps: list[frozenset[str]] = [frozenset()]
    for piece in order:
        gone.append(piece)
        steps.append(frozenset(gone))
    return tuple(steps)


# The pieces that give way when the line is too long, first to go first (see StatusBar).
_GIVING_WAY = _giving_way(("wallet", "provider", "idle", "tokens", "settings"))


def _joined(pieces: list[Text]) -> Text:
    line = Text(no_wrap=True)
    for index, piece in enumerate(pieces):
        if index:
            line.append(" " * _GAP)
        line.append_text(piece)
    return line


def _cells(pieces: list[Text]) -> int:
    """The width of `pieces` drawn with a gap between each two."""
    if not pieces:
        return 0
    return sum(piece.cell_len for piece in pieces) + _GAP * (len(pieces) - 1)
