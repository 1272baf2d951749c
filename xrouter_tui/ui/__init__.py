"""The full-screen chat (Textual): app, screens, widgets and one stylesheet."""

import os

# Textual reads its frame rate once, when it is first imported, so ours is set before that.
# Its frame timer, when a frame ends past the next slot, waits for the slot after that one:
# at 60 slots a second, a key typed while a fast answer streams waited up to 50 ms more to be
# shown. At 120 the wait halves; frames are still drawn only when something changed. A
# TEXTUAL_FPS of the user's own wins.
os.environ.setdefault("TEXTUAL_FPS", "120")

from xrouter_tui.ui.app import ChatApp, RouterSetup

__all__ = ["ChatApp", "RouterSetup"]
