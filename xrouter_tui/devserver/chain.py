"""A real EVM on loopback for the local router: eth-tester on py-evm, with the USDC token
(`contracts/usdc.vy`) at the configured network's own USDC address and that network's chain
id, so that what the client signs for Base or Base Sepolia settles here as it would there.

Loaded only when a chain starts: py-evm takes about half a second to import. Every call goes
through one lock (py-evm is not made for threads); a transaction mines its own block at once,
and one that reverts is mined all the same with status 0, so every receipt is read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth.exceptions import Revert, VMError
from eth.vm.spoof import SpoofTransaction
from eth_abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_account import Account
from eth_bloom import BloomFilter
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import (
    BlockNotFound,
    TransactionFailed,
    TransactionNotFound,
    ValidationError,
)
from eth_utils import is_hex, to_canonical_address, to_checksum_address

from xrouter_tui.devserver import token
from xrouter_tui.devserver.token import Authorization
from xrouter_tui.payments.networks import Network

__all__ = [
    "DEV_KEY",
    "LocalChain",
    "RpcError",
    "Settlement",
    "TxOutcome",
]

# Hardhat's and Anvil's first development account: a key published for local chains, never
# to hold anything real. The dev server receives payments with it (state.CHAIN_PAY_TO), pays
# the gas of settling them, refunds from it, and mints.
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

# Ether for gas: more than the dev server can spend.
_DEV_ETHER = 10**24
# More than any call to the token takes (transferWithAuthorization: about 86,000).
_GAS = 200_000
# Base's typical tip: 0.001 gwei.
_PRIORITY_FEE = 1_000_000
# Base makes a block every 2 seconds; this chain makes one for each transaction, and an empty
# one when it is read after this long without any, so that its clock (the latest block's
# time, by which validBefore is judged) keeps up with the wall clock as Base's does.
BLOCK_SECONDS = 2
# A revert's data as nodes give it: Error(string), selector 0x08c379a0.
_ERROR_SELECTOR = bytes.fromhex("08c379a0")
_BLOCK_TAGS = ("latest", "earliest", "pending", "safe", "finalized")


class RpcError(Exception):
    """A JSON-RPC error object: `code`, `message` and maybe `data`, as nodes send them."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True, slots=True)
class TxOutcome:
    """A mined transaction as its receipt tells: status 1 done, 0 reverted."""

    transaction: str
    status: int
    block_number: int
    gas_used: int

    @property
    def ok(self) -> bool:
        return self.status == 1


@dataclass(frozen=True, slots=True)
class Settlement:
    """What settling an authorization came to: a mined transaction (read its status), or the
    token's revert reason from the simulation before it, and nothing sent."""

    outcome: TxOutcome | None
    revert: str | None = None


class LocalChain:
    """One network's chain on loopback, with USDC at its real address; thread-safe."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.chain_id = network.chain_id
        self.token = to_checksum_address(network.usdc.address)
        self.account = Account.from_key(DEV_KEY)
        genesis = {
            to_canonical_address(self.token): {
                "balance": 0,
                "nonce": 1,
                "code": token.runtime_code(),
                "storage": token.genesis_storage(network.usdc.eip712_name, self.account.address),
            },
            to_canonical_address(self.account.address): {
                "balance": _DEV_ETHER,
                "nonce": 0,
                "code": b"",
                "storage": {},
            },
        }
        backend = PyEVMBackend(genesis_state=genesis)
        # eth-tester's chain id is its own; py-evm builds each block's context (CHAINID, and
        # the chain id a signed transaction must carry) from this attribute.
        backend.chain.chain_id = network.chain_id
        self._tester = EthereumTester(backend)
        self._lock = threading.RLock()
        # Every log of every mined transaction, in order: eth_getLogs filters this.
        self._logs: list[dict[str, Any]] = []
        self._funded: set[str] = set()
        # Refunds go out here, off the server's event loop and after the answer.
        self._background = ThreadPoolExecutor(1, thread_name_prefix="xrouter-chain")
        self._pending: set[Future[Any]] = set()

    # -- the token ------------------------------------------------------------------------

    def balance_of(self, owner: str) -> int:
        """USDC held by `owner`, in atomic units."""
        return _uint(self._call(token.balance_of_call(owner)))

    def authorization_state(self, authorizer: str, nonce: str) -> bool:
        """True once `authorizer`'s authorization with `nonce` was used."""
        return bool(_uint(self._call(token.authorization_state_call(authorizer, nonce))))

    def mint(self, to: str, amount: int) -> TxOutcome:
        """Create `amount` of test USDC for `to`."""
        return self._send(token.mint_call(to, amount))

    def fund(self, amounts: Mapping[str, int]) -> None:
        """Mint each address its amount, once per address (later calls skip it)."""
        with self._lock:
            for address, amount in amounts.items():
                if address.lower() in self._funded:
                    continue
                self._funded.add(address.lower())
                if amount:
                    outcome = self.mint(address, amount)
                    if not outcome.ok:
                        raise RuntimeError(f"minting for {address} failed on the local chain")

    def transfer(self, to: str, amount: int) -> TxOutcome:
        """Send `amount` of USDC from the dev server's account to `to`."""
        return self._send(token.transfer_call(to, amount))

    def settle(self, authorization: Authorization) -> Settlement:
        """Settle as an x402 facilitator does: simulate `transferWithAuthorization`, and send
        it only if the simulation passes; both under one lock, so nothing comes between."""
        data = token.transfer_with_authorization_call(
            authorization.payer,
            authorization.pay_to,
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            authorization.nonce,
            authorization.signature,
        )
        with self._lock:
            try:
                self._evm_call(self.account.address, self.token, data)
            except TransactionFailed as exc:
                return Settlement(None, _reason(exc))
            return Settlement(self._send(data))

    def refund_later(
        self, to: str, amount: int, on_done: Callable[[str, int], None] | None = None
    ) -> Future[TxOutcome]:
        """Transfer `amount` back to `to` in the background; `on_done(transaction, status)`
        once it is mined."""

        def refund() -> TxOutcome:
            outcome = self.transfer(to, amount)
            if on_done is not None:
                on_done(outcome.transaction, outcome.status)
            return outcome

        future = self._background.submit(refund)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until every background transaction (refunds) is mined."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout)

    def close(self) -> None:
        """Stop taking background work, once what was queued is mined (milliseconds)."""
        self._background.shutdown(wait=True)

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    # -- transactions ---------------------------------------------------------------------

    def _call(self, data: bytes) -> bytes:
        with self._lock:
            return self._evm_call(self.account.address, self.token, data)

    def _evm_call(
        self,
        sender: str,
        to: str,
        data: bytes,
        *,
        value: int = 0,
        gas: int | None = None,
        block: int | str = "latest",
    ) -> bytes:
        """Run a call on the state after `block` and throw the state away, as a node's
        eth_call does: free of gas fees, so a sender without ether may call too (eth-tester's
        own call charges them). A revert raises TransactionFailed with the token's reason."""
        chain = self._tester.backend.chain
        if block in ("earliest", 0):
            header = chain.get_canonical_block_header_by_number(0)
        elif isinstance(block, int):
            head = chain.get_canonical_head()
            if block > head.number:
                raise BlockNotFound(f"no block {block}")
            header = chain.get_canonical_block_header_by_number(block)
        else:
            header = chain.get_canonical_head()
        origin = to_canonical_address(sender)
        unsigned = chain.get_vm(header).create_unsigned_transaction(
            nonce=chain.get_vm(header).state.get_nonce(origin),
            gas_price=0,
            gas=gas or header.gas_limit,
            to=to_canonical_address(to),
            value=value,
            data=data,
        )
        try:
            return chain.get_transaction_result(SpoofTransaction(unsigned, from_=origin), header)
        except Revert as exc:
            raise TransactionFailed(_revert_reason(exc)) from None
        except VMError as exc:
            raise TransactionFailed(str(exc) or type(exc).__name__) from None

    def _send(self, data: bytes) -> TxOutcome:
        """Sign with the dev key, send, mine, and read the receipt."""
        with self._lock:
            base_fee = self._tester.get_block_by_number("pending")["base_fee_per_gas"]
            transaction = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": self._tester.get_nonce(self.account.address),
                "to": self.token,
                "value": 0,
                "data": data,
                "gas": _GAS,
                "maxFeePerGas": 2 * base_fee + _PRIORITY_FEE,
                "maxPriorityFeePerGas": _PRIORITY_FEE,
            }
            signed = self.account.sign_transaction(transaction)
            return self._submit("0x" + signed.raw_transaction.hex())

    def _submit(self, raw: str) -> TxOutcome:
        transaction = self._tester.send_raw_transaction(raw)
        receipt = self._tester.get_transaction_receipt(transaction)
        self._logs.extend(receipt["logs"])
        return TxOutcome(
            transaction, receipt["status"], receipt["block_number"], receipt["gas_used"]
        )

    # -- JSON-RPC -------------------------------------------------------------------------

    def rpc(self, method: str, params: Sequence[Any]) -> Any:
        """Answer one JSON-RPC call as an Ethereum node does (hex quantities, null for what
        is not found); raises RpcError."""
        handler = _METHODS.get(method)
        if handler is None:
            raise RpcError(-32601, f"the method {method} does not exist/is not available")
        with self._lock:
            self._keep_time()
            try:
                return handler(self, list(params))
            except RpcError:
                raise
            except TransactionFailed as exc:
                reason = _reason(exc)
                data = "0x" + (_ERROR_SELECTOR + encode(["string"], [reason])).hex()
                raise RpcError(3, f"execution reverted: {reason}", data) from None
            except (BlockNotFound, TransactionNotFound):
                raise RpcError(-32000, "header not found") from None
            except (ValidationError, ValueError, TypeError, KeyError, IndexError) as exc:
                raise RpcError(-32602, f"invalid params: {exc}") from None

    def _keep_time(self) -> None:
        latest = self._tester.get_block_by_number("latest")
        if time.time() - latest["timestamp"] >= BLOCK_SECONDS:
            self._tester.mine_blocks(1)

    def advance_clock(self, seconds: int) -> None:
        """Mine an empty block `seconds` after the latest one: the chain's clock jumps ahead
        (authorizations expire) and stays ahead of the wall clock from then on."""
        with self._lock:
            latest = self._tester.get_block_by_number("latest")["timestamp"]
            self._tester.time_travel(latest + max(1, seconds))

    def _block_number(self) -> int:
        return self._tester.get_block_by_number("latest")["number"]

    def _rpc_chain_id(self, params: list[Any]) -> str:
        _arity(params, 0)
        return hex(self.chain_id)

    def _rpc_net_version(self, params: list[Any]) -> str:
        _arity(params, 0)
        return str(self.chain_id)

    def _rpc_client_version(self, params: list[Any]) -> str:
        _arity(params, 0)
        return "xrouter-tui-devserver/py-evm"

    def _rpc_syncing(self, params: list[Any]) -> bool:
        _arity(params, 0)
        return False

    def _rpc_accounts(self, params: list[Any]) -> list[str]:
        _arity(params, 0)
        return []

    def _rpc_block_number(self, params: list[Any]) -> str:
        _arity(params, 0)
        return hex(self._block_number())

    def _rpc_gas_price(self, params: list[Any]) -> str:
        _arity(params, 0)
        base_fee = self._tester.get_block_by_number("pending")["base_fee_per_gas"]
        return hex(base_fee + _PRIORITY_FEE)

    def _rpc_priority_fee(self, params: list[Any]) -> str:
        _arity(params, 0)
        return hex(_PRIORITY_FEE)

    def _rpc_get_balance(self, params: list[Any]) -> str:
        _arity(params, 1, 2)
        return hex(self._tester.get_balance(_address(params[0]), _block(params, 1)))

    def _rpc_get_code(self, params: list[Any]) -> str:
        _arity(params, 1, 2)
        return self._tester.get_code(_address(params[0]), _block(params, 1))

    def _rpc_transaction_count(self, params: list[Any]) -> str:
        _arity(params, 1, 2)
        return hex(self._tester.get_nonce(_address(params[0]), _block(params, 1)))

    def _rpc_call(self, params: list[Any]) -> str:
        _arity(params, 1, 3)
        message = _call_object(params[0])
        output = self._evm_call(
            message["from"],
            message["to"],
            _bytes(message["data"]),
            value=message.get("value", 0),
            gas=message.get("gas"),
            block=_block(params, 1),
        )
        return "0x" + output.hex()

    def _rpc_estimate_gas(self, params: list[Any]) -> str:
        _arity(params, 1, 3)
        return hex(self._tester.estimate_gas(_call_object(params[0]), _block(params, 1)))

    def _rpc_send_raw(self, params: list[Any]) -> str:
        _arity(params, 1)
        raw = _data(params[0])
        try:
            return self._submit(raw).transaction
        except ValidationError as exc:
            raise RpcError(-32000, str(exc)) from None

    def _rpc_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1)
        try:
            receipt = self._tester.get_transaction_receipt(_hash(params[0]))
        except TransactionNotFound:
            return None
        if receipt is None or receipt.get("block_number") is None:
            return None
        shaped = _node(receipt, skip=("state_root",))
        shaped["logs"] = [_log(entry) for entry in receipt["logs"]]
        shaped["logsBloom"] = _bloom(receipt["logs"])
        shaped.setdefault("contractAddress", None)
        return shaped

    def _rpc_transaction(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1)
        try:
            found = self._tester.get_transaction_by_hash(_hash(params[0]))
        except TransactionNotFound:
            return None
        return _transaction(found)

    def _rpc_block_by_number(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1, 2)
        full = bool(params[1]) if len(params) > 1 else False
        try:
            block = self._tester.get_block_by_number(_block(params, 0), full)
        except BlockNotFound:
            return None
        return _block_shape(block)

    def _rpc_block_by_hash(self, params: list[Any]) -> dict[str, Any] | None:
        _arity(params, 1, 2)
        full = bool(params[1]) if len(params) > 1 else False
        try:
            block = self._tester.get_block_by_hash(_hash(params[0]), full)
        except BlockNotFound:
            return None
        return _block_shape(block)

    def _rpc_logs(self, params: list[Any]) -> list[dict[str, Any]]:
        _arity(params, 1)
        query = params[0]
        if not isinstance(query, dict):
            raise RpcError(-32602, "invalid params: the filter must be an object")
        latest = self._block_number()
        block_hash = query.get("blockHash")
        wanted = _hash(block_hash).lower() if block_hash is not None else None
        low = self._height(query.get("fromBlock"), latest)
        high = self._height(query.get("toBlock"), latest)

        def in_range(entry: Mapping[str, Any]) -> bool:
            if wanted is not None:
                return entry["block_hash"].lower() == wanted
            return low <= entry["block_number"] <= high

        addresses = _addresses(query.get("address"))
        topics = _topic_filter(query.get("topics"))
        return [
            _log(entry)
            for entry in self._logs
            if in_range(entry)
            and (addresses is None or entry["address"].lower() in addresses)
            and _topics_match(entry["topics"], topics)
        ]

    def _height(self, value: Any, latest: int) -> int:
        if value is None or value in ("latest", "safe", "finalized", "pending"):
            return latest
        if value == "earliest":
            return 0
        return _quantity(value)


_METHODS: dict[str, Callable[[LocalChain, list[Any]], Any]] = {
    "eth_chainId": LocalChain._rpc_chain_id,
    "net_version": LocalChain._rpc_net_version,
    "web3_clientVersion": LocalChain._rpc_client_version,
    "eth_syncing": LocalChain._rpc_syncing,
    "eth_accounts": LocalChain._rpc_accounts,
    "eth_blockNumber": LocalChain._rpc_block_number,
    "eth_gasPrice": LocalChain._rpc_gas_price,
    "eth_maxPriorityFeePerGas": LocalChain._rpc_priority_fee,
    "eth_getBalance": LocalChain._rpc_get_balance,
    "eth_getCode": LocalChain._rpc_get_code,
    "eth_getTransactionCount": LocalChain._rpc_transaction_count,
    "eth_call": LocalChain._rpc_call,
    "eth_estimateGas": LocalChain._rpc_estimate_gas,
    "eth_sendRawTransaction": LocalChain._rpc_send_raw,
    "eth_getTransactionReceipt": LocalChain._rpc_receipt,
    "eth_getTransactionByHash": LocalChain._rpc_transaction,
    "eth_getBlockByNumber": LocalChain._rpc_block_by_number,
    "eth_getBlockByHash": LocalChain._rpc_block_by_hash,
    "eth_getLogs": LocalChain._rpc_logs,
}


# -- reading params -----------------------------------------------------------------------


def _arity(params: list[Any], least: int, most: int | None = None) -> None:
    most = least if most is None else most
    if not least <= len(params) <= most:
        expected = str(least) if least == most else f"{least} to {most}"
        raise RpcError(-32602, f"invalid params: expected {expected}, got {len(params)}")


def _quantity(value: Any) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise RpcError(-32602, f"invalid params: not a hex quantity: {str(value)[:80]!r}")
    try:
        return int(value, 16)
    except ValueError:
        raise RpcError(-32602, f"invalid params: not a hex quantity: {value[:80]!r}") from None


def _block(params: list[Any], index: int) -> int | str:
    value = params[index] if len(params) > index else "latest"
    if isinstance(value, dict):  # EIP-1898: {"blockNumber": …} or {"blockHash": …}
        value = value.get("blockNumber", "latest")
    if value in _BLOCK_TAGS:
        return value
    return _quantity(value)


def _data(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or not is_hex(value):
        raise RpcError(-32602, "invalid params: not 0x-prefixed hex data")
    if len(value) % 2:
        raise RpcError(-32602, "invalid params: hex data of an odd length")
    return value


def _address(value: Any) -> str:
    data = _data(value)
    if len(data) != 42:
        raise RpcError(-32602, f"invalid params: not an address: {data[:80]!r}")
    return to_checksum_address(data)


def _hash(value: Any) -> str:
    data = _data(value)
    if len(data) != 66:
        raise RpcError(-32602, f"invalid params: not a 32-byte hash: {data[:80]!r}")
    return data


def _call_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RpcError(-32602, "invalid params: the call must be an object")
    message: dict[str, Any] = {
        "from": _address(value["from"]) if value.get("from") else "0x" + "00" * 20,
        "to": _address(value.get("to")),
        "data": _data(value.get("data") or value.get("input") or "0x"),
    }
    for key, name in (
        ("value", "value"),
        ("gas", "gas"),
        ("gasPrice", "gas_price"),
        ("maxFeePerGas", "max_fee_per_gas"),
        ("maxPriorityFeePerGas", "max_priority_fee_per_gas"),
    ):
        if value.get(key) is not None:
            message[name] = _quantity(value[key])
    return message


def _addresses(value: Any) -> set[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return {_address(item).lower() for item in items}


def _topic_filter(value: Any) -> list[set[str] | None]:
    """eth_getLogs' topics: a list whose each place is null (anything), a topic, or a list of
    topics (any of them)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RpcError(-32602, "invalid params: topics must be a list")
    places: list[set[str] | None] = []
    for place in value:
        if place is None:
            places.append(None)
        elif isinstance(place, list):
            places.append({_hash(item).lower() for item in place} or None)
        else:
            places.append({_hash(place).lower()})
    return places


def _topics_match(topics: Sequence[str], wanted: list[set[str] | None]) -> bool:
    # As geth: a filter with more places than the log has topics does not match it.
    if len(wanted) > len(topics):
        return False
    return all(place is None or topics[i].lower() in place for i, place in enumerate(wanted))


# -- node-shaped answers ------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _hexed(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return _node(value)
    if isinstance(value, list | tuple):
        return [_hexed(item) for item in value]
    return value


def _node(document: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """eth-tester's snake_case, integer-valued dict as a node's camelCase, hex-valued one."""
    omitted = set(skip)
    return {_camel(key): _hexed(value) for key, value in document.items() if key not in omitted}


def _log(entry: Mapping[str, Any]) -> dict[str, Any]:
    shaped = _node(entry, skip=("type",))
    shaped["removed"] = False
    return shaped


def _transaction(found: Mapping[str, Any]) -> dict[str, Any]:
    shaped = _node(found, skip=("data",))
    shaped["input"] = found.get("data", "0x")
    return shaped


def _block_shape(block: Mapping[str, Any]) -> dict[str, Any]:
    shaped = _node(block, skip=("coinbase", "transactions"))
    shaped["miner"] = block.get("coinbase")
    shaped["logsBloom"] = "0x" + int(block.get("logs_bloom") or 0).to_bytes(256, "big").hex()
    shaped["transactions"] = [
        _transaction(item) if isinstance(item, Mapping) else item
        for item in block.get("transactions", ())
    ]
    return shaped


def _bloom(logs: Iterable[Mapping[str, Any]]) -> str:
    bloom = BloomFilter()
    for entry in logs:
        bloom.add(_bytes(entry["address"]))
        for topic in entry["topics"]:
            bloom.add(_bytes(topic))
    return "0x" + int(bloom).to_bytes(256, "big").hex()


# -- small conversions --------------------------------------------------------------------


def _bytes(value: str | bytes) -> bytes:
    return bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value)


def _uint(data: bytes) -> int:
    return decode(["uint256"], data)[0]


def _revert_reason(exc: Revert) -> str:
    """A revert's Error(string) message, else its data in hex."""
    data = exc.args[0] if exc.args and isinstance(exc.args[0], bytes) else b""
    if data[:4] == _ERROR_SELECTOR:
        try:
            return decode(["string"], data[4:])[0]
        except DecodingError:
            pass
    return "0x" + data.hex()


def _reason(exc: TransactionFailed) -> str:
    reason = exc.args[0] if exc.args else ""
    if isinstance(reason, bytes):
        return "0x" + reason.hex()
    return str(reason)
