"""``bme-oracle contract deploy|status`` and ``bme-oracle publish`` as an operator runs them.

Real processes (the installed ``bme-oracle`` entry point), a real anvil node, a
real SQLite store migrated to head and holding an agreed mainnet retarget, keys
only in encrypted keystores with the password from the environment or a file.
The outputs are checked never to contain a private key or the password.
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
from oracle.store import migrate
from oracle.store.repository import open_repository
from tests.fixtures.anvil import (
    CHAIN_ID,
    KEYSTORE_PASSWORD,
    AnvilNode,
    ChainAccounts,
    fund,
    mainnet_retarget_headers,
)

pytestmark = pytest.mark.anvil

CLI = [sys.executable, "-m", "oracle"]
EPOCH = 400


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def write_config(
    path: Path, node: AnvilNode, accounts: ChainAccounts, db_url: str, password_file: Path | None
) -> None:
    paths = accounts.keystore_paths
    signer_files = [str(paths[s.address]) for s in accounts.signers[:3]]
    lines = [
        "[network]",
        'name = "mainnet"',
        "[database]",
        f'url = "{db_url}"',
        "[publisher]",
        f'rpc_url = "{node.url}"',
        f"chain_id = {CHAIN_ID}",
        f"keystore_files = {json.dumps(signer_files)}",
        f'sender_keystore_file = "{paths[accounts.deployer.address]}"',
        "replace_after_s = 5.0",
        "receipt_timeout_s = 60.0",
    ]
    if password_file is not None:
        lines.append(f'keystore_password_file = "{password_file}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def secrets_of(accounts: ChainAccounts) -> list[str]:
    keys = []
    for path in accounts.keystore_paths.values():
        keys.append(bytes(Account.decrypt(json.loads(path.read_text()), KEYSTORE_PASSWORD)).hex())
    return [*keys, KEYSTORE_PASSWORD]


def assert_no_secrets(result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


async def test_deploy_status_and_publish_from_the_cli(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    fund(node.url, test_accounts.deployer.address)
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'oracle.sqlite'}"
    env_config = tmp_path / "env.toml"
    write_config(env_config, node, test_accounts, db_url, None)
    env = {**os.environ, "ORACLE_PUBLISHER__KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    secrets = secrets_of(test_accounts)
    signers = ",".join(s.address for s in test_accounts.signers)

    deployed = await asyncio.to_thread(
        run_cli,
        "contract", "deploy", "--signers", signers, "--threshold", "3",
        "--owner", test_accounts.new_owner.address, "--aggregator-days", "84",
        "--config", str(env_config), "--json",
        env=env,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr
    assert_no_secrets(deployed, secrets)
    payload = json.loads(deployed.stdout)
    address = payload["address"]
    assert node.call("eth_getCode", address, "latest") not in ("0x", "")
    assert node.call("eth_getCode", payload["aggregators"]["84"], "latest") not in ("0x", "")

    status = await asyncio.to_thread(
        run_cli,
        "contract",
        "status",
        "--contract",
        address,
        "--config",
        str(env_config),
        "--json",
        env=env,
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["owner"] == test_accounts.new_owner.address
    assert shown["signers"] == [s.address for s in test_accounts.signers]
    assert (shown["threshold"], shown["paused"], shown["latest_epoch"]) == (3, False, None)

    # The store: schema at head, epoch 400 agreed.
    await migrate.upgrade(db_url)
    raw = mainnet_retarget_headers()[EPOCH]
    header = parse_header(raw)
    repository = await open_repository(db_url)
    try:
        await repository.record_agreed(
            "mainnet", epoch=EPOCH, height=EPOCH * 2016, block_hash_hex=header.block_hash_hex,
            bits=header.bits, time=header.time, raw_header=raw, sources=("bitcoind", "esplora"),
        )  # fmt: skip
    finally:
        await repository.close()

    # Publish with the password from a file this time (no environment variable).
    password_file = tmp_path / "password"
    password_file.write_text(KEYSTORE_PASSWORD, encoding="utf-8")
    file_config = tmp_path / "file.toml"
    write_config(file_config, node, test_accounts, db_url, password_file)
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    published = await asyncio.to_thread(
        run_cli, "publish", "--epoch", str(EPOCH), "--contract", address,
        "--config", str(file_config), "--db", db_url, "--json", env=plain_env,
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
        "--config", str(file_config), "--db", db_url, "--json", env=plain_env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "already_on_chain"
    assert json.loads(again.stdout)["tx_hash"] == result["tx_hash"]
    assert node.call("eth_getTransactionCount", test_accounts.deployer.address, "pending") == nonce

    status = await asyncio.to_thread(
        run_cli, "contract", "status", "--contract", address, "--config", str(env_config), env=env
    )
    assert status.returncode == 0 and "400..400" in status.stdout


async def test_cli_refusals_are_one_line_errors_without_secrets(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, tmp_path: Path
) -> None:
    node = anvil_factory()
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'oracle.sqlite'}"
    config = tmp_path / "c.toml"
    write_config(config, node, test_accounts, db_url, None)
    secrets = secrets_of(test_accounts)
    signers = ",".join(s.address for s in test_accounts.signers)
    cases: list[tuple[list[str], dict[str, Any], str]] = [
        (
            [
                "contract",
                "deploy",
                "--signers",
                signers,
                "--threshold",
                "3",
                "--owner",
                "0x" + "1" * 40,
            ],
            {"ORACLE_PUBLISHER__KEYSTORE_PASSWORD": "wrong password"},
            "wrong password",
        ),
        (
            [
                "contract",
                "deploy",
                "--signers",
                signers,
                "--threshold",
                "6",
                "--owner",
                "0x" + "1" * 40,
            ],
            {"ORACLE_PUBLISHER__KEYSTORE_PASSWORD": KEYSTORE_PASSWORD},
            "--threshold must be 1..5",
        ),
        (
            ["contract", "status", "--contract", "0x" + "2" * 40],
            {},
            "no contract deployed",
        ),
    ]
    for args, extra_env, expected in cases:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}, **extra_env}
        result = await asyncio.to_thread(run_cli, *args, "--config", str(config), env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert_no_secrets(result, secrets)
