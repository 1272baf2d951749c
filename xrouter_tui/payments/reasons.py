"""Facilitator error codes, as one sentence a user understands."""

from __future__ import annotations

from decimal import Decimal

from xrouter_tui.payments.networks import Network, format_usd

__all__ = ["explain_rejection", "short_address"]


def short_address(address: str) -> str:
    """`0xabcd…ef12`: enough to recognise a wallet, short enough for a status line."""
    return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def explain_rejection(
    code: str | None,
    *,
    payer: str,
    network: Network,
    amount_usd: Decimal,
) -> str:
    """Why the router refused a signed payment, in plain words, naming the code at the end."""
    wallet = short_address(payer)
    where = network.label
    amount = format_usd(amount_usd)
    code = (code or "").strip()
    no_funds = f"Not enough USDC in {wallet} on {where}: the request needs {amount}."
    bad_domain = (
        "The router's token details do not match the token on chain, so the signature "
        "was refused; the router's payment settings look wrong."
    )
    clock = "is this computer's clock right?"
    known = {
        "insufficient_funds": no_funds,
        "invalid_exact_evm_insufficient_balance": no_funds,
        "invalid_exact_evm_payload_signature": (
            "The router could not verify the payment signature (the token's signing domain "
            "may have changed)."
        ),
        "invalid_exact_evm_failed_to_verify_signature": (
            "The router could not verify the payment signature."
        ),
        "invalid_exact_evm_token_name_mismatch": bad_domain,
        "invalid_exact_evm_token_version_mismatch": bad_domain,
        "missing_eip712_domain": bad_domain,
        "invalid_exact_evm_payload_authorization_value_mismatch": (
            f"The router expected a different amount than the {amount} that was signed."
        ),
        "invalid_exact_evm_payload_recipient_mismatch": (
            "The router expected the payment to go to a different address."
        ),
        "invalid_exact_evm_payload_authorization_valid_before": (
            f"The payment authorization had expired when the router checked it; {clock}"
        ),
        "invalid_exact_evm_payload_authorization_valid_after": (
            f"The payment authorization was not valid yet when the router checked it; {clock}"
        ),
        "invalid_exact_evm_nonce_already_used": (
            "The router saw this payment authorization before (nonce already used)."
        ),
        "invalid_exact_evm_transaction_simulation_failed": (
            f"The transfer from {wallet} on {where} would fail on chain (is there enough USDC?)."
        ),
        "invalid_exact_evm_eip3009_not_supported": (
            f"The token the router asks for on {where} cannot be paid by signature."
        ),
        "asset_not_deployed_contract": f"The token the router asks for does not exist on {where}.",
        "invalid_network": f"The router does not accept payments on {where}.",
        "network_mismatch": f"The router does not accept payments on {where}.",
        "invalid_scheme": "The router does not accept this kind of payment.",
        "unsupported_scheme": "The router does not accept this kind of payment.",
        "invalid_x402_version": "The router speaks another version of the payment protocol.",
        "invalid_payload": "The router could not read the payment.",
        "settlement_pending": "The router is still settling an earlier payment; try again shortly.",
        "transaction_failed": f"The transfer failed on {where}.",
    }
    sentence = known.get(code)
    if sentence is None:
        sentence = "The router refused the payment."
    if not code:
        return sentence
    # The code goes inside the sentence, before its full stop, so sentences still read as prose.
    return f"{sentence[:-1]} ({code})." if sentence.endswith(".") else f"{sentence} ({code})"
