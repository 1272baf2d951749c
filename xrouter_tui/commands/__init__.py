"""The one-shot commands behind `xrouter-tui ask`, `models` and `demo-server`."""
