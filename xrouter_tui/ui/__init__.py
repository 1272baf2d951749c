"""The full-screen chat (Textual): app, screens, widgets and one stylesheet."""

import os

# Textual reads its frame rate once, when it is first imported, so ours is set before that.
# Its frame timer, when a frame ends past the next slot, waits for the slot after that one, a
# whole slot more than it needs: at 60 slots a second a key typed while a fast answer streams
# often waited 17 ms more to be shown (key latency p99 about 70 ms, against about 47 ms at
# 120). Frames are still drawn only when something changed. A TEXTUAL_FPS of the user's own wins.
os.environ.setdefault("TEXTUAL_FPS", "120")

from xrouter_tui.ui.app import ChatApp, RouterSetup

__all__ = ["ChatApp", "RouterSetup"]
