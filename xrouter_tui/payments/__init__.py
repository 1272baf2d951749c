"""x402 without I/O: read a 402, choose under a spending policy, sign, encode, read a receipt."""

from xrouter_tui.payments.challenge import (
    ChallengeError,
    PaymentChallenge,
    PaymentRequirement,
    parse_challenge,
)
from xrouter_tui.payments.networks import (
    BASE,
    BASE_SEPOLIA,
    NETWORKS,
    Asset,
    Network,
    atomic_to_usd,
    find_network,
    format_usd,
    network_label,
    usd_to_atomic,
)
from xrouter_tui.payments.policy import (
    Budget,
    PaymentRefused,
    Quote,
    SpendingPolicy,
    check_budgets,
    unconfirmed,
)
from xrouter_tui.payments.reasons import explain_rejection, short_address
from xrouter_tui.payments.receipt import Receipt, decode_receipt, read_receipt
from xrouter_tui.payments.signer import Signer, WalletKey
from xrouter_tui.payments.signing import SignedPayment, authorization_typed_data, sign_payment

__all__ = [
    "BASE",
    "BASE_SEPOLIA",
    "NETWORKS",
    "Asset",
    "Budget",
    "ChallengeError",
    "Network",
    "PaymentChallenge",
    "PaymentRefused",
    "PaymentRequirement",
    "Quote",
    "Receipt",
    "SignedPayment",
    "Signer",
    "SpendingPolicy",
    "WalletKey",
    "atomic_to_usd",
    "authorization_typed_data",
    "check_budgets",
    "decode_receipt",
    "explain_rejection",
    "find_network",
    "format_usd",
    "network_label",
    "parse_challenge",
    "read_receipt",
    "short_address",
    "sign_payment",
    "unconfirmed",
    "usd_to_atomic",
]
