"""Running the dev server: in a background thread (demo mode, tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from xrouter_tui.devserver.app import create_app
from xrouter_tui.devserver.hostile import RAW_TRANSPORT
from xrouter_tui.devserver.state import DEFAULT_PORT, DevServerConfig, DevServerState
from xrouter_tui.serving import bind, is_loopback, url_of

if TYPE_CHECKING:
    from xrouter_tui.devserver.chain import LocalChain

__all__ = ["DEFAULT_PORT", "RunningDevServer", "is_loopback", "serve", "start_dev_server"]

_STARTUP_SECONDS = 10.0
# Short, so stopping never waits long on a stream held open by a stall fault.
_GRACEFUL_SECONDS = 1


class RunningDevServer:
    """A dev server serving from a daemon thread; stop it with `stop()` or a `with` block."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        config: DevServerConfig,
        state: DevServerState,
    ) -> None:
        self._server = server
        self._thread = thread
        self.url = url
        self.config = config
        self.state = state

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def rpc_url(self) -> str:
        """Where the local chain's JSON-RPC is served (with `config.chain` on)."""
        return f"{self.url}/rpc"

    @property
    def chain(self) -> LocalChain:
        """The local chain, started now if it was not yet (with `config.fund` minted)."""
        return self.state.local_chain(self.config)

    def reset(self, config: DevServerConfig | None = None) -> None:
        """Put the settings back (to `config`, else the defaults) and clear the state."""
        self.config.copy_from(config or DevServerConfig())
        self.state.reset()

    def stop(self, timeout: float = 5.0) -> None:
        """Shut down, giving open requests a moment; then force it. Safe to call twice."""
        if not self._thread.is_alive():
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        if self.state.chain is not None:
            self.state.chain.close()

    def __enter__(self) -> RunningDevServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningDevServer({self.url!r}, running={self.running})"


def start_dev_server(
    config: DevServerConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningDevServer:
    """Start serving in a background thread and return once it accepts connections.

    Port 0 picks a free port; `.url` has the real one. Logging goes to the host program's
    handlers (uvicorn installs none), so a full-screen UI is not written over.
    """
    config = config or DevServerConfig()
    _warn_if_exposed(host)
    state = DevServerState()
    sock = bind(host, port)
    server = uvicorn.Server(_uvicorn_config(config, state, host, sock, log_config=None))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="xrouter-devserver", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + _STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the X-Router dev server did not start")
        time.sleep(0.005)
    return RunningDevServer(server, thread, url_of(sock), config, state)


def serve(
    config: DevServerConfig | None = None, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> None:
    """Serve in the foreground until Ctrl+C, after printing one line saying where and how
    (once the chain, if asked for, is up and funded)."""
    config = config or DevServerConfig()
    _warn_if_exposed(host)
    sock = bind(host, port)
    state = DevServerState()
    if config.chain:
        state.local_chain(config)
    server = uvicorn.Server(_uvicorn_config(config, state, host, sock, log_config=LOGGING_CONFIG))
    print(describe(config, url_of(sock)), flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        # uvicorn re-raises the Ctrl+C it handled gracefully; the shutdown is already done.
        pass
    finally:
        sock.close()


def describe(config: DevServerConfig, url: str) -> str:
    """One line: where the server listens, the protocol version, the network, the chain and
    the faults."""
    faults = ", ".join(sorted(config.faults)) or "none"
    network = config.resolved_network
    chain = (
        f", local chain {network.chain_id} with JSON-RPC at {url}/rpc, payments to {config.payee}"
        if config.chain
        else ""
    )
    return (
        f"X-Router dev server on {url} — x402 v{config.x402_version}, {network.label}{chain}, "
        f"faults: {faults}"
    )


def _warn_if_exposed(host: str) -> None:
    if not is_loopback(host):
        print(
            f"Warning: the dev server listens on {host}, reachable from other machines. It "
            "accepts payments that are never settled on a real network and is meant for local "
            "testing only.",
            file=sys.stderr,
            flush=True,
        )


class _TransportInScope(H11Protocol):
    """uvicorn's h11 protocol, which also gives each request its connection's transport (in
    scope["extensions"] under RAW_TRANSPORT): the drip-headers fault writes a response head a
    line at a time, which ASGI cannot.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        app = self.app

        async def with_transport(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[RAW_TRANSPORT] = transport
            await app(scope, receive, send)

        self.app = with_transport


def _uvicorn_config(
    config: DevServerConfig,
    state: DevServerState,
    host: str,
    sock: socket.socket,
    *,
    log_config: dict | None,
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(config, state),
        host=host,
        port=sock.getsockname()[1],
        log_level="warning",
        log_config=log_config,
        access_log=False,
        lifespan="off",
        ws="none",
        # h11, always: this subclass of its protocol puts the transport in the scope.
        http=_TransportInScope,
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
