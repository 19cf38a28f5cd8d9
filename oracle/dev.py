"""``bme-oracle dev``: the whole oracle on a laptop, through a real retarget, in one command.

Starts a regtest bitcoind and an anvil node (``oracle.devnet``), creates dev
signer keys in encrypted keystores (3 signers, threshold 2, plus a funded
sender), deploys the contract, migrates a SQLite database, runs the daemon
with its API, mines through ``retargets`` retargets and waits until each is
agreed and published on chain. It prints the API URL and the contract address
(one JSON line with ``--json``) and runs until Ctrl-C. Everything lives in
``workdir`` and is recreated on every start. Regtest has one local node, so
quorum is 1 here; production needs independent sources (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import structlog
from eth_account import Account

from oracle.bitcoin.difficulty import EPOCH_BLOCKS, NETWORKS
from oracle.config import (
    ApiConfig,
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    LoggingConfig,
    NetworkConfig,
    PublisherConfig,
    Secret,
)
from oracle.devnet import Anvil, Bitcoind
from oracle.errors import OracleError
from oracle.service import Service, install_signal_handlers

log = structlog.get_logger(__name__)
DEV_SIGNERS = 3
DEV_THRESHOLD = 2
PUBLISH_WAIT_S = 120.0


@dataclasses.dataclass
class DevStack:
    workdir: Path
    bitcoind: Bitcoind
    anvil: Anvil
    keystores: list[Path]
    sender_keystore: Path
    password: str
    contract_address: str = ""


def _fresh_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("bitcoind", "keys"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    for name in ("bme-oracle.sqlite", "bme-oracle.sqlite-wal", "bme-oracle.sqlite-shm"):
        (workdir / name).unlink(missing_ok=True)


def _make_keys(workdir: Path) -> tuple[list[Path], Path, str]:
    from oracle.publish.signing import write_keystore

    keys = workdir / "keys"
    keys.mkdir(parents=True)
    password = secrets.token_hex(16)
    (keys / "password").write_text(password, encoding="utf-8")
    paths = []
    for i in range(DEV_SIGNERS + 1):
        path = keys / (f"signer{i}.json" if i < DEV_SIGNERS else "sender.json")
        write_keystore(path, bytes(Account.create().key), password, kdf_iterations=2**10)
        paths.append(path)
    return paths[:DEV_SIGNERS], paths[DEV_SIGNERS], password


async def _deploy(stack: DevStack) -> str:
    from oracle.publish.contract import connect, deploy_oracle
    from oracle.publish.signing import load_keystore, load_keystores

    sender = load_keystore(stack.sender_keystore, stack.password)
    signers = load_keystores(stack.keystores, stack.password)
    stack.anvil.call("anvil_setBalance", sender.address, hex(10**21))
    w3 = connect(stack.anvil.url)
    try:
        return await deploy_oracle(
            w3,
            sender,
            owner=sender.address,
            signers=sorted(s.address for s in signers),
            threshold=DEV_THRESHOLD,
            pow_limit=NETWORKS["regtest"].pow_limit,
            max_fee_wei=100 * 10**9,
            priority_fee_wei=10**9,
        )
    finally:
        await w3.provider.disconnect()  # type: ignore[attr-defined]


def dev_config(stack: DevStack, *, api_port: int) -> Config:
    """The daemon's configuration for the local stack (secrets stay in memory or files)."""
    db_url = f"sqlite+aiosqlite:///{stack.workdir.resolve() / 'bme-oracle.sqlite'}"
    return Config(
        network=NetworkConfig(name="regtest"),
        database=DatabaseConfig(url=db_url),
        bitcoind=BitcoindConfig(
            url=stack.bitcoind.rpc_url,
            rpc_user=stack.bitcoind.rpc_user,
            rpc_password=Secret(stack.bitcoind.rpc_password),
            zmq_hashblock=stack.bitcoind.zmq_url,
            poll_interval_s=2.0,
        ),
        crosscheck=CrossCheckConfig(quorum=1, confirmations=0, use_checkpoints=False),
        publisher=PublisherConfig(
            enabled=True,
            rpc_url=stack.anvil.url,
            chain_id=stack.anvil.chain_id,
            contract_address=stack.contract_address,
            keystore_files=tuple(str(p) for p in stack.keystores),
            keystore_password_file=str(stack.workdir / "keys" / "password"),
            sender_keystore_file=str(stack.sender_keystore),
            replace_after_s=10.0,
            receipt_confirmations=1,
            receipt_timeout_s=60.0,
        ),
        api=ApiConfig(enabled=True, host="127.0.0.1", port=api_port),
        logging=LoggingConfig(format="console", level="info"),
    )


async def _wait_published(service: Service, epoch: int) -> Any:
    deadline = asyncio.get_running_loop().time() + PUBLISH_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        record = await service.repository.get_retarget(service.config.network.name, epoch)
        if record is not None and record.status == "published":
            return record
        await asyncio.sleep(0.2)
    raise OracleError(f"epoch {epoch} was not published within {PUBLISH_WAIT_S:.0f} s")


async def _drive(
    service: Service, stack: DevStack, *, retargets: int, as_json: bool, exit_after_publish: bool
) -> None:
    """Mine through the retargets and report each once it is on chain."""
    for _ in range(retargets):
        height = int(stack.bitcoind.call("getblockcount"))
        boundary = (height // EPOCH_BLOCKS + 1) * EPOCH_BLOCKS
        await asyncio.to_thread(stack.bitcoind.mine, boundary - height)
        record = await _wait_published(service, boundary // EPOCH_BLOCKS)
        publication = record.publications[0] if record.publications else None
        event = {
            "event": "retarget_published",
            "epoch": record.epoch,
            "height": record.height,
            "block_hash": record.block_hash_hex,
            "bits": f"{record.bits:08x}",
            "tx_hash": publication.tx_hash if publication else None,
            "contract_address": stack.contract_address,
        }
        _say(
            as_json,
            event,
            f"epoch {record.epoch} (height {record.height}) agreed and "
            f"published on chain in tx {event['tx_hash']}",
        )
    if exit_after_publish:
        service.stop_event.set()


def _say(as_json: bool, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if as_json else text, flush=True)


async def run_dev(
    *, api_port: int, workdir: str, retargets: int, as_json: bool, exit_after_publish: bool
) -> int:
    from oracle.store import migrate

    root = Path(workdir)
    _fresh_workdir(root)
    keystores, sender_keystore, password = _make_keys(root)
    stack = DevStack(
        root, Bitcoind(datadir=root / "bitcoind"), Anvil(), keystores, sender_keystore, password
    )
    driver: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(stack.bitcoind.start)
        await asyncio.to_thread(stack.anvil.start)
        stack.contract_address = await _deploy(stack)
        config = dev_config(stack, api_port=api_port)
        await migrate.upgrade(config.database.url)

        async def ready(service: Service) -> None:
            nonlocal driver
            _say(
                as_json,
                {
                    "event": "ready",
                    "api_url": service.api_url,
                    "contract_address": stack.contract_address,
                    "evm_rpc_url": stack.anvil.url,
                    "bitcoind_rpc_url": stack.bitcoind.rpc_url,
                },
                f"API: {service.api_url}\ncontract: {stack.contract_address} "
                f"(anvil {stack.anvil.url})\nmining through {retargets} retarget(s)...",
            )
            driver = asyncio.create_task(
                _drive(
                    service,
                    stack,
                    retargets=retargets,
                    as_json=as_json,
                    exit_after_publish=exit_after_publish,
                )
            )

        service = Service(config, on_ready=ready)
        install_signal_handlers(service.stop_event)
        status = await service.run()
        if driver is not None and driver.done() and not driver.cancelled() and driver.exception():
            raise driver.exception()  # type: ignore[misc]
        return status
    finally:
        if driver is not None and not driver.done():
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
        await asyncio.to_thread(stack.anvil.stop)
        await asyncio.to_thread(stack.bitcoind.stop)
