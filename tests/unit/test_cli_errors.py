"""The CLI's promise: no traceback on bad input, one line naming what is wrong, and an exit
status that says what kind of failure it was (2 bad input, 69 unreachable, 70 a bug).

In process (``oracle.cli.main``); ``tests/integration/test_cli_exit_codes.py`` runs the
same cases through the installed ``bme-oracle`` script, and the ones that need servers.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle import cli
from oracle.commands import mathcmds
from oracle.config import NON_CONFIG_VARIABLES
from oracle.errors import (
    ChainUnavailable,
    ConfigError,
    InputError,
    OracleError,
    PublishError,
    SourceAuthFailed,
    SourceDataError,
    SourceTimeout,
    SourceUnavailable,
    StoreUnavailable,
    TxRejected,
)

TOKEN = "SBME84-250-300-190718"
ADDRESS = "0x" + "11" * 20


def closed_port_url() -> str:
    """An http:// URL nobody listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def no_oracle_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's ORACLE_* settings must not leak into these cases; and ``main`` puts
    the recursion limit back (oracle.sources.boundedjson), which other tests look at."""
    for name in list(os.environ):
        if name.startswith("ORACLE_") and name not in NON_CONFIG_VARIABLES:
            monkeypatch.delenv(name)
    limit = sys.getrecursionlimit()
    yield
    sys.setrecursionlimit(limit)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def assert_refused(err: str, *fragments: str) -> None:
    """One line, ``bme-oracle: error: ...``, naming what is wrong; no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("bme-oracle: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


WATCH = ["watch", "--quorum", "1"]
SERIES = "BME14-4.85-5.4-261215"
MINT = ["market", "mint", SERIES, "--amount", "1", "--market", ADDRESS]
STATUS = ["contract", "status", "--contract", ADDRESS]
DEPLOY = ["contract", "deploy", "--signers", ADDRESS, "--threshold", "1", "--owner", ADDRESS]
#: (argv, fragments of the one-line message): bad input -> exit 2. Shared with the
#: subprocess test in tests/integration/test_cli_exit_codes.py.
BAD_INPUT: list[tuple[list[str], list[str]]] = [
    (["price", TOKEN, "--path", "a,b"], ["--path", "#1", "'a'"]),
    (["price", TOKEN, "--path", ""], ["--path", "no difficulties"]),
    (["price", TOKEN, "--path", "1,2,"], ["--path", "#3 is empty"]),
    (["price", TOKEN, "--path", "nan,1"], ["--path", "'nan'"]),
    (["watch", "--quorum", "0", "--esplora", "http://127.0.0.1:9"], ["--quorum must be >= 1"]),
    ([*WATCH, "--esplora", "notaurl"], ["--esplora", "'notaurl'"]),
    ([*WATCH, "--esplora", "http://"], ["--esplora", "no host"]),
    ([*WATCH, "--bitcoind-url", "http://h:1 x"], ["--bitcoind-url", "whitespace"]),
    ([*WATCH, "--bitcoind-url", "http://h:1", "--zmq", "foo"], ["--zmq", "tcp://"]),
    ([*WATCH, "--esplora", "http://h:1", "--poll-interval-s", "-1"], ["--poll-interval-s"]),
    ([*STATUS, "--rpc-url", "notaurl"], ["--rpc-url", "'notaurl'"]),
    ([*STATUS, "--rpc-url", "http://"], ["--rpc-url", "no host"]),
    ([*DEPLOY, "--rpc-url", "notaurl"], ["--rpc-url", "'notaurl'"]),
    ([*DEPLOY, "--rpc-url", "http://:8545"], ["--rpc-url", "no host"]),
    (["market", "status"], ["no market", "market.address"]),
    ([*MINT[:2], "BME14-4.85-5.4", *MINT[3:]], ["series 'BME14-4.85-5.4'", "4 parts"]),
    ([*MINT[:4], "1e-3", *MINT[5:]], ["--amount", "'1e-3'", "not an amount"]),
    ([*MINT[:4], "0.0000000000000000001", *MINT[5:]], ["--amount", "19 decimals"]),
    (["market", "create", SERIES, "--collateral", "wbtc"], ["--collateral", "not an address"]),
    (["market", "status", "--market", "0x12"], ["--market", "not an address"]),
]


@pytest.mark.parametrize(("argv", "fragments"), BAD_INPUT, ids=lambda v: " ".join(v)[:60])
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert_refused(err, *fragments)


def test_index_refuses_a_file_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("height,bits,note\n0,1d00ffff,café\n".encode("latin-1"))
    status, _, err = run(capsys, "index", "--input", str(latin1))
    assert status == 2
    assert_refused(err, str(latin1), "line 2", "not UTF-8", "0xe9")


def test_index_accepts_the_byte_order_mark_excel_writes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbfheight,bits\r\n0,1d00ffff\r\n2016,1d00ffff\r\n")
    status, out, err = run(capsys, "index", "--input", str(excel), "--days", "28", "--json")
    assert status == 0, err
    assert [row["epoch"] for row in json.loads(out)["epochs"]] == [0, 1]


def test_a_bad_logging_level_is_a_config_error_at_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "verbose.toml"
    config.write_text('[logging]\nlevel = "verbose"\n')
    status, _, err = run(capsys, "run", "--config", str(config))
    assert status == 2
    assert_refused(err, str(config), "logging.level", "'verbose'")
    monkeypatch.setenv("ORACLE_LOGGING__LEVEL", "verbose")
    status, _, err = run(capsys, "run")
    assert status == 2
    assert_refused(err, "logging.level", "'verbose'")


def test_a_misspelt_override_is_refused_by_every_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORACLE_CROSSCHECK__QUORUMM", "3")
    status, _, err = run(capsys, "watch", "--esplora", "http://127.0.0.1:9")
    assert status == 2
    assert_refused(err, "ORACLE_CROSSCHECK__QUORUMM", "'quorumm'", "'quorum'")


def test_publisher_enabled_without_contract_or_keys_stops_run_at_load(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "publish.toml"
    config.write_text("[publisher]\nenabled = true\n")
    status, _, err = run(capsys, "run", "--config", str(config))
    assert status == 2
    assert "Traceback" not in err
    for key in ("contract_address", "keystore_files", "sender_keystore_file"):
        assert f"publisher.{key}" in err


def test_contract_commands_exit_69_when_the_evm_node_is_unreachable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oracle.publish.signing import write_keystore

    url = closed_port_url()
    status, _, err = run(capsys, "contract", "status", "--contract", ADDRESS, "--rpc-url", url)
    assert status == 69
    assert_refused(err, "EVM node at", "is unreachable")

    keystore = tmp_path / "sender.json"
    write_keystore(keystore, b"\x01" * 32, "pw", kdf_iterations=2)
    monkeypatch.setenv("ORACLE_PUBLISHER__KEYSTORE_PASSWORD", "pw")
    status, _, err = run(
        capsys,
        *DEPLOY,
        "--network",
        "mainnet",
        "--sender-keystore",
        str(keystore),
        "--rpc-url",
        url,
    )
    assert status == 69
    assert_refused(err, "EVM node at", "is unreachable")


def test_a_bug_exits_70_with_its_traceback_in_the_log_not_on_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_args: object) -> int:
        secret_url = "https://rpc.example/v2/AbCdEf0123456789AbCdEf0123456789"
        raise KeyError(f"unexpected {secret_url}")

    monkeypatch.setattr(mathcmds, "cmd_token", broken)
    status, out, err = run(capsys, "token", TOKEN)
    assert status == 70 and out == ""
    record_line, message = err.strip().splitlines()
    record = json.loads(record_line)
    assert record["event"] == "internal_error" and record["level"] == "critical"
    assert record["exception"].startswith("Traceback (most recent call last)")
    assert "in broken" in record["exception"] and "KeyError" in record["exception"]
    assert message.startswith("bme-oracle: internal error (a bug; traceback in the log): KeyError")
    assert "AbCdEf0123456789AbCdEf0123456789" not in err  # scrubbed in both


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InputError("x"), 2),
        (ConfigError("x"), 2),
        (SourceDataError("x"), 2),
        (TxRejected("x"), 2),
        (PublishError("no contract deployed at 0x.."), 2),
        (SourceAuthFailed("401"), 2),  # a wrong password: fix the configuration
        (SourceUnavailable("refused"), 69),
        (SourceTimeout("timed out"), 69),
        (StoreUnavailable("refused"), 69),
        (ChainUnavailable("refused"), 69),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_status_follows_the_error_tree(error: OracleError, status: int) -> None:
    assert cli.exit_status(error) == status


def test_a_publish_error_raised_from_a_refused_connection_is_unreachable() -> None:
    """The publisher wraps connection failures in PublishError ``from`` the cause."""
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except OSError as cause:
            raise PublishError("EVM node unreachable: ConnectionRefusedError") from cause
    except PublishError as error:
        assert cli.exit_status(error) == 69
