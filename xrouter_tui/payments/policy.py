"""The spending policy: which requirement of a challenge may be paid, decided before signing.

Only `exact` payments by EIP-3009 transfer authorization, only in an allowed (network, asset)
pair, never above the per-request cap or the room left in any budget. A refusal carries a
sentence for the user and the name of the setting that would change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from xrouter_tui.payments.challenge import PaymentChallenge, PaymentRequirement
from xrouter_tui.payments.networks import (
    BASE,
    Asset,
    Network,
    atomic_to_usd,
    find_network,
    format_usd,
)

__all__ = [
    "Budget",
    "PaymentRefused",
    "Quote",
    "SpendingPolicy",
    "check_budgets",
    "unconfirmed",
]


class PaymentRefused(Exception):
    """The policy will not pay this challenge; nothing was signed."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        amount_usd: Decimal | None = None,
        limit_usd: Decimal | None = None,
        setting: str | None = None,
        room_usd: Decimal | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.amount_usd = amount_usd
        self.limit_usd = limit_usd
        self.setting = setting
        # The most that could be paid now: a cheaper request (fewer max_tokens) may fit it.
        self.room_usd = room_usd if room_usd is not None else limit_usd


@dataclass(frozen=True, slots=True)
class Budget:
    """A running limit: what may be spent in all, what is spent already, and its setting's name."""

    limit_usd: Decimal
    spent_usd: Decimal
    setting: str

    @property
    def remaining_usd(self) -> Decimal:
        return max(self.limit_usd - self.spent_usd, Decimal(0))


@dataclass(frozen=True, slots=True)
class Quote:
    """The requirement chosen to pay, with what it costs in the user's terms."""

    challenge: PaymentChallenge
    requirement: PaymentRequirement
    network: Network
    asset: Asset

    @property
    def amount(self) -> int:
        return self.requirement.amount

    @property
    def amount_usd(self) -> Decimal:
        return atomic_to_usd(self.requirement.amount, self.asset.decimals)


@dataclass(frozen=True, slots=True)
class SpendingPolicy:
    """The rules every payment must pass. USDC on Base only, unless configured otherwise."""

    networks: tuple[Network, ...] = (BASE,)
    max_per_request_usd: Decimal = Decimal("0.50")
    cap_setting: str = "max_per_request_usd"

    def choose(self, challenge: PaymentChallenge, budgets: Iterable[Budget] = ()) -> Quote:
        """The cheapest requirement this policy allows, or `PaymentRefused` saying why none."""
        budgets = tuple(budgets)
        allowed: list[Quote] = []
        refusals: list[PaymentRefused] = []
        for requirement in challenge.accepts:
            try:
                allowed.append(self._admit(challenge, requirement))
            except PaymentRefused as refusal:
                refusals.append(refusal)
        if not allowed:
            raise _most_telling(refusals)

        allowed.sort(key=lambda quote: quote.amount_usd)
        cheapest = allowed[0]
        # The most that could be paid now under every limit at once: a cheaper request that
        # fits the cap must fit the budgets too.
        room = min([self.max_per_request_usd, *(b.remaining_usd for b in budgets)])
        if cheapest.amount_usd > self.max_per_request_usd:
            raise PaymentRefused(
                f"The router asks {format_usd(cheapest.amount_usd)} for this request, above your "
                f"per-request cap of {format_usd(self.max_per_request_usd)} "
                f"({_setting(self.cap_setting)}). Nothing was signed.",
                code="over_cap",
                amount_usd=cheapest.amount_usd,
                limit_usd=self.max_per_request_usd,
                setting=self.cap_setting,
                room_usd=room,
            )
        try:
            check_budgets(cheapest.amount_usd, budgets)
        except PaymentRefused as refusal:
            refusal.room_usd = room
            raise
        return cheapest

    def _admit(self, challenge: PaymentChallenge, requirement: PaymentRequirement) -> Quote:
        if requirement.scheme != "exact":
            raise PaymentRefused(
                f"The router asks {_asked(requirement)} as an {requirement.scheme!r} payment; "
                "only 'exact' payments can be made. Nothing was signed.",
                code="unsupported_scheme",
            )
        method = requirement.extra.get("assetTransferMethod", "eip3009")
        if method != "eip3009":
            raise PaymentRefused(
                f"The router asks {_asked(requirement)} by a {method} transfer; only EIP-3009 "
                "transfer authorizations can be signed. Nothing was signed.",
                code="unsupported_transfer_method",
            )
        network = find_network(requirement.network)
        if network is None or network not in self.networks:
            allowed = ", ".join(net.v1_name for net in self.networks) or "none"
            label = network.label if network else requirement.network
            raise PaymentRefused(
                f"The router asks {_asked(requirement)} on {label}, which is not in your "
                f"allowed networks ({allowed}; setting allowed_networks). Nothing was signed.",
                code="network_not_allowed",
                setting="allowed_networks",
            )
        if requirement.asset.lower() != network.usdc.address.lower():
            raise PaymentRefused(
                f"The router asks {requirement.amount} units of {requirement.asset} on "
                f"{network.label}, a token that is not USDC; only USDC can be paid. "
                "Nothing was signed.",
                code="unknown_asset",
            )
        if requirement.amount <= 0:
            raise PaymentRefused(
                f"The router asks for a payment of {format_usd(Decimal(0))}, which cannot be a "
                "real price. Nothing was signed.",
                code="zero_amount",
            )
        return Quote(challenge, requirement, network, network.usdc)


def _asked(requirement: PaymentRequirement) -> str:
    """What a requirement asks, in dollars when it is USDC on a known network."""
    network = find_network(requirement.network)
    if network is not None and requirement.asset.lower() == network.usdc.address.lower():
        return format_usd(atomic_to_usd(requirement.amount, network.usdc.decimals))
    return f"{requirement.amount} units of the token {requirement.asset}"


def _setting(name: str) -> str:
    """How to name what sets a limit: a setting in config.toml, or an option like --max-price."""
    return name if name.startswith("-") else f"setting {name}"


def unconfirmed(
    amount_usd: Decimal, threshold_usd: Decimal, where: str, advice: str
) -> PaymentRefused:
    """The refusal of a payment above `confirm_above_usd` when nobody can be asked: `where`
    says why not ("there is no terminal to ask on"), `advice` what would pay it."""
    return PaymentRefused(
        f"The router asks {format_usd(amount_usd)}, above confirm_above_usd "
        f"({format_usd(threshold_usd)}), and {where}: {advice}, or raise confirm_above_usd. "
        "Nothing was signed.",
        code="needs_confirmation",
        amount_usd=amount_usd,
        limit_usd=threshold_usd,
        setting="confirm_above_usd",
    )


_BUDGET_NAMES = {"session_budget_usd": "session budget", "daily_budget_usd": "daily budget"}


def check_budgets(amount_usd: Decimal, budgets: Iterable[Budget]) -> None:
    """Raise `PaymentRefused` when `amount_usd` does not fit the room left in every budget."""
    for budget in budgets:
        if amount_usd > budget.remaining_usd:
            name = _BUDGET_NAMES.get(budget.setting, "budget")
            raise PaymentRefused(
                f"The router asks {format_usd(amount_usd)}, but {format_usd(budget.spent_usd)} "
                f"of your {format_usd(budget.limit_usd)} {name} is spent already, leaving "
                f"{format_usd(budget.remaining_usd)} (setting {budget.setting}). "
                "Nothing was signed.",
                code="over_budget",
                amount_usd=amount_usd,
                limit_usd=budget.limit_usd,
                setting=budget.setting,
                room_usd=budget.remaining_usd,
            )


# When nothing is payable, the refusal that best tells the user what to change comes first.
_REFUSAL_ORDER: Sequence[str] = (
    "network_not_allowed",
    "unknown_asset",
    "unsupported_transfer_method",
    "unsupported_scheme",
    "zero_amount",
)


def _most_telling(refusals: list[PaymentRefused]) -> PaymentRefused:
    return min(refusals, key=lambda refusal: _REFUSAL_ORDER.index(refusal.code))
