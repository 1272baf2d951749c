"""What the local router and the proxy share as HTTP servers: a listening socket, the address a
client can use, whether a host is loopback, and a stream that notices a client leaving.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Mapping

from starlette.types import Receive, Scope, Send

__all__ = [
    "BROKE",
    "COMPLETED",
    "LEFT",
    "STOPPED",
    "WatchedStream",
    "bind",
    "is_loopback",
    "url_of",
]

# How a watched stream ended: every chunk sent; the client went away first; the server is
# stopping; or making a chunk raised.
COMPLETED = "completed"
LEFT = "left"
STOPPED = "stopped"
BROKE = "broke"


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on `host:port` (port 0 picks a free one)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # A restarted server can take its port back while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening before uvicorn starts queues early clients instead of refusing them.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """The `http://host:port` a client on this machine connects to."""
    bound_host, port = sock.getsockname()[:2]
    address = ipaddress.ip_address(bound_host)
    if address.is_unspecified:
        # 0.0.0.0 is where the server listens, not an address a client can connect to.
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    text = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{text}:{port}"


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 in brackets or not) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WatchedStream:
    """An ASGI response that sends `chunks` as they come, each as its own piece of body, and
    stops them as soon as the client goes away: a stream nobody reads must not go on.

    `on_end(how)` is called once when it is over, after the last byte: `COMPLETED`, `LEFT`,
    `STOPPED` or `BROKE` (the exception then propagates).
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        headers: Mapping[str, str],
        on_end: Callable[[str], None] | None = None,
        status: int = 200,
    ) -> None:
        self.chunks = chunks
        self.status = status
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.items()
        ]
        self._on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        finished = False
        client_left = False

        async def watch() -> None:
            nonlocal client_left
            while (await receive())["type"] != "http.disconnect":
                pass
            if not finished:
                client_left = True
                task.cancel()

        watcher = asyncio.create_task(watch())
        how = BROKE
        try:
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.raw_headers}
            )
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finished = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            how = COMPLETED
        except asyncio.CancelledError:
            if not client_left:
                how = STOPPED
                raise
            task.uncancel()
            how = LEFT
        finally:
            watcher.cancel()
            close = getattr(self.chunks, "aclose", None)
            if close is not None:
                await close()
            if self._on_end is not None:
                self._on_end(how)
