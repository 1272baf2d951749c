"""Settings: defaults, overridden by `config.toml` in the config dir, the environment, then flags.

Every problem in the file is one `ConfigError` line naming the file, the key and what it expects.
"""

from __future__ import annotations

import math
import os
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import platformdirs
import tomlkit

from xrouter_tui.payments import NETWORKS, Network, find_network

__all__ = [
    "APP_NAME",
    "DEFAULT_BASE_URL",
    "DEFAULT_RPC_URLS",
    "ConfigError",
    "Settings",
    "config_dir",
    "data_dir",
    "ensure_private_dir",
    "load_settings",
    "rpc_setting",
    "save_setting",
]

APP_NAME = "xrouter-tui"
DEFAULT_BASE_URL = "https://api.x-router.ai"
CONFIG_FILE = "config.toml"
# The public JSON-RPC endpoints of Base and Base Sepolia (rate-limited; a user may set their
# own): where the wallet's balance and the fate of its payments are read.
DEFAULT_RPC_URLS = {"base": "https://mainnet.base.org", "base-sepolia": "https://sepolia.base.org"}


def rpc_setting(network: Network | str) -> str:
    """The setting that holds a network's RPC endpoint: `rpc_url_base`, `rpc_url_base_sepolia`."""
    name = network if isinstance(network, str) else network.v1_name
    return "rpc_url_" + name.replace("-", "_")


class ConfigError(ValueError):
    """A setting is missing its mark: the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the user can set. Field names are the keys of config.toml (a contract)."""

    base_url: str = DEFAULT_BASE_URL
    model: str = "anthropic/claude-3.5-sonnet"
    # The router charges up front for max_tokens of output: a small default keeps the price low.
    max_tokens: int = 1024
    temperature: float | None = None
    # The most earlier exchanges (a question and its answer) a turn sends; None: as many as fit
    # the router's limits and the model's context. Fewer keep turns cheap.
    context_messages: int | None = None
    system_prompt: str = ""
    theme: str = "textual-dark"
    max_per_request_usd: Decimal = Decimal("0.50")
    confirm_above_usd: Decimal = Decimal("0.10")
    session_budget_usd: Decimal | None = None
    daily_budget_usd: Decimal | None = None
    allowed_networks: tuple[str, ...] = ("base",)
    connect_timeout: float = 10.0
    first_byte_timeout: float = 120.0
    idle_timeout: float = 60.0
    # The most the client takes from a router (README: "What the client does not trust"): an
    # answer's text, one line of a stream, a JSON document from a free endpoint or a whole
    # answer, an error body (read that far, the rest discarded); and the proxy's largest request.
    max_answer_bytes: int = 4_000_000
    max_line_bytes: int = 1_000_000
    max_document_bytes: int = 8_000_000
    max_error_bytes: int = 65_536
    proxy_max_request_bytes: int = 8_000_000
    # Where the wallet's chain is read (its USDC balance, whether a payment was used, the
    # refunds that came back): a JSON-RPC endpoint per network. `XROUTER_RPC_URL` sets both.
    rpc_url_base: str = DEFAULT_RPC_URLS["base"]
    rpc_url_base_sepolia: str = DEFAULT_RPC_URLS["base-sepolia"]

    @property
    def networks(self) -> tuple[Network, ...]:
        """The allowed networks as `Network`s (names were checked when the settings were read)."""
        return tuple(net for name in self.allowed_networks if (net := find_network(name)))

    @property
    def rpc_urls(self) -> dict[str, str]:
        """Each known network's RPC endpoint, by its x402 v1 name."""
        return {net.v1_name: getattr(self, rpc_setting(net)) for net in NETWORKS}


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where config.toml lives: `XROUTER_CONFIG_DIR`, else the platform's user config dir."""
    override = env.get("XROUTER_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where the app keeps what it learns: `XROUTER_DATA_DIR`, else the platform's user data dir."""
    override = env.get("XROUTER_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def ensure_private_dir(path: Path) -> Path:
    """Create `path` if needed, readable by the user alone (0700), and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def save_setting(key: str, value: Any, env: Mapping[str, str] = os.environ) -> Path:
    """Set one key in config.toml, keeping the rest of the file and its comments as they were.

    The new value is checked first, and the file is replaced in one step: an invalid value or a
    crash halfway never leaves a broken config behind.
    """
    path = config_dir(env) / CONFIG_FILE
    if key not in _FIELD_NAMES:
        raise ConfigError(f"{path}: unknown setting {key!r}")
    _check(key, value, source=str(path))
    text = _read_config(path)
    try:
        document = tomlkit.parse(text or "")
    except Exception as exc:  # tomlkit's parse errors share no public base class
        raise ConfigError(f"{path}: not valid TOML ({exc}); {key} was not saved") from None
    document[key] = value
    if path.is_symlink():
        # A config kept elsewhere (a dotfiles folder) is written where it lives: the link stays.
        path = path.resolve()
    try:
        ensure_private_dir(path.parent)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be written ({exc.strerror})") from None
    try:
        # mkstemp creates the file 0600; the rename makes the change all or nothing.
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(tomlkit.dumps(document))
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot be written ({exc.strerror})") from None
    return path


def load_settings(env: Mapping[str, str] = os.environ) -> Settings:
    """Defaults, then config.toml if present, then `XROUTER_BASE_URL` and `XROUTER_RPC_URL`."""
    path = config_dir(env) / CONFIG_FILE
    settings = Settings()
    text = _read_config(path)
    if text is not None:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        settings = apply_settings(settings, document, source=str(path))
    base_url = env.get("XROUTER_BASE_URL")
    if base_url:
        settings = apply_settings(settings, {"base_url": base_url}, source="XROUTER_BASE_URL")
    rpc_url = env.get("XROUTER_RPC_URL")
    if rpc_url:
        # One endpoint for every network: each read checks the chain it serves first.
        every = {rpc_setting(net): rpc_url for net in NETWORKS}
        settings = apply_settings(settings, every, source="XROUTER_RPC_URL")
    return settings


def _read_config(path: Path) -> str | None:
    """The text of config.toml, or None when there is none (the defaults hold).

    Only a file that is plainly not there means no settings: one that is there but cannot be
    read (a link to nothing, a folder, no permission) would silently drop the user's caps and
    budgets, so it is an error.
    """
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        for link in (path, path.parent):
            if link.is_symlink() and not link.exists():
                raise ConfigError(
                    f"{link}: cannot be read: it links to {os.readlink(link)}, which does not exist"
                ) from None
        return None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a settings file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


_FIELD_NAMES = frozenset(field.name for field in fields(Settings))
# The range of a size limit: below 1 KiB nothing useful fits; above 1 GB nothing is bounded.
_BYTES = (1024, 1_000_000_000)


def apply_settings(settings: Settings, values: Mapping[str, Any], *, source: str) -> Settings:
    """`settings` with `values` checked and applied; `source` names where they came from."""
    known = _FIELD_NAMES
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )
        changes[key] = _check(key, value, source)
    return replace(settings, **changes)


def _check(key: str, value: Any, source: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {key} must be {expected}, got {value!r}")

    if key == "base_url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise fail("an http:// or https:// URL")
        return value.rstrip("/")
    if key.startswith("rpc_url_"):
        if not isinstance(value, str) or not value.strip().startswith(("http://", "https://")):
            # Not quoted: an endpoint's URL often holds an API key.
            raise ConfigError(f"{source}: {key} must be an http:// or https:// URL")
        return value.strip()
    if key in ("model", "theme"):
        if not isinstance(value, str) or not value.strip():
            raise fail("a non-empty string")
        return value.strip()
    if key == "system_prompt":
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if key == "max_tokens":
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 128_000:
            raise fail("a whole number from 1 to 128000")
        return value
    if key == "context_messages":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 49:
            raise fail("a whole number of exchanges from 0 to 49 (0: none but the question)")
        return value
    if key == "temperature":
        if not _is_number(value) or not 0 <= value <= 2:
            raise fail("a number from 0 to 2")
        return float(value)
    if key.endswith("_timeout"):
        # nan and inf are TOML floats too: neither is a number of seconds to wait.
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise fail("a number of seconds above 0")
        return float(value)
    if key.endswith("_bytes"):
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not _BYTES[0] <= value <= _BYTES[1]
        ):
            raise fail(f"a whole number of bytes from {_BYTES[0]} to {_BYTES[1]}")
        return value
    if key.endswith("_usd"):
        amount = _usd(value)
        optional = key in ("session_budget_usd", "daily_budget_usd")
        if amount is None or amount < 0 or (amount == 0 and not optional):
            raise fail(
                "an amount in dollars, like 0.25 (0 for no budget)"
                if optional
                else "an amount in dollars above 0, like 0.25"
            )
        return amount if amount > 0 else None  # a budget of 0 means none, as when absent
    if key == "allowed_networks":
        names = [value] if isinstance(value, str) else value
        known = ", ".join(f'"{net.v1_name}"' for net in NETWORKS)
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise fail(f"a list of network names ({known})")
        unknown = [name for name in names if find_network(name) is None]
        if unknown:
            raise fail(f"a list of known network names ({known})")
        return tuple(find_network(name).v1_name for name in names)  # type: ignore[union-attr]
    raise fail("something else")  # pragma: no cover - every field is handled above


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _usd(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | str):
        try:
            amount = Decimal(str(value).strip().lstrip("$"))
        except InvalidOperation:
            return None
        return amount if amount.is_finite() else None
    return None
