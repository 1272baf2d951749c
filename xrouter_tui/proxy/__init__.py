"""A local OpenAI-compatible endpoint that pays X-Router for each request (`xrouter-tui proxy`)."""

from xrouter_tui.proxy.app import ProxySetup, create_proxy_app
from xrouter_tui.proxy.record import ProxyHistory, StreamTap
from xrouter_tui.proxy.wire import ProxyError, ProxyRequest, read_request

__all__ = [
    "ProxyError",
    "ProxyHistory",
    "ProxyRequest",
    "ProxySetup",
    "StreamTap",
    "create_proxy_app",
    "read_request",
]
