"""The list under a filter box, in the model picker and the conversations screen."""

from __future__ import annotations

from textual.widgets import OptionList

__all__ = ["PickerList"]


class PickerList(OptionList):
    """An option list the screen moves by keys typed in its filter box."""

    def move(self, step: int) -> None:
        """Move the highlight `step` rows, stopping at the first and last; nothing when empty.

        The filter box keeps the focus while the reader moves, so the screen calls this
        instead of the list's own cursor bindings.
        """
        if not self.option_count:
            return
        now = self.highlighted if self.highlighted is not None else 0
        self.highlighted = max(0, min(self.option_count - 1, now + step))
