"""Configuration loading: files, environment overrides, validation, secrets."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from oracle import config
from oracle.errors import ConfigError
from tests.conftest import ROOT


@pytest.mark.parametrize("name", ["default.toml", "dev.toml", "production.example.toml"])
def test_shipped_config_files_load(name: str) -> None:
    loaded = config.load(ROOT / "config" / name, {})
    assert loaded.crosscheck.quorum >= 1


def test_environment_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[database]\nurl = "sqlite+aiosqlite:///a.sqlite"\n[crosscheck]\nquorum = 2\n')
    loaded = config.load(
        path,
        {
            "ORACLE_DATABASE__URL": "postgresql+asyncpg://u@h/db",
            "ORACLE_CROSSCHECK__QUORUM": "3",
            "ORACLE_MONITOR__WEBHOOKS": "http://a/x, http://b/y",
            "ORACLE_API__ENABLED": "false",
            "UNRELATED": "1",
        },
    )
    assert loaded.database.url == "postgresql+asyncpg://u@h/db"
    assert loaded.crosscheck.quorum == 3
    assert loaded.monitor.webhooks == ("http://a/x", "http://b/y")
    assert loaded.api.enabled is False


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[network]\nname = "moonnet"\n'
        "[crosscheck]\nquorum = 0\nconfirmation = 6\n"
        '[api]\nport = "eighty"\n'
        '[[sources]]\nname = "x"\nkind = "ftp"\nbase_url = "ftp://x"\n'
        "[nonsense]\na = 1\n"
    )
    with pytest.raises(ConfigError) as info:
        config.load(path, {"ORACLE_LOGGING__LEVEL": "info"})
    message = str(info.value)
    for fragment in (
        "crosscheck.confirmation: unknown key",
        "api.port: expected a number",
        "nonsense: unknown section",
    ):
        assert fragment in message


def test_cross_field_validation(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[network]\nname = "moonnet"\n[crosscheck]\nquorum = 0\n'
        '[[sources]]\nname = "x"\nkind = "ftp"\nbase_url = "ftp://x"\n'
    )
    with pytest.raises(ConfigError) as info:
        config.load(path, {})
    message = str(info.value)
    assert "network.name: unknown network 'moonnet'" in message
    assert "crosscheck.quorum: must be >= 1" in message
    assert "sources[0].kind" in message and "sources[0].base_url" in message


def test_secrets_refused_in_files_and_masked(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text('[bitcoind]\nrpc_password = "hunter2"\n')
    with pytest.raises(ConfigError, match="ORACLE_BITCOIND__RPC_PASSWORD") as info:
        config.load(path, {})
    assert "hunter2" not in str(info.value)
    loaded = config.load(None, {"ORACLE_BITCOIND__RPC_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(loaded)
    assert "hunter2" not in str(loaded.bitcoind.rpc_password)
    assert loaded.bitcoind.rpc_password.reveal() == "hunter2"


def test_secret_from_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\n")
    assert config.read_secret(config.Secret(""), str(secret_file), "x").reveal() == "s3cret"
    with pytest.raises(ConfigError, match="cannot read secret file"):
        config.read_secret(config.Secret(""), str(tmp_path / "missing"), "x")


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[api\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(broken, {})


def test_redact_url() -> None:
    assert config.redact_url("postgresql+asyncpg://u:pw@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert config.redact_url("sqlite+aiosqlite:///x.sqlite") == "sqlite+aiosqlite:///x.sqlite"


def test_closed_choices_are_typed_and_validated(tmp_path: Path) -> None:
    from oracle.bitcoin.difficulty import NETWORKS

    # network.name's Literal is the networks oracle.bitcoin.difficulty knows, in order.
    assert typing.get_args(config.NetworkName) == tuple(NETWORKS)
    hints = config._hints(config.LoggingConfig)
    assert hints["format"] == config.LogFormat and hints["level"] == config.LogLevel
    loaded = config.load(None, {"ORACLE_LOGGING__FORMAT": "json", "ORACLE_LOGGING__LEVEL": "debug"})
    assert (loaded.logging.format, loaded.logging.level) == ("json", "debug")
    path = tmp_path / "bad.toml"
    path.write_text('[logging]\nformat = "xml"\nlevel = "loud"\n')
    with pytest.raises(ConfigError) as info:
        config.load(path, {})
    message = str(info.value)
    assert "logging.format: must be json or console, got 'xml'" in message
    assert "logging.level: must be one of debug, info, warning, error, critical" in message
    path.write_text('[[sources]]\nname = "x"\nkind = 1\nbase_url = "https://x"\n')
    with pytest.raises(ConfigError, match=r"sources\[0\]\.kind: expected a string, got 1"):
        config.load(path, {})
