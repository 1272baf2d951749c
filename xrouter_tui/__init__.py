"""xrouter-tui: a terminal chat for X-Router that pays for each request with x402."""

__version__ = "0.1.0"
