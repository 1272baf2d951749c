"""`xrouter-tui proxy`: serve OpenAI's API on this machine and pay X-Router for each request.

The key stays in the keyring; clients get a token instead. The proxy is one session: the
session budget counts what it paid since it started, the daily budget every process's day.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import uvicorn
from eth_account.signers.local import LocalAccount
from uvicorn.config import LOGGING_CONFIG

from xrouter_tui.api import ModelInfo, RouterClient, Timeouts
from xrouter_tui.config import Settings
from xrouter_tui.ledger import Ledger
from xrouter_tui.payments import Network, SpendingPolicy, format_usd, short_address
from xrouter_tui.proxy import ProxyHistory, ProxySetup, create_proxy_app
from xrouter_tui.serving import bind, is_loopback, url_of
from xrouter_tui.store import Store

__all__ = [
    "DEFAULT_PORT",
    "TOKEN_VARIABLE",
    "ProxyOptions",
    "ProxyRefused",
    "ProxyRouter",
    "proxy_token",
    "serve",
]

DEFAULT_PORT = 8403
TOKEN_VARIABLE = "XROUTER_PROXY_TOKEN"
# Short, so Ctrl+C does not wait long on a client that keeps a stream open.
_GRACEFUL_SECONDS = 3


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
    account: LocalAccount
    networks: tuple[Network, ...]
    models: Sequence[ModelInfo]
    timeouts: Timeouts


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
    try:
        server = uvicorn.Server(_uvicorn_config(app, sock, debug=bool(env.get("XROUTER_DEBUG"))))
        # uvicorn re-raises the Ctrl+C it already handled gracefully.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()


def _setup(
    options: ProxyOptions, router: ProxyRouter, settings: Settings, store: Store, log: IO[str]
) -> ProxySetup:
    policy = SpendingPolicy(
        networks=router.networks, max_per_request_usd=settings.max_per_request_usd
    )
    return ProxySetup(
        client=RouterClient(
            router.base_url, account=router.account, policy=policy, timeouts=router.timeouts
        ),
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
