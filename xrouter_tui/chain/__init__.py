"""JSON-RPC reads of the wallet's chain: its USDC balance, whether an authorization was used,
the transfers and authorizations in a range of blocks, a transaction's receipt.

No web3: httpx and a few hex words. Beside `api/`, never importing Textual; `commands/` and
`ui/` hand what they need of it to `api/` as plain callables.
"""

from xrouter_tui.chain.balance import Balance, BalanceWatch
from xrouter_tui.chain.reader import BLOCK_SECONDS, Block, ChainReaders, TxReceipt, UsdcReader
from xrouter_tui.chain.rpc import RPC_TIMEOUTS, ChainError, JsonRpc, rpc_host
from xrouter_tui.chain.usdc import AuthorizationUsedLog, TransferLog

__all__ = [
    "BLOCK_SECONDS",
    "RPC_TIMEOUTS",
    "AuthorizationUsedLog",
    "Balance",
    "BalanceWatch",
    "Block",
    "ChainError",
    "ChainReaders",
    "JsonRpc",
    "TransferLog",
    "TxReceipt",
    "UsdcReader",
    "rpc_host",
]
