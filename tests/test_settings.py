"""Settings from config.toml and the environment; the key from XROUTER_PRIVATE_KEY."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_account import Account

from xrouter_tui.config import ConfigError, Settings, load_settings
from xrouter_tui.payments import BASE, BASE_SEPOLIA
from xrouter_tui.wallet import WalletError, account_from_key, load_account, redact


def write_config(home, text: str) -> None:
    folder = home / "config"
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text(text, encoding="utf-8")


def test_defaults_hold_without_a_file(monkeypatch):
    monkeypatch.delenv("XROUTER_RPC_URL", raising=False)
    settings = load_settings()
    assert settings == Settings()
    assert settings.rpc_urls == {
        "base": "https://mainnet.base.org",
        "base-sepolia": "https://sepolia.base.org",
    }
    assert settings.max_tokens == 1024
    assert settings.max_per_request_usd == Decimal("0.50")
    assert settings.networks == (BASE,)


def test_the_file_and_the_environment_override_defaults(isolated_environment, monkeypatch):
    write_config(
        isolated_environment,
        'model = "openai/gpt-4o"\nmax_tokens = 300\nmax_per_request_usd = 0.05\n'
        'allowed_networks = ["base", "eip155:84532"]\nidle_timeout = 5\n'
        'base_url = "http://127.0.0.1:1/"\n',
    )
    monkeypatch.setenv("XROUTER_BASE_URL", "http://127.0.0.1:2")
    settings = load_settings()
    assert settings.model == "openai/gpt-4o"
    assert settings.max_tokens == 300
    assert settings.max_per_request_usd == Decimal("0.05")
    assert settings.networks == (BASE, BASE_SEPOLIA)
    assert settings.idle_timeout == 5.0
    assert settings.base_url == "http://127.0.0.1:2"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("max_tokens = 0", "max_tokens must be a whole number from 1 to 128000, got 0"),
        ('max_tokens = "abc"', "max_tokens must be a whole number"),
        ("context_messages = 50", "context_messages must be a whole number of exchanges from 0"),
        ("context_messages = -1", "context_messages must be a whole number of exchanges from 0"),
        ("temperature = 3", "temperature must be a number from 0 to 2"),
        ("max_per_request_usd = -1", "max_per_request_usd must be an amount in dollars"),
        ("max_per_request_usd = 0", "max_per_request_usd must be an amount in dollars above 0"),
        (
            'daily_budget_usd = "lots"',
            "daily_budget_usd must be an amount in dollars, like 0.25 (0 for no budget), got",
        ),
        ('allowed_networks = ["ethereum"]', "allowed_networks must be a list of known network"),
        ('base_url = "ftp://x"', "base_url must be an http:// or https:// URL"),
        ("idle_timeout = 0", "idle_timeout must be a number of seconds above 0"),
        ("colour = 1", "unknown setting 'colour'"),
        ("max_tokens = ", "not valid TOML"),
    ],
)
def test_a_bad_setting_is_one_line_naming_file_and_key(isolated_environment, text, words):
    write_config(isolated_environment, text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(str(isolated_environment / "config" / "config.toml"))
    assert words in message
    assert "\n" not in message


def test_each_network_has_its_rpc_endpoint_and_the_environment_sets_them_all(
    isolated_environment, monkeypatch
):
    monkeypatch.delenv("XROUTER_RPC_URL", raising=False)
    write_config(isolated_environment, 'rpc_url_base = "https://base.example/v2/KEY"\n')
    settings = load_settings()
    assert settings.rpc_url_base == "https://base.example/v2/KEY"
    assert settings.rpc_urls["base-sepolia"] == "https://sepolia.base.org"
    monkeypatch.setenv("XROUTER_RPC_URL", "http://127.0.0.1:8545")
    assert set(load_settings().rpc_urls.values()) == {"http://127.0.0.1:8545"}


def test_a_bad_rpc_url_is_named_without_being_repeated(isolated_environment):
    # An endpoint's URL often carries an API key: the message names the key, not the value.
    write_config(isolated_environment, 'rpc_url_base_sepolia = "wss://node/SECRET"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "rpc_url_base_sepolia must be an http:// or https:// URL" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_a_zero_budget_means_no_budget(isolated_environment):
    write_config(isolated_environment, "daily_budget_usd = 0\nsession_budget_usd = 2.5\n")
    settings = load_settings()
    assert settings.daily_budget_usd is None
    assert settings.session_budget_usd == Decimal("2.5")


def test_the_key_is_read_from_the_environment_with_or_without_0x():
    account = Account.create()
    bare = account.key.hex().removeprefix("0x")
    assert load_account({"XROUTER_PRIVATE_KEY": bare}).address == account.address
    assert load_account({"XROUTER_PRIVATE_KEY": f" 0x{bare}\n"}).address == account.address
    assert load_account({}) is None


@pytest.mark.parametrize(
    "bad",
    ["0x" + "ab" * 31, "zz" * 32, "0x" + "00" * 32, "f" * 64, "0x" + "ab" * 33],
)
def test_a_bad_key_is_refused_without_being_repeated(bad):
    with pytest.raises(WalletError) as caught:
        account_from_key(bad, source="XROUTER_PRIVATE_KEY")
    text = str(caught.value) + repr(caught.value)
    assert bad.removeprefix("0x") not in text
    assert caught.value.__cause__ is None  # nothing underneath that could quote it


def test_redact_removes_every_spelling_of_the_key():
    secret = "0x" + "aB" * 32
    text = f"one {secret} two {secret[2:].upper()} three"
    cleaned = redact(text, secret)
    assert "ab" * 32 not in cleaned.lower()
    assert cleaned.count("[redacted]") == 2
