"""Who may use the proxy: it spends the user's money, so every request must show the token,
be addressed to this machine by name, and not come from a web page of another site.

- `Host` must be a loopback name or address: a page on evil.example whose DNS name is made to
  point at 127.0.0.1 (DNS rebinding) sends `Host: evil.example`, and is refused.
- `Origin`, which browsers send with every cross-site request, must be a loopback origin.
  Pages on this machine (a local web UI) get CORS answers; pages elsewhere get 403.
- `Authorization: Bearer <token>`, compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from xrouter_tui.proxy.wire import ProxyError
from xrouter_tui.serving import is_loopback

__all__ = ["AccessGuard", "host_name"]

_CORS_HEADERS = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, content-type"),
    (b"access-control-max-age", b"600"),
    (b"vary", b"origin"),
]


def host_name(host: str) -> str:
    """The name or address of a `Host` header, without its port."""
    host = host.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class AccessGuard:
    """ASGI middleware: refuses what may not spend, before any handler runs.

    `exposed`: the proxy listens beyond loopback (the user asked for it), so clients on other
    machines may address it by IP address; names still have to be loopback ones, since only a
    name can be rebound.
    """

    def __init__(self, app: ASGIApp, *, token: str, exposed: bool = False) -> None:
        self.app = app
        self._token = token.encode()
        self._exposed = exposed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        refusal = self._refusal(host, origin, headers.get(b"authorization", b""), scope)
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        if not origin:
            await self.app(scope, receive, send)
            return
        allow_origin = [(b"access-control-allow-origin", origin.encode("latin-1"))]
        if scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": allow_origin + _CORS_HEADERS,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *allow_origin]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _refusal(
        self, host: str, origin: str, authorization: bytes, scope: Scope
    ) -> ProxyError | None:
        name = host_name(host)
        if not (is_loopback(name) or (self._exposed and _is_address(name))):
            shown = f"Host {host!r}" if host else "no Host header"
            return ProxyError(
                403,
                f"Refused: the request was addressed to {shown}; this proxy answers only "
                "requests addressed to localhost or 127.0.0.1.",
                type="forbidden",
                code="host_not_allowed",
            )
        if origin and not _loopback_origin(origin):
            return ProxyError(
                403,
                f"Refused: web pages from {origin} may not use this proxy; only pages served "
                "from this machine (localhost) may.",
                type="forbidden",
                code="origin_not_allowed",
            )
        if scope["method"] == "OPTIONS" and origin:
            return None  # a preflight carries no credentials; the request after it must
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._token):
            return ProxyError(
                401,
                "A valid proxy token is needed: send it as the API key (Authorization: Bearer "
                "<token>). The proxy printed it when it started, or it is your "
                "XROUTER_PROXY_TOKEN.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None


def _loopback_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and is_loopback(parts.hostname or "")
    )
