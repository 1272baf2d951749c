"""The official x402 SDK's facilitator, as a facilitator runs it in production (its web3 signer
over JSON-RPC), verifies and settles the payments our client signs on the local router's real
EVM: the same token, domain and nonces the dev server settles on. Only loopback is reached."""

from __future__ import annotations

import pytest
from eth_account import Account
from x402.facilitator import x402FacilitatorSync
from x402.http import decode_payment_signature_header
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.mechanisms.evm.exact.v1.facilitator import ExactEvmSchemeV1

from tests.test_interop_x402 import AMOUNT, NETWORKS, PAY_TO, our_payment, sdk_challenge
from xrouter_tui.devserver import DevServerConfig, start_dev_server
from xrouter_tui.devserver.chain import DEV_KEY
from xrouter_tui.payments.reasons import NONCE_ALREADY_USED

FUNDED = 10 * 10**6  # $10
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"


@pytest.fixture(scope="module")
def payer():
    return Account.create()


@pytest.fixture(scope="module")
def chain_router(payer):
    config = DevServerConfig(network="base-sepolia", chain=True, fund={payer.address: FUNDED})
    with start_dev_server(config) as router:
        yield router


def facilitator(rpc_url: str) -> x402FacilitatorSync:
    # The dev account pays the gas, as a facilitator's own key does.
    signer = FacilitatorWeb3Signer(private_key=DEV_KEY, rpc_url=rpc_url)
    sdk = x402FacilitatorSync()
    sdk.register([NETWORKS["base-sepolia"]], ExactEvmFacilitatorScheme(signer))
    sdk.register_v1(["base-sepolia"], ExactEvmSchemeV1(signer))
    return sdk


@pytest.mark.parametrize("version", [1, 2])
def test_the_sdk_facilitator_verifies_and_settles_our_payment_on_the_local_chain(
    chain_router, payer, version
):
    sdk = facilitator(chain_router.rpc_url)
    headers, body, requirement = sdk_challenge(version, "base-sepolia")
    payload = decode_payment_signature_header(our_payment(payer, headers, body).header_value)
    chain = chain_router.chain
    before = chain.balance_of(payer.address), chain.balance_of(PAY_TO)

    verified = sdk.verify(payload, requirement)
    assert (verified.is_valid, verified.invalid_reason) == (True, None)
    settled = sdk.settle(payload, requirement)
    assert (settled.success, settled.error_reason) == (True, None)

    # The transfer happened on the chain our dev server settles on, by exactly the amount.
    assert chain.balance_of(payer.address) == before[0] - AMOUNT
    assert chain.balance_of(PAY_TO) == before[1] + AMOUNT
    # And the chain itself refuses the same authorization again: the simulated transfer
    # reverts. (To name the reason the SDK asks Multicall3, which the local chain does not
    # hold, so its verdict is the generic one; our dev server names it from the chain.)
    replay = sdk.verify(payload, requirement)
    assert not replay.is_valid
    assert replay.invalid_reason in (NONCE_ALREADY_USED, SIMULATION_FAILED)
    refused = sdk.settle(payload, requirement)
    assert not refused.success
    assert chain.balance_of(payer.address) == before[0] - AMOUNT  # charged once
