"""The model picker (F2): type to filter by id and name, arrows to move, Enter to pick.

Ids and names are the router's words: shown through `safe_text.one_line`, as plain text (rows
are `Text`, labels take no markup), and matched as shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from xrouter_tui.api import ModelInfo
from xrouter_tui.safe_text import one_line
from xrouter_tui.ui.widgets.picker_list import PickerList

__all__ = ["ModelPicker", "model_row"]


class ModelPicker(ModalScreen[str | None]):
    """Returns the chosen model's id, or None when closed with Esc."""

    BINDINGS = [
        Binding("escape", "dismiss_picker", "Close", show=True),
        Binding("down", "move(1)", "Next", show=False, priority=True),
        Binding("up", "move(-1)", "Previous", show=False, priority=True),
        Binding("pagedown", "move(10)", show=False, priority=True),
        Binding("pageup", "move(-10)", show=False, priority=True),
    ]

    def __init__(
        self, models: Sequence[ModelInfo], *, current: str, recent: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.models = list(models)
        self.current = current
        self.recent = set(recent)
        self._shown: list[ModelInfo] = []
        # Each model's id and name as shown, worked out once rather than at every key typed.
        self._labels = {model.id: (one_line(model.id), one_line(model.name)) for model in models}

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(
                f"Model · {len(self.models)} available · now {one_line(self.current)}",
                id="picker-title",
                markup=False,
            )
            yield Input(placeholder="Type to filter by id or name", id="picker-filter")
            yield PickerList(id="picker-list")
            yield Label(
                "↑↓ move · Enter pick · Esc close · ✓ in use · • used lately", id="picker-help"
            )

    def on_mount(self) -> None:
        self._show("")
        self.query_one(Input).focus()

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._show(event.value)

    @on(Input.Submitted, "#picker-filter")
    def _pick_highlighted(self) -> None:
        options = self.query_one(OptionList)
        if options.highlighted is not None and self._shown:
            self.dismiss(self._shown[options.highlighted].id)

    @on(OptionList.OptionSelected, "#picker-list")
    def _pick_clicked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self._shown[event.option_index].id)

    def action_move(self, step: int) -> None:
        self.query_one(PickerList).move(step)

    def action_dismiss_picker(self) -> None:
        self.dismiss(None)

    def _show(self, query: str) -> None:
        query = query.strip()
        if query:
            matcher = Matcher(query)
            labels = self._labels
            scored = [
                (max(matcher.match(labels[model.id][0]), matcher.match(labels[model.id][1])), model)
                for model in self.models
            ]
            # A stable sort keeps the recent-first order among equally good matches.
            scored = sorted((item for item in scored if item[0] > 0), key=lambda i: -i[0])
            self._shown = [model for _score, model in scored]
        else:
            self._shown = list(self.models)
        options = self.query_one(OptionList)
        options.clear_options()
        width = max((len(self._labels[model.id][0]) for model in self._shown), default=0)
        options.add_options(
            Option(
                model_row(
                    model, width, recent=model.id in self.recent, current=model.id == self.current
                ),
                id=model.id,
            )
            for model in self._shown
        )
        if self._shown:
            ids = [model.id for model in self._shown]
            options.highlighted = (
                ids.index(self.current) if not query and self.current in ids else 0
            )


def model_row(
    model: ModelInfo, id_width: int, *, recent: bool = False, current: bool = False
) -> Text:
    """One row: a mark (✓ in use, • used lately), id, $ per 1M input / output tokens, context
    length, and the name without its "Provider: " prefix (the id already names the provider)."""
    row = Text()
    row.append("✓ " if current else "• " if recent else "  ", style="bold")
    row.append(one_line(model.id).ljust(id_width), style="bold")
    row.append("  ")
    row.append(_price(model.input_per_1m_usd).rjust(8))
    row.append(" /", style="dim")
    row.append(_price(model.output_per_1m_usd).rjust(8))
    row.append(" per 1M", style="dim")
    row.append(f"  {_context(model.context_length):>6}")
    name = one_line(model.name)
    row.append(f"  {name.partition(': ')[2] or name}", style="italic")
    return row


def _price(usd: Decimal | None) -> str:
    if usd is None:
        return "?"
    # Cents for most prices, so a column lines up; more digits only below a cent.
    return f"${usd:,.2f}" if usd >= Decimal("0.01") or usd == 0 else f"${usd.normalize():f}"


def _context(tokens: int | None) -> str:
    if not tokens:
        return "? ctx"
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:g}M ctx"
    return f"{round(tokens / 1000)}K ctx"
