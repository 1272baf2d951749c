"""Demo mode: the local router on a free loopback port, a throwaway wallet, a test network, and a
local chain where the wallet holds test USDC: payments settle on it and refunds come back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import IO

from xrouter_tui.api import ModelInfo
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.catalog import MODELS
from xrouter_tui.payments import BASE_SEPOLIA, Network, WalletKey, short_address, usd_to_atomic

__all__ = ["DEMO_FUNDS_USD", "DEMO_NETWORK", "Demo", "demo_models", "demo_router"]

# Slow enough to watch the answer stream in, fast enough not to bore.
DEMO_DELTA_DELAY = 0.012
# The demo pays on a test network: its payments are no one's real money.
DEMO_NETWORK = BASE_SEPOLIA
# Test USDC minted for the throwaway wallet on the demo's local chain: hundreds of turns.
DEMO_FUNDS_USD = Decimal(5)


@dataclass(frozen=True, slots=True)
class Demo:
    """A running demo: where the router is, the throwaway wallet, and the network it pays on."""

    base_url: str
    account: WalletKey
    network: Network
    # The demo router's models with their prices, as its /v1/models lists them.
    models: tuple[ModelInfo, ...] = ()
    # The local chain's JSON-RPC, on the router's own port.
    rpc_url: str = ""


@contextmanager
def demo_router(*, stderr: IO[str] | None = None) -> Iterator[Demo]:
    """Run the local router for as long as the block lasts, and say on `stderr` it is a demo.

    Its chain starts with the first call that needs it (a payment, a balance read), in the
    router's thread: py-evm loads then, never before the chat's first frame.
    """
    account = WalletKey.generate()
    config = DevServerConfig(
        network=DEMO_NETWORK.v1_name,
        delta_delay=DEMO_DELTA_DELAY,
        chain=True,
        fund={account.address: usd_to_atomic(DEMO_FUNDS_USD)},
    )
    with start_dev_server(config) as server:
        if stderr is not None:
            print(
                f"Demo: local router at {server.url}, throwaway wallet "
                f"{short_address(account.address)} with ${DEMO_FUNDS_USD} of test USDC, "
                f"{DEMO_NETWORK.label} on a local chain; no real money moves.",
                file=stderr,
                flush=True,
            )
        yield Demo(server.url, account, DEMO_NETWORK, demo_models(), server.rpc_url)


def demo_models() -> tuple[ModelInfo, ...]:
    """The local router's models and prices, without asking it."""
    return tuple(
        ModelInfo(
            model.id,
            model.name,
            model.description,
            model.context_length,
            input_per_1m_usd=model.input_per_1k * 1000,
            output_per_1m_usd=model.output_per_1k * 1000,
        )
        for model in MODELS
    )
