"""What `xrouter-tui proxy` runs: serve OpenAI's API on this machine, paying X-Router for each
request.

The key stays in the keyring; clients get a token instead. The proxy is one session: the
session budget counts what it paid since it started, the daily budget every process's day.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from xrouter_tui.api import Limits, ModelInfo, RouterClient, Timeouts
from xrouter_tui.chain import BalanceWatch
from xrouter_tui.commands.proxy import DEFAULT_PORT, TOKEN_VARIABLE
from xrouter_tui.config import Settings
from xrouter_tui.history.store import Store
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import Network, SpendingPolicy, WalletKey, format_usd, short_address
from xrouter_tui.proxy import ProxyHistory, ProxySetup, create_proxy_app
from xrouter_tui.serving import bind, is_loopback, url_of

__all__ = [
    "DEFAULT_PORT",
    "TOKEN_VARIABLE",
    "ProxyOptions",
    "ProxyRefused",
    "ProxyRouter",
    "proxy_token",
    "serve",
]

# Short, so Ctrl+C (or SIGTERM) does not wait long on a client that keeps a stream open: open
# streams are then cut and their answers kept as stopped (the app's lifespan waits at most a
# second more for them), so the proxy is gone within a few seconds whatever its clients do.
_GRACEFUL_SECONDS = 2


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """How the proxy listens, and who may use it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    allow_remote: bool = False
    # Pay above confirm_above_usd (up to max_per_request_usd) without anyone to ask.
    pay_without_asking: bool = False


@dataclass(frozen=True, slots=True)
class ProxyRouter:
    """The router the proxy pays, and with what."""

    base_url: str
    account: WalletKey
    networks: tuple[Network, ...]
    models: Sequence[ModelInfo]
    timeouts: Timeouts
    # Where each network's chain is read (x402 v1 name → JSON-RPC URL): the balance is checked
    # there before a payment is signed.
    rpc_urls: Mapping[str, str] = field(default_factory=dict)


class ProxyRefused(ValueError):
    """The proxy cannot start as asked (a usage error: exit 2)."""


def proxy_token(given: str | None, env: Mapping[str, str]) -> tuple[str, bool]:
    """The token clients must send: `--token`, else `XROUTER_PROXY_TOKEN`, else a new one.
    Returns it, and whether it was made here (and so must be shown)."""
    token = given if given is not None else env.get(TOKEN_VARIABLE)
    if token is None:
        return secrets.token_urlsafe(24), True
    token = token.strip()
    if len(token) < 8 or any(c.isspace() or not c.isprintable() for c in token):
        source = "--token" if given is not None else TOKEN_VARIABLE
        raise ProxyRefused(
            f"{source} must be at least 8 characters, without spaces (or leave it out, and the "
            "proxy makes one)."
        )
    return token, False


def serve(
    options: ProxyOptions,
    router: ProxyRouter,
    settings: Settings,
    store: Store,
    env: Mapping[str, str],
    *,
    out: IO[str],
    log: IO[str],
) -> None:
    """Listen, say where and how to use it, and serve until Ctrl+C."""
    if not is_loopback(options.host) and not options.allow_remote:
        raise ProxyRefused(
            f"the proxy spends your money, so it listens on this machine only: --host "
            f"{options.host} is not a loopback address. Add --allow-remote to listen there "
            "anyway (anyone who can reach it and has the token can spend)."
        )
    token, made_here = proxy_token(options.token, env)
    if not is_loopback(options.host):
        print(
            f"Warning: the proxy listens on {options.host}, reachable from other machines; "
            "anyone there with the token can spend from your wallet.",
            file=log,
            flush=True,
        )
    setup = _setup(options, router, settings, store, log)
    sock = bind(options.host, options.port)
    base = url_of(sock) + "/v1"

    def ready() -> None:
        print(_banner(base, router, settings, options, token if made_here else None), file=out)
        out.flush()

    app = create_proxy_app(
        setup, token=token, exposed=not is_loopback(options.host), on_ready=ready
    )
    debug = bool(env.get("XROUTER_DEBUG"))
    quiet = _OneLineErrors()
    try:
        config = _uvicorn_config(app, sock, debug=debug)
        server = _Server(config, on_exit=setup.stop_soon)
        if not debug:
            # Added after uvicorn configured its loggers (when the Config was made).
            logging.getLogger("uvicorn.error").addFilter(quiet)
        # uvicorn re-raises the Ctrl+C (and the SIGTERM) it already handled gracefully.
        with _sigterm_as_ctrl_c(), contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
        sock.close()


class _OneLineErrors(logging.Filter):
    """uvicorn logs an error of the app (or a stream it cancelled at shutdown) with its
    traceback: the proxy's log says it in one line instead, unless XROUTER_DEBUG asks for it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app the moment it is asked to stop: open streams and
    requests waiting for the router then end at once, instead of being cancelled (and logged
    as tracebacks) after the graceful shutdown timeout."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM ends the proxy as Ctrl+C does. uvicorn shuts down gracefully on either, then
    raises the signal again under the handler it found: by default SIGTERM would then kill
    the process before the history is closed and the command exits 0."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a test's thread keeps the default
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _setup(
    options: ProxyOptions, router: ProxyRouter, settings: Settings, store: Store, log: IO[str]
) -> ProxySetup:
    policy = SpendingPolicy(
        networks=router.networks, max_per_request_usd=settings.max_per_request_usd
    )
    return ProxySetup(
        client=RouterClient(
            router.base_url,
            account=router.account,
            policy=policy,
            timeouts=router.timeouts,
            limits=Limits.of(settings),
        ),
        limits=Limits.of(settings),
        max_request_bytes=settings.proxy_max_request_bytes,
        ledger=Ledger(
            store,
            router.networks,
            session_budget_usd=settings.session_budget_usd,
            daily_budget_usd=settings.daily_budget_usd,
        ),
        history=ProxyHistory(store),
        model=settings.model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        confirm_above_usd=settings.confirm_above_usd,
        pay_without_asking=options.pay_without_asking,
        models=router.models,
        log=log,
        balances=BalanceWatch(router.rpc_urls) if router.rpc_urls else None,
    )


def _banner(
    base: str,
    router: ProxyRouter,
    settings: Settings,
    options: ProxyOptions,
    new_token: str | None,
) -> str:
    networks = ", ".join(network.label for network in router.networks)
    if options.pay_without_asking:
        limit = f"up to {format_usd(settings.max_per_request_usd)} a request (max_per_request_usd)"
    else:
        limit = (
            f"up to {format_usd(min(settings.confirm_above_usd, settings.max_per_request_usd))} a "
            "request (confirm_above_usd; --yes allows up to max_per_request_usd, "
            f"{format_usd(settings.max_per_request_usd)})"
        )
    budgets = [
        f"{name} {format_usd(value)}"
        for name, value in (
            ("session budget", settings.session_budget_usd),
            ("daily budget", settings.daily_budget_usd),
        )
        if value is not None
    ]
    key = (
        new_token if new_token is not None else f"the token you gave (--token or ${TOKEN_VARIABLE})"
    )
    lines = [
        f"X-Router proxy on {base} for {router.base_url}",
        f"Paying from {short_address(router.account.address)} on {networks}, {limit}"
        + (f"; {', '.join(budgets)}" if budgets else "")
        + ".",
        "Point an OpenAI client at it:",
        f"  OPENAI_BASE_URL={base}",
        f"  OPENAI_API_KEY={key}",
        "Every request is kept in the history and the ledger. Ctrl+C stops it.",
    ]
    return "\n".join(lines)


def _uvicorn_config(app: object, sock: socket.socket, *, debug: bool) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=sock.getsockname()[0],
        port=sock.getsockname()[1],
        log_level="debug" if debug else "warning",
        log_config=LOGGING_CONFIG,
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=_GRACEFUL_SECONDS,
    )
