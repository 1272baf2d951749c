"""A local X-Router on 127.0.0.1 that takes x402 payments, with faults: verified only, or with
`chain` settled on a real EVM on loopback (`devserver.chain`) whose JSON-RPC it serves at /rpc.
For the demo mode, the tests, the benchmarks and the `xrouter-tui demo-server` command.

The server's parts load when first used (`devserver.start_dev_server` …): the program reads the
options (`devserver.options`) at every start, and most runs never serve; the chain (py-evm)
loads only when one starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xrouter_tui.devserver.options import add_arguments, config_from_args
from xrouter_tui.devserver.state import (
    CHAIN_PAY_TO,
    DEFAULT_PORT,
    FAULTS,
    AcceptedPayment,
    DevServerConfig,
    DevServerState,
    Refund,
)

if TYPE_CHECKING:
    from xrouter_tui.devserver.app import create_app
    from xrouter_tui.devserver.server import (
        RunningDevServer,
        describe,
        is_loopback,
        serve,
        start_dev_server,
    )

__all__ = [
    "CHAIN_PAY_TO",
    "DEFAULT_PORT",
    "FAULTS",
    "AcceptedPayment",
    "DevServerConfig",
    "DevServerState",
    "Refund",
    "RunningDevServer",
    "add_arguments",
    "config_from_args",
    "create_app",
    "describe",
    "is_loopback",
    "serve",
    "start_dev_server",
]

# What loads with the server (uvicorn, Starlette, the signature checks), by the module it is in.
_SERVER_PARTS = {
    "create_app": "xrouter_tui.devserver.app",
    "RunningDevServer": "xrouter_tui.devserver.server",
    "describe": "xrouter_tui.devserver.server",
    "is_loopback": "xrouter_tui.devserver.server",
    "serve": "xrouter_tui.devserver.server",
    "start_dev_server": "xrouter_tui.devserver.server",
}


def __getattr__(name: str) -> Any:
    module = _SERVER_PARTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
