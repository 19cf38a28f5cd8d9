"""``bme-oracle contract ...`` and ``bme-oracle publish`` as an operator runs them.

Real processes (``python -m oracle``), real anvil nodes, a real regtest bitcoind for
the regtest genesis, a real SQLite store; keys only in encrypted keystores with the
password from the environment or a file. Every output is checked never to contain a
private key or the password, and every refusal to be one line on stderr, exit 2 (69 for
a node that cannot be reached).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from oracle.bitcoin.header import parse_header
from oracle.publish.anchor import mainnet_genesis
from oracle.publish.contract import OracleContract, connect
from oracle.publish.genesis import REGTEST_GENESIS
from oracle.store import migrate
from oracle.store.repository import open_repository
from tests.fixtures.anvil import (
    CHAIN_ID,
    KEYSTORE_PASSWORD,
    AnvilNode,
    ChainAccounts,
    OnChain,
    free_port,
    fund,
    mainnet_boundary_headers,
    mainnet_proof,
    mainnet_report,
)
from tests.fixtures.bitcoind import BitcoindNode

pytestmark = pytest.mark.anvil

CLI = [sys.executable, "-m", "oracle"]
EPOCH = 400


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def write_config(
    path: Path,
    node: AnvilNode,
    accounts: ChainAccounts,
    db_url: str,
    password_file: Path | None,
    *,
    network: str = "mainnet",
    chain_id: int = CHAIN_ID,
    bitcoind: BitcoindNode | None = None,
    bitcoind_url: str = "",
) -> None:
    paths = accounts.keystore_paths
    signer_files = [str(paths[s.address]) for s in accounts.signers[:3]]
    lines = [
        "[network]",
        f'name = "{network}"',
        "[database]",
        f'url = "{db_url}"',
        "[publisher]",
        f'rpc_url = "{node.url}"',
        f"chain_id = {chain_id}",
        f"keystore_files = {json.dumps(signer_files)}",
        f'sender_keystore_file = "{paths[accounts.deployer.address]}"',
        "replace_after_s = 5.0",
        "receipt_timeout_s = 60.0",
    ]
    if password_file is not None:
        lines.append(f'keystore_password_file = "{password_file}"')
    if bitcoind is not None or bitcoind_url:
        lines += [
            "[bitcoind]",
            f'url = "{bitcoind.url if bitcoind else bitcoind_url}"',
            f'rpc_user = "{bitcoind.user if bitcoind else "oracle"}"',
            "timeout_s = 5.0",
        ]
    lines += ["[logging]", 'level = "warning"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def secrets_of(accounts: ChainAccounts) -> list[str]:
    keys = []
    for path in accounts.keystore_paths.values():
        keys.append(bytes(Account.decrypt(json.loads(path.read_text()), KEYSTORE_PASSWORD)).hex())
    return [*keys, KEYSTORE_PASSWORD]


def assert_no_secrets(result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}, **extra}


class Operator:
    """Runs the CLI with one configuration and the keystore password in the environment."""

    def __init__(self, config: Path, secrets: list[str], **env: str) -> None:
        self.config = config
        self.secrets = secrets
        self.env = clean_env(ORACLE_PUBLISHER__KEYSTORE_PASSWORD=KEYSTORE_PASSWORD, **env)

    async def ok(self, *args: str) -> Any:
        result = await asyncio.to_thread(
            run_cli, *args, "--config", str(self.config), "--json", env=self.env
        )
        assert result.returncode == 0, (args, result.stderr)
        assert_no_secrets(result, self.secrets)
        return json.loads(result.stdout)

    async def text(self, *args: str) -> str:
        result = await asyncio.to_thread(run_cli, *args, "--config", str(self.config), env=self.env)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    async def refused(self, *args: str, expected: str, status: int = 2) -> None:
        """Exit ``status`` (2 bad input, 69 a node that cannot be reached), one line."""
        result = await asyncio.to_thread(run_cli, *args, "--config", str(self.config), env=self.env)
        assert result.returncode == status, (args, result.stdout, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert_no_secrets(result, self.secrets)


def deploy_args(accounts: ChainAccounts, *extra: str, threshold: int = 3) -> list[str]:
    signers = ",".join(s.address for s in accounts.signers)
    return [
        "contract", "deploy", "--signers", signers, "--threshold", str(threshold),
        "--owner", accounts.deployer.address, *extra,
    ]  # fmt: skip


def advance(node: AnvilNode, seconds: int) -> None:
    node.call("evm_increaseTime", seconds)
    node.call("evm_mine")


async def test_deploy_defaults_epochs_files_and_status(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, "sqlite+aiosqlite:///unused.sqlite", None)
    op = Operator(config, secrets_of(test_accounts))

    # Mainnet default: the latest bundled checkpoint with a full header, 12 h, 3 days.
    deployed = await op.ok(*deploy_args(test_accounts, "--aggregator-days", "84"))
    default = mainnet_genesis()
    assert deployed["genesis"] == default.as_dict()
    assert (deployed["network"], deployed["challenge_window_s"]) == ("mainnet", 43200)
    assert deployed["governance_delay_s"] == 259200
    assert node.call("eth_getCode", deployed["aggregators"]["84"], "latest") not in ("0x", "")
    status = await op.ok("contract", "status", "--contract", deployed["address"])
    assert status["genesis_epoch"] == status["latest_epoch"] == default.epoch
    assert status["latest_final"] is True and status["latest_final_at"] is None
    assert (status["challenge_window_s"], status["governance_delay_s"]) == (43200, 259200)
    assert (status["network"], status["config_version"], status["paused"]) == ("mainnet", 1, False)
    assert status["signers"] == [s.address for s in test_accounts.signers]
    assert status["threshold"] == 3 and status["pending_governance"] == []

    # --genesis EPOCH (bundled), short window; then epoch 400 on chain: final only later.
    deployed = await op.ok(
        *deploy_args(test_accounts, "--genesis", "399", "--challenge-window", "10m"),
        "--governance-delay",
        "120",
    )
    assert deployed["genesis"] == mainnet_genesis(399).as_dict()
    address = deployed["address"]
    driver = OnChain(node, test_accounts)
    try:
        oracle = OracleContract(driver.w3, address)
        await driver.submit(oracle, mainnet_report(EPOCH), mainnet_proof(EPOCH))
    finally:
        await driver.w3.provider.disconnect()
    status = await op.ok("contract", "status", "--contract", address)
    assert (status["genesis_epoch"], status["latest_epoch"]) == (399, EPOCH)
    assert status["latest_final"] is False
    assert status["latest_final_at"] == status["latest_stored_at"] + 600
    text = await op.text("contract", "status", "--contract", address)
    assert "epochs            399..400 (genesis 399)" in text
    assert "not final until" in text and "challenge window  600 s" in text
    assert "governance delay  120 s" in text
    advance(node, 601)
    status = await op.ok("contract", "status", "--contract", address)
    assert status["latest_final"] is True and status["latest_final_at"] is None

    # --genesis FILE in Checkpoint.as_dict form.
    checkpoint = tmp_path / "genesis.json"
    checkpoint.write_text(json.dumps(mainnet_genesis(300).as_dict()), encoding="utf-8")
    deployed = await op.ok(*deploy_args(test_accounts, "--genesis", str(checkpoint)))
    status = await op.ok("contract", "status", "--contract", deployed["address"])
    assert status["genesis_epoch"] == 300


@pytest.mark.bitcoind
async def test_regtest_deploy_takes_the_nodes_first_epoch(
    anvil_factory: Callable[..., AnvilNode],
    test_accounts: ChainAccounts,
    bitcoind: BitcoindNode,
    tmp_path: Path,
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None,
                 network="regtest", bitcoind=bitcoind)  # fmt: skip
    op = Operator(
        config, secrets_of(test_accounts), ORACLE_BITCOIND__RPC_PASSWORD=bitcoind.password
    )
    deployed = await op.ok(*deploy_args(test_accounts, "--challenge-window", "600"))
    assert deployed["network"] == "regtest"
    assert deployed["genesis"] == REGTEST_GENESIS.as_dict()
    status = await op.ok("contract", "status", "--contract", deployed["address"])
    assert (status["network"], status["genesis_epoch"], status["latest_epoch"]) == ("regtest", 0, 0)


async def test_timelocked_governance_from_the_cli(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    fund(node.url, test_accounts.outsider.address)
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None)
    op = Operator(config, secrets_of(test_accounts))
    deployed = await op.ok(*deploy_args(test_accounts, "--genesis", "399",
                                        "--governance-delay", "3600"))  # fmt: skip
    contract = ["--contract", deployed["address"]]
    new_signers = [s.address for s in test_accounts.signers[:3]]
    change = ["--signers", ",".join(new_signers), "--threshold", "2"]

    scheduled = await op.ok("contract", "schedule-signers", *change, *contract)
    assert scheduled["executable_at"] > 0 and scheduled["id"].startswith("0x")
    status = await op.ok("contract", "status", *contract)
    (pending,) = status["pending_governance"]
    assert (pending["id"], pending["kind"], pending["ready"]) == (scheduled["id"], "signers", False)
    assert (pending["signers"], pending["threshold"]) == (new_signers, 2)
    assert scheduled["id"] in await op.text("contract", "status", *contract)
    await op.refused("contract", "execute-signers", *change, *contract,
                     expected="not executable before")  # fmt: skip
    await op.refused("contract", "schedule-signers", *change, *contract,
                     expected="already announced")  # fmt: skip

    # A re-anchor announced and cancelled; the signer change executed after the delay.
    reanchor = await op.ok("contract", "schedule-reanchor", "--genesis", "405", *contract)
    status = await op.ok("contract", "status", *contract)
    assert [p["kind"] for p in status["pending_governance"]] == ["signers", "reanchor"]
    assert status["pending_governance"][1]["genesis"] == mainnet_genesis(405).as_dict()
    await op.ok("contract", "cancel", reanchor["id"], *contract)
    advance(node, 3601)
    executed = await op.ok("contract", "execute-signers", *change, *contract)
    assert executed["config_version"] == 2
    status = await op.ok("contract", "status", *contract)
    assert (status["signers"], status["threshold"]) == (new_signers, 2)
    assert (status["config_version"], status["pending_governance"]) == (2, [])
    await op.refused("contract", "execute-signers", *change, *contract,
                     expected="no such pending change")  # fmt: skip

    # Re-anchor through the timelock; pause and unpause.
    await op.ok("contract", "schedule-reanchor", "--genesis", "405", *contract)
    advance(node, 3601)
    await op.ok("contract", "execute-reanchor", "--genesis", "405", *contract)
    status = await op.ok("contract", "status", *contract)
    assert status["genesis_epoch"] == status["latest_epoch"] == 405
    assert (await op.ok("contract", "pause", *contract))["paused"] is True
    assert (await op.ok("contract", "status", *contract))["paused"] is True
    await op.refused("contract", "pause", *contract, expected="already paused")
    assert (await op.ok("contract", "unpause", *contract))["paused"] is False

    # Owner-only actions from another key are refused before anything is sent.
    outsider = test_accounts.keystore_paths[test_accounts.outsider.address]
    await op.refused("contract", "schedule-signers", *change, *contract,
                     "--sender-keystore", str(outsider),
                     expected="is not the contract's owner")  # fmt: skip


async def test_publish_from_the_cli(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'oracle.sqlite'}"
    env_config = tmp_path / "env.toml"
    write_config(env_config, node, test_accounts, db_url, None)
    secrets = secrets_of(test_accounts)
    op = Operator(env_config, secrets)
    address = (await op.ok(*deploy_args(test_accounts, "--genesis", str(EPOCH - 1))))["address"]

    # The store: schema at head, epoch 400 agreed with the header before it.
    await migrate.upgrade(db_url)
    headers = mainnet_boundary_headers()
    raw = headers[EPOCH * 2016]
    header = parse_header(raw)
    repository = await open_repository(db_url)
    try:
        await repository.record_agreed(
            "mainnet", epoch=EPOCH, height=EPOCH * 2016, block_hash_hex=header.block_hash_hex,
            bits=header.bits, time=header.time, raw_header=raw, sources=("bitcoind", "esplora"),
            last_header=headers[EPOCH * 2016 - 1],
        )  # fmt: skip
    finally:
        await repository.close()

    # Publish with the password from a file this time (no environment variable).
    password_file = tmp_path / "password"
    password_file.write_text(KEYSTORE_PASSWORD, encoding="utf-8")
    file_config = tmp_path / "file.toml"
    write_config(file_config, node, test_accounts, db_url, password_file)
    published = await asyncio.to_thread(
        run_cli, "publish", "--epoch", str(EPOCH), "--contract", address,
        "--config", str(file_config), "--db", db_url, "--json", env=clean_env(),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert_no_secrets(published, secrets)
    result = json.loads(published.stdout)
    assert result["status"] == "confirmed" and result["tx_hash"].startswith("0x")
    receipt = node.call("eth_getTransactionReceipt", result["tx_hash"])
    assert int(receipt["status"], 16) == 1 and receipt["to"].lower() == address.lower()

    repository = await open_repository(db_url)
    try:
        record = await repository.get_retarget("mainnet", EPOCH)
        assert record is not None and record.status == "published"
        assert [p.tx_hash for p in record.publications] == [result["tx_hash"]]
    finally:
        await repository.close()

    # Publishing again sends nothing and reports the same transaction.
    nonce = node.call("eth_getTransactionCount", test_accounts.deployer.address, "pending")
    again = await asyncio.to_thread(
        run_cli, "publish", "--epoch", str(EPOCH), "--contract", address,
        "--config", str(file_config), "--db", db_url, "--json", env=clean_env(),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "already_on_chain"
    assert json.loads(again.stdout)["tx_hash"] == result["tx_hash"]
    assert node.call("eth_getTransactionCount", test_accounts.deployer.address, "pending") == nonce
    assert "399..400" in await op.text("contract", "status", "--contract", address)

    # An epoch agreed without the oracle's own 2016e-1 header has no proof: refused, one line.
    raw = headers[(EPOCH + 1) * 2016]
    header = parse_header(raw)
    repository = await open_repository(db_url)
    try:
        await repository.record_agreed(
            "mainnet", epoch=EPOCH + 1, height=(EPOCH + 1) * 2016,
            block_hash_hex=header.block_hash_hex, bits=header.bits, time=header.time,
            raw_header=raw, sources=("bitcoind", "esplora"),
        )  # fmt: skip
    finally:
        await repository.close()
    await Operator(file_config, secrets).refused(
        "publish", "--epoch", str(EPOCH + 1), "--contract", address, "--db", db_url,
        expected=f"agreed without the oracle's own header at height {(EPOCH + 1) * 2016 - 1}",
    )  # fmt: skip


async def test_cli_refusals_are_one_line_errors_without_secrets(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    secrets = secrets_of(test_accounts)
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None)
    op = Operator(config, secrets)
    not_json = tmp_path / "not.json"
    not_json.write_text("{epoch: 3", encoding="utf-8")
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"epoch": 3, "bits": "1d00ffff"}), encoding="utf-8")
    bad_hash = tmp_path / "bad-hash.json"
    bad_hash.write_text(
        json.dumps({**mainnet_genesis(300).as_dict(), "block_hash_hex": "zz"}), encoding="utf-8"
    )
    cases = [
        (["--network", "signet"], "signet is refused by design"),
        (["--network", "testnet3"], "testnet3 is refused by design"),
        (["--network", "dogecoin"], "unknown network 'dogecoin'"),
        (["--challenge-window", "300000"], "more than the maximum 259200"),
        (["--challenge-window", "12 hours"], "--challenge-window: not a duration"),
        (["--governance-delay", "-5"], "--governance-delay: not a duration"),
        (["--genesis", str(not_json)], "is not JSON"),
        (["--genesis", str(incomplete)], "KeyError"),
        (["--genesis", str(bad_hash)], "block_hash_hex must be 64 hex digits"),
        (["--genesis", str(tmp_path / "missing.json")], "no such file"),
        (["--genesis", "999"], "no bundled mainnet retarget header for epoch 999"),
        (["--aggregator-days", "30"], "--aggregator-days: 30 is not a multiple of 14"),
    ]
    await asyncio.gather(
        *(op.refused(*deploy_args(test_accounts, *extra), expected=e) for extra, e in cases)
    )
    await op.refused(*deploy_args(test_accounts, threshold=6), expected="--threshold must be 1..5")
    await op.refused(
        "contract", "status", "--contract", "0x" + "2" * 40, expected="no contract deployed"
    )
    await op.refused("contract", "cancel", "0x1234", "--contract", "0x" + "2" * 40,
                     expected="not a change id")  # fmt: skip

    wrong = Operator(config, secrets)
    wrong.env["ORACLE_PUBLISHER__KEYSTORE_PASSWORD"] = "wrong password"
    await wrong.refused(*deploy_args(test_accounts), expected="wrong password")

    # Regtest only on the dev chain; a bitcoind that does not answer; an EVM node that does not.
    other_chain = tmp_path / "other.toml"
    write_config(other_chain, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None,
                 network="regtest", chain_id=1)  # fmt: skip
    await Operator(other_chain, secrets).refused(
        *deploy_args(test_accounts), expected="regtest deploys only on the dev chain 31337"
    )
    closed_port = f"http://127.0.0.1:{free_port()}"
    no_bitcoind = tmp_path / "no-bitcoind.toml"
    write_config(no_bitcoind, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None,
                 network="regtest", bitcoind_url=closed_port)  # fmt: skip
    await Operator(no_bitcoind, secrets, ORACLE_BITCOIND__RPC_PASSWORD="rpc-secret-x").refused(
        *deploy_args(test_accounts), expected="reading the regtest genesis from bitcoind",
        status=69,
    )  # fmt: skip
    await op.refused(*deploy_args(test_accounts), "--rpc-url", closed_port,
                     expected="is unreachable", status=69)  # fmt: skip


async def test_status_reads_the_contract_as_web3_does(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    """The CLI's view of a contract equals the bindings' (guards the JSON field names)."""
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, "sqlite+aiosqlite:///u.sqlite", None)
    op = Operator(config, secrets_of(test_accounts))
    address = (await op.ok(*deploy_args(test_accounts, "--genesis", "0")))["address"]
    w3 = connect(node.url)
    try:
        expected = (await OracleContract(w3, address).status()).as_dict()
    finally:
        await w3.provider.disconnect()
    shown = await op.ok("contract", "status", "--contract", address)
    assert {k: shown[k] for k in expected} == expected
    assert shown["genesis_epoch"] == 0
