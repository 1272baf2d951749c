"""Facilitator error codes, as one sentence a user understands."""

from __future__ import annotations

import re
from decimal import Decimal

from xrouter_tui.payments.networks import Network, format_usd

__all__ = [
    "NONCE_ALREADY_USED",
    "PROVES_NOT_CHARGED",
    "REJECTION_CODES",
    "explain_rejection",
    "short_address",
]

# An authorization whose nonce is used on chain: only its transfer uses a nonce, so it was
# charged. Said of a payment sent again as it was, it means the first request was charged.
NONCE_ALREADY_USED = "invalid_exact_evm_nonce_already_used"


def short_address(address: str) -> str:
    """`0xabcd…ef12`: enough to recognise a wallet, short enough for a status line."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


_NO_FUNDS = "Not enough USDC in {wallet} on {where}: the request needs {amount}."
_BAD_DOMAIN = (
    "The router's token details do not match the token on chain, so the signature was "
    "refused; the router's payment settings look wrong."
)
_CLOCK = "check that this computer's clock is right."
_WRONG_AMOUNT = "The router expected a different amount than the {amount} that was signed."
_NOT_HERE = "The router does not accept payments on {where} for this request."
_NOT_THIS_KIND = "The router does not accept this kind of payment."
_OTHER_KIND = (
    "The router checked the payment as another kind than the signed USDC authorization it "
    "asked for; its payment settings look wrong."
)
_UNSET_NETWORK = "On {where}, the router is not set up to take payments."

# Every code a facilitator (or the router in front of it) is known to send, as a sentence with
# {wallet} (the payer, shortened), {where} (the network's label) and {amount} (what was signed).
_SENTENCES: dict[str, str] = {
    "insufficient_funds": _NO_FUNDS,
    "invalid_exact_evm_insufficient_balance": _NO_FUNDS,
    "invalid_exact_evm_payload_signature": (
        "The router could not verify the payment signature; the token's signing details may "
        "have changed."
    ),
    "invalid_exact_evm_failed_to_verify_signature": (
        "The router could not verify the payment signature."
    ),
    "invalid_exact_evm_token_name_mismatch": _BAD_DOMAIN,
    "invalid_exact_evm_token_version_mismatch": _BAD_DOMAIN,
    "missing_eip712_domain": _BAD_DOMAIN,
    "invalid_exact_evm_payload_authorization_value": _WRONG_AMOUNT,
    "invalid_exact_evm_payload_authorization_value_mismatch": _WRONG_AMOUNT,
    "invalid_exact_evm_payload_recipient_mismatch": (
        "The router expected the payment to go to a different address."
    ),
    "invalid_exact_evm_payload_authorization_valid_before": (
        f"The payment authorization had expired when the router checked it; {_CLOCK}"
    ),
    "invalid_exact_evm_payload_authorization_valid_after": (
        f"The payment authorization was not valid yet when the router checked it; {_CLOCK}"
    ),
    "payment_expired": (
        f"The payment authorization had expired when the router checked it; {_CLOCK}"
    ),
    "invalid_exact_evm_nonce_already_used": (
        "The router has already seen this payment authorization: its one-time number was "
        "used before."
    ),
    "invalid_exact_evm_transaction_simulation_failed": (
        "The transfer of {amount} from {wallet} on {where} would fail on chain; check that "
        "the wallet holds enough USDC."
    ),
    "invalid_exact_evm_eip3009_not_supported": (
        "The token the router asks for on {where} cannot be paid by signature."
    ),
    "asset_not_deployed_contract": "On {where}, the token the router asks for does not exist.",
    "invalid_network": _NOT_HERE,
    "network_mismatch": _NOT_HERE,
    "invalid_scheme": _NOT_THIS_KIND,
    "unsupported_scheme": _NOT_THIS_KIND,
    "invalid_x402_version": "The router speaks another version of the payment protocol.",
    "invalid_payload": "The router could not read the payment.",
    "invalid_payment_requirements": (
        "The router's own payment terms were invalid, so it could not check the payment."
    ),
    "invalid_transaction_state": "On {where}, the transfer is in an unexpected state.",
    "unexpected_verify_error": "The router failed while checking the payment.",
    "unexpected_settle_error": "The router failed while collecting the payment.",
    "payment_identifier_required": (
        "The router asks for a payment identifier, and this payment carried none."
    ),
    "settlement_pending": (
        "The router sent the transfer and is waiting for it to be confirmed, so it is most "
        "likely charged; sending the request again would pay twice."
    ),
    "transaction_failed": "On {where}, the transfer failed.",
    # The official SDK's newer EVM codes (x402 2.25). Some belong to kinds of payment this
    # client never signs (Permit2, `upto`, smart wallets): a router that sends one checked the
    # payment as another kind than the one it asked for.
    "invalid_exact_evm_failed_to_get_asset_info": (
        "On {where}, the router could not look up the token it asks for."
    ),
    "invalid_exact_evm_failed_to_get_network_config": _UNSET_NETWORK,
    "invalid_upto_evm_failed_to_get_network_config": _UNSET_NETWORK,
    "invalid_exact_evm_transfer_event_mismatch": (
        "On {where}, the transfer the router found does not match the payment that was signed."
    ),
    "invalid_exact_evm_payload_undeployed_smart_wallet": _OTHER_KIND,
    "eip6492_factory_not_allowed": _OTHER_KIND,
    "smart_wallet_deployment_failed": _OTHER_KIND,
    "erc20_approval_broadcast_failed": _OTHER_KIND,
    "erc20_approval_tx_failed": _OTHER_KIND,
    "permit2_allowance_required": _OTHER_KIND,
    "invalid_permit2_spender": _OTHER_KIND,
    "invalid_permit2_owner": _OTHER_KIND,
    "permit2_invalid_owner": _OTHER_KIND,
    "invalid_permit2_signature": _OTHER_KIND,
    "permit2_token_mismatch": _OTHER_KIND,
    "invalid_upto_evm_scheme": _OTHER_KIND,
    "invalid_upto_evm_payload_settlement_exceeds_amount": _OTHER_KIND,
    "invalid_upto_evm_transaction_failed": "On {where}, the transfer failed.",
    "invalid_upto_evm_network_mismatch": _NOT_HERE,
    "upto_facilitator_mismatch": _OTHER_KIND,
    "upto_amount_exceeds_permitted": _OTHER_KIND,
    "upto_unauthorized_facilitator": _OTHER_KIND,
    "permit2_insufficient_balance": _NO_FUNDS,
    "permit2_amount_mismatch": _WRONG_AMOUNT,
    "permit2_deadline_expired": (
        f"The payment authorization had expired when the router checked it; {_CLOCK}"
    ),
    "permit2_not_yet_valid": (
        f"The payment authorization was not valid yet when the router checked it; {_CLOCK}"
    ),
    "invalid_permit2_recipient_mismatch": (
        "The router expected the payment to go to a different address."
    ),
    "permit2_invalid_destination": (
        "The router expected the payment to go to a different address."
    ),
}

REJECTION_CODES: frozenset[str] = frozenset(_SENTENCES)
"""Every code `explain_rejection` has a sentence of its own for."""

_FALLBACK = "The router refused the payment."

# Which refusal codes prove that a payment was not charged: none. Once the signed authorization
# has left the machine, whoever holds it can submit it on chain until its validBefore, whatever
# code the router answers with: "invalid signature" may be a broken or lying router (the program
# checks its own signatures against eth-account's in the tests), "insufficient balance" stops
# being true the moment the wallet is funded, and a facilitator's verdict is the router's word.
# Only time proves it: past validBefore the authorization can no longer settle. So a payment
# refused after it left is kept as `unknown` and counts against the budgets until then (at most
# MAX_VALIDITY_SECONDS, 15 minutes), and `rejected` is kept for what never left the machine.
PROVES_NOT_CHARGED: frozenset[str] = frozenset()
# A code worth repeating to the user: a short line of words, not a JSON document or a page.
_QUOTABLE = re.compile(r"[\w .:/'-]{1,80}")


def explain_rejection(
    code: str | None,
    *,
    payer: str,
    network: Network,
    amount_usd: Decimal,
) -> str:
    """Why the router refused a signed payment, in plain words, naming the code at the end."""
    code = " ".join((code or "").split())
    template = _SENTENCES.get(code, _FALLBACK)
    sentence = template.format(
        wallet=short_address(payer), where=network.label, amount=format_usd(amount_usd)
    )
    if not code or not _QUOTABLE.fullmatch(code):
        return sentence
    # The code goes inside the sentence, before its full stop, so sentences still read as prose.
    return f"{sentence[:-1]} ({code})." if sentence.endswith(".") else f"{sentence} ({code})"
