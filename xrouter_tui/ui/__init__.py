"""The full-screen chat (Textual): app, screens, widgets and one stylesheet."""

from xrouter_tui.ui.app import ChatApp, RouterSetup

__all__ = ["ChatApp", "RouterSetup"]
