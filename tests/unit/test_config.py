"""Configuration loading: files, environment overrides, validation, secrets."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

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


# --------------------------------------------------- database.password_file (docker secret)


def test_database_password_file_is_read_at_connect_time_only(tmp_path: Path) -> None:
    from oracle.store.session import connect_url, create_engine

    secret = tmp_path / "postgres_password"
    secret.write_text("pa:ss/w@rd%\n")
    url = "postgresql+asyncpg://oracle@db.internal:5432/oracle"
    loaded = config.load(
        None, {"ORACLE_DATABASE__URL": url, "ORACLE_DATABASE__PASSWORD_FILE": str(secret)}
    )
    assert loaded.database.url == url, "the configured URL stays without password"
    assert loaded.database.password_file == str(secret)
    connect = connect_url(url, loaded.database)
    assert connect.password == "pa:ss/w@rd%", "any character: the URL object quotes it"
    assert (connect.username, connect.host, connect.port) == ("oracle", "db.internal", 5432)
    assert "pa:ss" not in repr(connect) and "pa:ss" not in str(connect)
    engine = create_engine(url, loaded.database)
    try:
        assert engine.url.password == "pa:ss/w@rd%"
        assert "pa:ss" not in repr(engine) and "pa:ss" not in repr(engine.url)
    finally:
        engine.sync_engine.dispose()
    # ORACLE_DATABASE__PASSWORD works the same way and is a masked Secret
    from_env = config.load(None, {"ORACLE_DATABASE__URL": url, "ORACLE_DATABASE__PASSWORD": "x1"})
    assert "x1" not in repr(from_env)
    assert connect_url(url, from_env.database).password == "x1"
    # nothing configured: the URL as it is
    assert connect_url(url, config.DatabaseConfig(url=url)).password is None


def test_database_password_file_problems(tmp_path: Path) -> None:
    from oracle.store.session import connect_url

    with pytest.raises(ConfigError, match=r"database\.password_file: cannot read secret file"):
        connect_url(
            "postgresql+asyncpg://oracle@h/db",
            config.DatabaseConfig(password_file=str(tmp_path / "missing")),
        )
    path = tmp_path / "c.toml"
    path.write_text('[database]\npassword = "hunter2"\n')
    with pytest.raises(ConfigError, match="ORACLE_DATABASE__PASSWORD or password_file") as info:
        config.load(path, {})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        config.load(
            None,
            {
                "ORACLE_DATABASE__URL": "postgresql+asyncpg://oracle:inline@h/db",
                "ORACLE_DATABASE__PASSWORD_FILE": "/run/secrets/postgres_password",
            },
        )
    assert "database.url: carries a password of its own" in str(info.value)
    assert "inline" not in str(info.value)
    with pytest.raises(ConfigError, match="only a postgresql\\+asyncpg:// url takes a password"):
        config.load(None, {"ORACLE_DATABASE__PASSWORD_FILE": "/run/secrets/postgres_password"})


async def test_database_password_stays_out_of_logs_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that cannot be reached: every log line and the error name the URL,
    never the password that came from the file."""
    import socket

    import structlog as _structlog

    from oracle.store import session as session_module

    # An in-process ``oracle.cli.main`` earlier in the session configures structlog with
    # cache_logger_on_first_use: the module's cached logger would bypass capture_logs.
    monkeypatch.setattr(session_module, "log", _structlog.get_logger(session_module.__name__))

    import structlog

    from oracle.errors import StoreUnavailable
    from oracle.store.session import Database, create_engine

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cret-db-pass\n")
    url = f"postgresql+asyncpg://oracle@127.0.0.1:{port}/oracle"
    database = config.DatabaseConfig(
        url=url, password_file=str(secret), connect_timeout_s=1.0, write_retry_s=0.2
    )
    db = Database(create_engine(url, database), url=url, write_retry_s=database.write_retry_s)

    async def ping(session: Any) -> None:
        await session.execute(text("SELECT 1"))

    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(StoreUnavailable) as info:
            await db.transaction(ping, what="ping")
    finally:
        await db.dispose()
    assert logs, "the failed attempts are logged"
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "s3cret-db-pass" not in str(info.value) + repr(logs) + db.url


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (
            "ORACLE_CROSSCHECK__QUORUMM",
            "[crosscheck] has no key 'quorumm' (did you mean 'quorum'?)",
        ),
        ("ORACLE_DATABASE__URL__X", "[database] has no key 'url__x'"),
        ("ORACLE_CROSSCHEK__QUORUM", "unknown section 'crosschek' (did you mean 'crosscheck'?)"),
        ("ORACLE_SOURCES__0", "unknown section 'sources'"),  # [[sources]] only in a file
        ("ORACLE_CROSSCHECK_QUORUM", "two underscores), e.g. ORACLE_CROSSCHECK__QUORUM"),
    ],
)
def test_a_misspelt_environment_override_is_refused_naming_it(name: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        config.load(None, {name: "3"})
    assert name in str(info.value) and fragment in str(info.value)
    assert "\n" not in str(info.value)  # one problem, one line


def test_other_oracle_variables_are_left_alone() -> None:
    """Variables read elsewhere (listed) and an Oracle database client's are not settings."""
    environ = {name: "x" for name in config.NON_CONFIG_VARIABLES}
    environ |= {"ORACLE_HOME": "/opt/oracle", "ORACLE_SID": "ORCL", "ORACLE_API__PORT": "9"}
    assert set(config.NON_CONFIG_VARIABLES) == {
        "ORACLE_CONFIG",  # oracle/store/migrations/env.py
        "ORACLE_API_PUBLISH",  # docker-compose.yml
        "ORACLE_TEST_POSTGRES_DSN",  # tests/fixtures/postgres.py
    }
    assert config.load(None, environ).api.port == 9


def test_every_url_is_checked_at_load_with_every_other_problem(tmp_path: Path) -> None:
    path = tmp_path / "urls.toml"
    path.write_text(
        '[bitcoind]\nurl = "127.0.0.1:8332"\nzmq_hashblock = "tcp://127.0.0.1"\n'
        "[crosscheck]\nquorum = 0\n"
        '[publisher]\nrpc_url = "http://"\n'
        '[monitor]\nwebhooks = ["https://hooks.example/a b"]\n'
        '[[sources]]\nname = "e"\nkind = "esplora"\nbase_url = "https://:443/api"\n'
    )
    with pytest.raises(ConfigError) as info:
        config.load(path, {"ORACLE_PEERS__URLS": "ftp://peer"})
    problems = str(info.value).splitlines()[1:]
    assert [p.strip().split(":", 1)[0] for p in problems] == [
        "crosscheck.quorum",
        "sources[0].base_url",
        "peers.urls[0]",
        "peers.urls",  # peers need the publisher: still reported with the rest
        "bitcoind.url",
        "bitcoind.zmq_hashblock",
        "publisher.rpc_url",
        "monitor.webhooks[0]",
    ]
    text = str(info.value)
    assert "needs a port (tcp://host:port)" in text and "has whitespace" in text
    assert text.count("has no host") == 2


def test_a_url_in_an_error_keeps_its_secrets(tmp_path: Path) -> None:
    key = "AbCdEf0123456789AbCdEf0123456789"
    with pytest.raises(ConfigError) as info:
        config.load(None, {"ORACLE_PUBLISHER__RPC_URL": f"https://u:pw@rpc.example:x/v2/{key}"})
    assert "publisher.rpc_url" in str(info.value)
    assert key not in str(info.value) and ":pw@" not in str(info.value)


def test_publishing_needs_a_contract_and_keystores(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[publisher]\nenabled = true\n")
    assert config.load(path, {}).publisher.enabled  # contract deploy, db upgrade: fine
    with pytest.raises(ConfigError) as info:
        config.load(path, {}, publishing=True)
    for key in ("contract_address", "keystore_files", "sender_keystore_file"):
        assert f"publisher.{key}: [publisher] enabled = true needs" in str(info.value)
    filled = {
        "ORACLE_PUBLISHER__CONTRACT_ADDRESS": "0x" + "ab" * 20,
        "ORACLE_PUBLISHER__KEYSTORE_FILES": "signer.json",
        "ORACLE_PUBLISHER__SENDER_KEYSTORE_FILE": "sender.json",
    }
    assert config.load(path, filled, publishing=True).publisher.contract_address
    with pytest.raises(ConfigError, match="contract's 0x address"):
        config.load(path, filled | {"ORACLE_PUBLISHER__CONTRACT_ADDRESS": "0x123"}, publishing=True)
    dev = ROOT / "config" / "dev.toml"  # `bme-oracle dev` fills these in itself
    assert config.load(dev, filled, publishing=True).publisher.enabled


def test_market_section_from_file_and_environment(tmp_path: Path) -> None:
    market = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    collateral = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    path = tmp_path / "market.toml"
    path.write_text(f'[market]\naddress = "{market}"\ncache_ttl_s = 2.0\n')
    loaded = config.load(path, {"ORACLE_MARKET__COLLATERAL": collateral})
    assert loaded.market.address == market and loaded.market.collateral == collateral
    assert loaded.market.cache_ttl_s == 2.0 and loaded.market.read_timeout_s == 3.0
    assert config.load(None, {}).market.address == ""  # no market: /v1/markets answers 404


def test_market_problems_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "market.toml"
    path.write_text('[market]\naddress = "0x1234"\nread_timeout_s = 0\n')
    with pytest.raises(ConfigError) as info:
        config.load(path, {"ORACLE_MARKET__COLLATERAL": "wbtc"})
    message = str(info.value)
    assert "market.address: must be a 0x address of 40 hex digits, got '0x1234'" in message
    assert "market.collateral: must be a 0x address" in message
    assert "market.read_timeout_s: must be > 0, got 0" in message
