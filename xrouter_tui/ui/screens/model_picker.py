"""The model picker (F2): type to filter by id and name, arrows to move, Enter to pick.

Ids and names are the router's words: shown through `safe_text.one_line`, as plain text (rows
are drawn as `Text`, labels take no markup), and matched as shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
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

__all__ = ["ModelPicker", "ModelRow"]


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
            yield Label(self._title(len(self.models)), id="picker-title", markup=False)
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

    def _title(self, shown: int) -> str:
        """The title: "Model · 12 models · now X", "2 of 12 models" while a filter hides some."""
        total = len(self.models)
        count = f"{total} model{'' if total == 1 else 's'}"
        if shown != total:
            count = f"{shown} of {count}"
        return f"Model · {count} · now {one_line(self.current)}"

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
        self.query_one("#picker-title", Label).update(self._title(len(self._shown)))
        options = self.query_one(OptionList)
        options.clear_options()
        columns = Columns(self._shown)
        options.add_options(
            Option(
                ModelRow(
                    model,
                    columns,
                    recent=model.id in self.recent,
                    current=model.id == self.current,
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


class Columns:
    """The columns the rows of one list share, so that ids and prices line up at any width."""

    def __init__(self, models: Sequence[ModelInfo]) -> None:
        self.ids = [one_line(model.id) for model in models]
        # Wide enough for every price shown (cents, or more digits below a cent).
        self.input_width = max([8, *(len(_price(m.input_per_1m_usd)) for m in models)])
        self.output_width = max([8, *(len(_price(m.output_per_1m_usd)) for m in models)])
        self._id_widths: dict[int | None, int] = {}

    @property
    def prices_width(self) -> int:
        """The cells the prices take, with the gap before them: "  $15.00 /  $75.00"."""
        return 2 + self.input_width + 2 + self.output_width

    def id_width(self, room: int | None) -> int:
        """How wide the id column is when it may take `room` cells at most (None: no limit)."""
        if room not in self._id_widths:
            self._id_widths[room] = max((len(short_id(i, room)) for i in self.ids), default=0)
        return self._id_widths[room]


class ModelRow:
    """One row of the list, drawn for the width the list gives it: a mark (✓ in use, • used
    lately), the id, $ per 1M input / output tokens, context length, and the name without its
    "Provider: " prefix (the id already names the provider).

    Where the row is too wide, the name gives way first, then the context length and
    "per 1M", then the ids (their provider part, then their end): the prices always show
    whole.
    """

    def __init__(
        self, model: ModelInfo, columns: Columns, *, recent: bool = False, current: bool = False
    ) -> None:
        self.model = model
        self.columns = columns
        self.mark = "✓ " if current else "• " if recent else "  "

    def row(self, width: int | None = None) -> Text:
        """The row cut to `width` cells (all of it with None)."""
        model, columns = self.model, self.columns
        room = None if width is None else width - len(self.mark) - columns.prices_width
        id_width = columns.id_width(room)
        row = Text(no_wrap=True, overflow="ellipsis")
        row.append(self.mark, style="bold")
        row.append(short_id(one_line(model.id), room).ljust(id_width), style="bold")
        row.append("  ")
        row.append(_price(model.input_per_1m_usd).rjust(columns.input_width))
        row.append(" /", style="dim")
        row.append(_price(model.output_per_1m_usd).rjust(columns.output_width))
        # What follows the prices is cut on its own: its ellipsis never takes a price's digit.
        rest = Text()
        rest.append(" per 1M", style="dim")
        rest.append(f"  {_context(model.context_length):>6}")
        name = one_line(model.name)
        rest.append(f"  {name.partition(': ')[2] or name}", style="italic")
        if width is not None:
            rest_room = width - row.cell_len
            if rest_room < 2:
                return row
            rest.truncate(rest_room, overflow="ellipsis")
        row.append_text(rest)
        return row

    def __str__(self) -> str:
        return self.row().plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.row(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.row(0).cell_len, self.row().cell_len)


def short_id(model_id: str, room: int | None) -> str:
    """`model_id` in `room` cells: whole, or without its provider part, or cut short."""
    if room is None or len(model_id) <= room:
        return model_id
    name = model_id.rpartition("/")[2]
    if len(name) <= room:
        return name
    return name[: room - 1] + "…" if room >= 2 else ""


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
