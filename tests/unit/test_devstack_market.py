"""The pure parts of the dev stack's market support: ``dev advance --to``, the sample
series' expiry, and the configuration file ``dev`` writes for other terminals."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oracle import cli, config
from oracle.config import (
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    MarketConfig,
    NetworkConfig,
    PublisherConfig,
    RestSourceConfig,
    Secret,
)
from oracle.devstack.advance import parse_when
from oracle.devstack.configfile import config_toml, write_config
from oracle.devstack.market import sample_series_name
from oracle.errors import InputError

NOW = int(datetime(2026, 12, 1, 12, 30, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+9d", NOW + 9 * 86_400),
        ("+12h", NOW + 12 * 3600),
        ("+30m", NOW + 1800),
        ("+45s", NOW + 45),
        ("1800000000", 1_800_000_000),
        ("2026-12-16", int(datetime(2026, 12, 16, tzinfo=UTC).timestamp())),
        ("2026-12-16T02:00Z", int(datetime(2026, 12, 16, 2, tzinfo=UTC).timestamp())),
        ("2026-12-16T02:00:00+01:00", int(datetime(2026, 12, 16, 1, tzinfo=UTC).timestamp())),
        ("2026-12-16T02:00", int(datetime(2026, 12, 16, 2, tzinfo=UTC).timestamp())),  # UTC
    ],
)
def test_advance_targets(text: str, expected: int) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["9d", "+9w", "+-1d", "tomorrow", "2026-13-01", "", "+1.5d"])
def test_advance_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(InputError, match="--to: not a time"):
        parse_when(text, NOW)


def test_sample_series_expires_at_02_utc_at_least_seven_days_on() -> None:
    # 2026-12-01 12:30 + 7 days = 2026-12-08 12:30, past 02:00: the 9th
    assert sample_series_name(NOW) == "BME14-4.85-5.4-261209"
    early = int(datetime(2026, 12, 1, 1, 0, tzinfo=UTC).timestamp())
    assert sample_series_name(early) == "BME14-4.85-5.4-261208"  # 01:00 + 7 d: 02:00 same day
    exact = int(datetime(2026, 12, 1, 2, 0, tzinfo=UTC).timestamp())
    assert sample_series_name(exact) == "BME14-4.85-5.4-261208"


def test_dev_config_file_loads_back_without_its_secrets(tmp_path: Path) -> None:
    password_file = tmp_path / "rpc-password"
    password_file.write_text("s3cret-pw", encoding="utf-8")
    written = Config(
        network=NetworkConfig("regtest"),
        bitcoind=BitcoindConfig(
            url="http://127.0.0.1:18443",
            rpc_user="oracle",
            rpc_password=Secret("s3cret-pw"),
            rpc_password_file=str(password_file),
        ),
        sources=(RestSourceConfig(name="esplora", kind="esplora", base_url="http://h:1"),),
        crosscheck=CrossCheckConfig(quorum=1, confirmations=0, use_checkpoints=False),
        publisher=PublisherConfig(
            enabled=True,
            contract_address="0x" + "1" * 40,
            keystore_files=(str(tmp_path / "a.json"), str(tmp_path / "b.json")),
            keystore_password_file=str(tmp_path / "password"),
            sender_keystore_file=str(tmp_path / "sender.json"),
            replace_after_s=10.0,
        ),
        market=MarketConfig(address="0x" + "2" * 40, collateral="0x" + "3" * 40),
    )
    path = write_config(written, tmp_path / "oracle.toml")
    text = path.read_text(encoding="utf-8")
    assert "s3cret-pw" not in text
    assert f"bme-oracle market status --config {path}" in text
    loaded = config.load(path, {})
    # everything but the in-memory secret, which comes back through its file
    assert loaded == dataclasses.replace(
        written, bitcoind=dataclasses.replace(written.bitcoind, rpc_password=Secret(""))
    )
    assert config.read_secret(
        loaded.bitcoind.rpc_password, loaded.bitcoind.rpc_password_file, "x"
    ).reveal() == ("s3cret-pw")
    assert "[database]" not in config_toml(written, path)  # defaults are left out


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    limit = sys.getrecursionlimit()  # main sets it (oracle.sources.boundedjson); keep ours
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:
        status = int(exc.code or 0)
    finally:
        sys.setrecursionlimit(limit)
    _, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return status, err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_dev_advance_refuses_what_is_not_the_dev_stack(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("ORACLE_")]:
        monkeypatch.delenv(name)
    missing = tmp_path / "missing.toml"
    assert _run(capsys, "dev", "advance", "--to", "+1d", "--config", str(missing)) == (
        2,
        f"bme-oracle: error: config file {missing} does not exist\n",
    )
    mainnet = tmp_path / "mainnet.toml"
    mainnet.write_text('[publisher]\ncontract_address = "0x' + "1" * 40 + '"\n')
    status, err = _run(capsys, "dev", "advance", "--to", "+1d", "--config", str(mainnet))
    assert status == 2 and "dev stack only" in err and "mainnet" in err
    port = _free_port()  # nobody listens: the stack is not running
    regtest = tmp_path / "regtest.toml"
    regtest.write_text(
        f'[network]\nname = "regtest"\n[bitcoind]\nurl = "http://127.0.0.1:{port}"\n'
        f'[publisher]\nrpc_url = "http://127.0.0.1:{port}"\n'
        'contract_address = "0x' + "1" * 40 + '"\n'
    )
    status, err = _run(capsys, "dev", "advance", "--to", "soon", "--config", str(regtest))
    assert status == 2 and "--to: not a time: 'soon'" in err
    status, err = _run(capsys, "dev", "advance", "--to", "+1d", "--config", str(regtest))
    assert status == 69 and "is `bme-oracle dev` running" in err
    status, err = _run(
        capsys, "dev", "advance", "--to", "+1d", "--wait", "0", "--config", str(regtest)
    )
    assert status == 2 and "--wait must be > 0" in err
