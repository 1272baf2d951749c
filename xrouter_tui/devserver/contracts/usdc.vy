# pragma version 0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title USDC for the local router's chain
@notice A dollar token with USDC's interface where x402 uses it: balances with 6 decimals,
        `transfer`, EIP-3009 `transferWithAuthorization` (the v, r, s form, which x402
        settlers call for a 65-byte signature), `authorizationState`, and the EIP-712 domain USDC signs with.
@dev The local chain places this contract's runtime code at USDC's own address in its genesis
     state: no constructor runs, so `name` and `minter` are storage the genesis sets, and the
     domain is built from `name`, VERSION, chain.id and self on every call, as USDC's is.
     Revert reasons are USDC's own, so a settler can tell the causes apart as it would on Base.
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)

VERSION: constant(String[1]) = "2"
EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: public(constant(bytes32)) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,"
    "uint256 validBefore,bytes32 nonce)"
)
# Half the order of secp256k1: a signature with a higher s is the malleable twin of another.
MAX_S: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

# Set in the genesis state (slots 0 to 2, see xrouter_tui/devserver/token.py).
name: public(String[32])
minter: public(address)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
_authorizations: HashMap[address, HashMap[bytes32, bool]]


@external
@pure
def symbol() -> String[4]:
    return "USDC"


@external
@pure
def decimals() -> uint8:
    return 6


@external
@pure
def version() -> String[1]:
    return VERSION


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@external
@view
def authorizationState(authorizer: address, nonce: bytes32) -> bool:
    return self._authorizations[authorizer][nonce]


@external
def transfer(to: address, amount: uint256) -> bool:
    self._transfer(msg.sender, to, amount)
    return True


@external
def mint(to: address, amount: uint256) -> bool:
    assert msg.sender == self.minter, "FiatToken: caller is not a minter"
    assert to != empty(address), "FiatToken: mint to the zero address"
    self.totalSupply += amount
    self.balanceOf[to] += amount
    log Transfer(sender=empty(address), receiver=to, value=amount)
    return True


@external
def transferWithAuthorization(
    _from: address,
    to: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    self._transfer_with_authorization(
        _from, to, amount, validAfter, validBefore, nonce, v, convert(r, uint256), convert(s, uint256)
    )


@internal
@view
def _domain_separator() -> bytes32:
    return keccak256(
        abi_encode(
            EIP712_DOMAIN_TYPEHASH,
            keccak256(self.name),
            keccak256(VERSION),
            chain.id,
            self,
        )
    )


@internal
def _transfer_with_authorization(
    _from: address,
    to: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: uint256,
    s: uint256,
):
    assert block.timestamp > validAfter, "FiatTokenV2: authorization is not yet valid"
    assert block.timestamp < validBefore, "FiatTokenV2: authorization is expired"
    assert not self._authorizations[_from][nonce], "FiatTokenV2: authorization is used or canceled"
    struct_hash: bytes32 = keccak256(
        abi_encode(
            TRANSFER_WITH_AUTHORIZATION_TYPEHASH, _from, to, amount, validAfter, validBefore, nonce
        )
    )
    digest: bytes32 = keccak256(concat(x"1901", self._domain_separator(), struct_hash))
    assert v == 27 or v == 28, "FiatTokenV2: invalid signature"
    assert s <= MAX_S, "FiatTokenV2: invalid signature"
    signer: address = ecrecover(digest, v, r, s)
    assert signer != empty(address) and signer == _from, "FiatTokenV2: invalid signature"
    self._authorizations[_from][nonce] = True
    log AuthorizationUsed(authorizer=_from, nonce=nonce)
    self._transfer(_from, to, amount)


@internal
def _transfer(sender: address, to: address, amount: uint256):
    assert to != empty(address), "ERC20: transfer to the zero address"
    assert self.balanceOf[sender] >= amount, "ERC20: transfer amount exceeds balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[to] += amount
    log Transfer(sender=sender, receiver=to, value=amount)
