"""The networks and assets this client knows how to pay on, and money in atomic units.

x402 v1 names networks `base`, v2 uses CAIP-2 (`eip155:8453`); both map to one `Network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal

__all__ = [
    "BASE",
    "BASE_SEPOLIA",
    "NETWORKS",
    "Asset",
    "Network",
    "atomic_to_usd",
    "find_network",
    "format_usd",
    "network_label",
    "usd_text",
    "usd_to_atomic",
]


@dataclass(frozen=True, slots=True)
class Asset:
    """A token that can be paid with an EIP-3009 transfer authorization."""

    address: str
    symbol: str
    decimals: int
    # EIP-712 domain name and version: only a fallback for challenges whose `extra` omits them.
    eip712_name: str
    eip712_version: str


@dataclass(frozen=True, slots=True)
class Network:
    """An EVM network, under both of its x402 names."""

    v1_name: str
    caip2: str
    chain_id: int
    label: str
    testnet: bool
    usdc: Asset

    def name_for(self, x402_version: int) -> str:
        """The network's name as the given x402 version writes it."""
        return self.v1_name if x402_version == 1 else self.caip2


BASE = Network(
    v1_name="base",
    caip2="eip155:8453",
    chain_id=8453,
    label="Base",
    testnet=False,
    usdc=Asset("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USDC", 6, "USD Coin", "2"),
)
BASE_SEPOLIA = Network(
    v1_name="base-sepolia",
    caip2="eip155:84532",
    chain_id=84532,
    label="Base Sepolia (test network)",
    testnet=True,
    usdc=Asset("0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC", 6, "USDC", "2"),
)
NETWORKS: tuple[Network, ...] = (BASE, BASE_SEPOLIA)

_BY_NAME = {key: net for net in NETWORKS for key in (net.v1_name, net.caip2)}


def find_network(name: str) -> Network | None:
    """The known network called `name` in either x402 naming, or None."""
    return _BY_NAME.get(name.strip().lower())


def network_label(name: str) -> str:
    """How people read the network called `name` ("Base", "Base Sepolia (test network)"); an
    unknown one as it was named (JSON keeps the x402 name either way)."""
    network = find_network(name)
    return network.label if network is not None else name


def atomic_to_usd(amount: int, decimals: int = 6) -> Decimal:
    """Atomic units of a dollar token (USDC: 6 decimals) as dollars, exactly."""
    return Decimal(amount).scaleb(-decimals)


def usd_to_atomic(usd: Decimal, decimals: int = 6) -> int:
    """Dollars as atomic units, rounded up: a price is never understated."""
    return int(usd.scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))


_MICRO = Decimal("0.000001")


def usd_text(usd: Decimal) -> str:
    """A dollar amount as USDC counts it: `0.013500`, `-2.000000`, `1234567.000000`. Exactly
    six decimals (half-even beyond them), never grouped, never scientific: what people read,
    and the string JSON and CSV carry, so the two never disagree."""
    if not usd.is_finite():
        raise ValueError(f"not an amount of money: {usd}")
    # A context of its own: quantize needs every digit of a large amount (the default holds
    # 28), and no caller's context changes how money reads.
    digits = Context(prec=max(28, usd.adjusted() + 8))
    micro = usd.quantize(_MICRO, rounding=ROUND_HALF_EVEN, context=digits)
    # -0.0000001 rounds to -0.000000: no amount is less than nothing.
    return f"{abs(micro) if micro.is_zero() else micro:f}"


def format_usd(usd: Decimal) -> str:
    """`$0.013500`, `-$1.500000`: `usd_text` for people, the sign before the dollar."""
    text = usd_text(usd)
    return "-$" + text[1:] if text.startswith("-") else "$" + text
