"""The question before a payment above `confirm_above_usd`: the exact quote, to pay or not."""

from __future__ import annotations

from enum import StrEnum

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from xrouter_tui.payments import Quote, format_usd, short_address
from xrouter_tui.safe_text import one_line

__all__ = ["PaymentChoice", "PaymentDialog"]


class PaymentChoice(StrEnum):
    """What the user said to a payment."""

    PAY = "pay"
    # Pay, and do not ask again until the app quits.
    PAY_ALWAYS = "pay-always"
    CANCEL = "cancel"


class PaymentDialog(ModalScreen[PaymentChoice]):
    """Amount, model, network and payee; `y` pays, `a` pays and stops asking this session,
    `n` or Esc cancels. "Cancel" has the focus, so a stray Enter pays nothing."""

    DEFAULT_CSS = """
    PaymentDialog {
        align: center middle;
    }
    #payment {
        width: 72;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: round $warning;
        background: $surface;
    }
    #payment-title { text-style: bold; }
    #payment-amount { color: $warning; text-style: bold; margin: 1 0 0 0; }
    #payment-details { color: $text-muted; margin: 0 0 1 0; }
    #payment-buttons { height: auto; margin-bottom: 1; }
    #payment-buttons Button { margin-right: 2; }
    #payment-help { color: $text-muted; }
    """

    BINDINGS = [
        Binding("y", "answer('pay')", "Pay", show=False),
        Binding("a", "answer('pay-always')", "Pay, don't ask again", show=False),
        Binding("n,escape", "answer('cancel')", "Cancel", show=False),
        Binding("left,shift+tab", "app.focus_previous", show=False),
        Binding("right,tab", "app.focus_next", show=False),
    ]

    def __init__(self, quote: Quote, *, model: str, threshold_usd: str) -> None:
        super().__init__()
        self.quote = quote
        self.model = model
        self.threshold_usd = threshold_usd

    def compose(self) -> ComposeResult:
        quote = self.quote
        with Vertical(id="payment"):
            yield Label("Pay for this request?", id="payment-title")
            yield Static(
                f"{format_usd(quote.amount_usd)} USDC up front", id="payment-amount", markup=False
            )
            yield Static(
                # The model's id and the payee are the router's words.
                f"model {one_line(self.model)}\n"
                f"network {quote.network.label}\n"
                f"to {short_address(one_line(quote.requirement.pay_to))}\n"
                f"Above confirm_above_usd ({self.threshold_usd}). The router refunds what the "
                "answer does not use.",
                id="payment-details",
                markup=False,
            )
            with Horizontal(id="payment-buttons"):
                yield Button("Cancel", id="payment-cancel")
                yield Button("Pay (y)", id="payment-pay", variant="warning")
                yield Button("Pay, don't ask again (a)", id="payment-pay-always")
            yield Label(
                "y pay · a pay and don't ask again this session · n or Esc cancel",
                id="payment-help",
            )

    def on_mount(self) -> None:
        self.query_one("#payment-cancel", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choice = {
            "payment-pay": PaymentChoice.PAY,
            "payment-pay-always": PaymentChoice.PAY_ALWAYS,
        }.get(event.button.id or "", PaymentChoice.CANCEL)
        self.dismiss(choice)

    def action_answer(self, choice: str) -> None:
        self.dismiss(PaymentChoice(choice))
