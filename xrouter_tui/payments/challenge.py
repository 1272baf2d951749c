"""Reading a 402 Payment Required: x402 v1 (JSON body) and v2 (`PAYMENT-REQUIRED` header).

Lenient where the spec is loose (optional fields, a missing `extra`); strict on what moves money
(amounts, addresses): a requirement that cannot be paid safely is dropped, and a challenge with no
payable requirement raises `ChallengeError` naming what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from xrouter_tui import safe_json

__all__ = [
    "PAYMENT_REQUIRED_HEADER",
    "ChallengeError",
    "PaymentChallenge",
    "PaymentRequirement",
    "decode_base64_json",
    "header_value",
    "parse_challenge",
]

PAYMENT_REQUIRED_HEADER = "payment-required"
_DEFAULT_TIMEOUT_SECONDS = 60
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ATOMIC = re.compile(r"^[0-9]{1,78}$")  # a uint256 has at most 78 decimal digits


class ChallengeError(ValueError):
    """The router's 402 could not be understood, so nothing can be paid."""


@dataclass(frozen=True, slots=True)
class PaymentRequirement:
    """One way of paying that a challenge offers (an entry of `accepts`)."""

    scheme: str
    network: str
    amount: int
    asset: str
    pay_to: str
    max_timeout_seconds: int
    extra: Mapping[str, Any]
    resource: str
    description: str
    # The entry exactly as received: v2 echoes it back in `accepted`, compared field by field.
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class PaymentChallenge:
    """What a 402 asks for: the x402 version, the payable requirements and the server's error."""

    x402_version: int
    accepts: tuple[PaymentRequirement, ...]
    error: str | None = None
    # v2 only: the `resource` object, echoed back in the payment.
    resource: Mapping[str, Any] | None = None
    # v2 only: the `extensions` the server declares, echoed back in the payment (x402 v2
    # §5.1.2), with what the client adds to them (its `payment-identifier`).
    extensions: Mapping[str, Any] | None = None


def decode_base64_json(value: str, what: str) -> Any:
    """Decode a header carrying base64 JSON; padding and the URL-safe alphabet are tolerated."""
    text = value.strip()
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        return safe_json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise ChallengeError(f"the {what} header is not base64-encoded JSON") from exc


def parse_challenge(headers: Mapping[str, str], body: bytes | str) -> PaymentChallenge:
    """Parse a 402 response: a `PAYMENT-REQUIRED` header means v2, else a v1 JSON body."""
    header = header_value(headers, PAYMENT_REQUIRED_HEADER)
    if header is not None:
        document = decode_base64_json(header, "PAYMENT-REQUIRED")
        return _parse_document(document, default_version=2, where="PAYMENT-REQUIRED header")
    try:
        document = safe_json.loads(body) if body else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ChallengeError(
            "the 402 response has neither a PAYMENT-REQUIRED header nor a JSON body with accepts"
        )
    return _parse_document(document, default_version=1, where="402 body")


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The header called `name` (lower case), from httpx's headers or a plain dict alike."""
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; httpx.Headers is not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _parse_document(document: Any, *, default_version: int, where: str) -> PaymentChallenge:
    if not isinstance(document, dict):
        raise ChallengeError(f"the {where} is not a JSON object")
    version = document.get("x402Version", default_version)
    if version not in (1, 2) or isinstance(version, bool):
        raise ChallengeError(f"the {where} speaks x402 version {version!r}; 1 and 2 are supported")
    accepts = document.get("accepts")
    if not isinstance(accepts, list) or not accepts:
        error = document.get("error")
        hint = f" (the router said: {error})" if isinstance(error, str) and error else ""
        raise ChallengeError(f"the {where} lists no payment requirements in accepts{hint}")

    resource = document.get("resource") if version == 2 else None
    if resource is not None and not isinstance(resource, dict):
        resource = None
    resource_url = resource.get("url", "") if resource else ""

    parsed: list[PaymentRequirement] = []
    problems: list[str] = []
    for index, entry in enumerate(accepts):
        try:
            parsed.append(_parse_requirement(entry, version, str(resource_url)))
        except ChallengeError as exc:
            problems.append(f"accepts[{index}]: {exc}")
    if not parsed:
        raise ChallengeError(f"no usable payment requirement in the {where}: {problems[0]}")

    error = document.get("error")
    extensions = document.get("extensions") if version == 2 else None
    return PaymentChallenge(
        x402_version=version,
        accepts=tuple(parsed),
        error=error if isinstance(error, str) and error else None,
        resource=resource,
        extensions=extensions if isinstance(extensions, dict) else None,
    )


def _parse_requirement(entry: Any, version: int, resource_url: str) -> PaymentRequirement:
    if not isinstance(entry, dict):
        raise ChallengeError("not a JSON object")
    # v1 says maxAmountRequired, v2 says amount; take either so a half-migrated server works.
    amount_key = "maxAmountRequired" if version == 1 else "amount"
    if amount_key not in entry:
        amount_key = "amount" if version == 1 else "maxAmountRequired"
    amount = _atomic(entry.get(amount_key), "amount" if version == 2 else "maxAmountRequired")
    scheme = _text(entry, "scheme")
    network = _text(entry, "network")
    asset = _address(entry, "asset")
    pay_to = _address(entry, "payTo")

    timeout = entry.get("maxTimeoutSeconds", _DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, str) and timeout.isdigit():
        timeout = int(timeout)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        timeout = _DEFAULT_TIMEOUT_SECONDS

    extra = entry.get("extra")
    if isinstance(extra, str):  # some v1 servers send extra JSON-encoded
        try:
            extra = safe_json.loads(extra)
        except ValueError:
            extra = None
    if not isinstance(extra, dict):
        extra = {}

    description = entry.get("description")
    resource = entry.get("resource") if version == 1 else resource_url
    return PaymentRequirement(
        scheme=scheme,
        network=network,
        amount=amount,
        asset=asset,
        pay_to=pay_to,
        max_timeout_seconds=timeout,
        extra=extra,
        resource=resource if isinstance(resource, str) else "",
        description=description if isinstance(description, str) else "",
        raw=entry,
    )


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ChallengeError(f"{key} is missing")
    return value.strip()


def _address(entry: Mapping[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise ChallengeError(f"{key} is not an 0x address: {value!r}")
    return value


def _atomic(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _ATOMIC.match(value):
        return int(value)
    raise ChallengeError(f"{key} is not a whole number of atomic units: {value!r}")
