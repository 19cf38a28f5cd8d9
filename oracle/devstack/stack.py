"""``bme-oracle dev``: the whole oracle on a laptop, through a real retarget, in one command.

Starts a regtest bitcoind and an anvil node (``oracle.devstack.nodes``), creates dev
signer keys in encrypted keystores (3 signers, threshold 2, plus a funded
sender), deploys the contract in regtest mode on the dev chain (31337), anchored
at the regtest chain's first epoch (epoch 0, read from the dev bitcoind) with a
10-minute challenge window and a 1-minute governance delay, deploys the market with
its dev collateral and a sample series (``oracle.devstack.market``), migrates a SQLite
database, writes the configuration to ``<workdir>/oracle.toml`` for the commands a
user runs beside it (``oracle.devstack.configfile``: ``bme-oracle market``,
``bme-oracle dev advance``), runs the daemon with its API, mines through
``retargets`` retargets and waits until each is agreed and published on chain. It
prints the API URL, the contract and market addresses, the sample series, the genesis
and the configuration file (one JSON line with ``--json``) and runs until Ctrl-C.
Everything lives in ``workdir`` and is recreated on every start. Regtest
has one local node, so quorum is 1 here; production needs independent sources
(docs/operations.md).

Clock: fast-mined regtest blocks run ahead of the wall clock (~336 s per epoch)
and the contract refuses headers more than 2 hours ahead of ``block.timestamp``,
so anvil's clock follows the regtest tip (``oracle.devstack.clock``) after every
mining batch and, for blocks mined by hand while the stack runs, every second.
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

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.config import (
    ApiConfig,
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    LoggingConfig,
    MarketConfig,
    NetworkConfig,
    PublisherConfig,
    Secret,
)
from oracle.devstack.clock import follow_bitcoin_time
from oracle.devstack.configfile import write_config
from oracle.devstack.market import DevMarket, deploy_dev_market
from oracle.devstack.nodes import Anvil, Bitcoind, DevnetError
from oracle.errors import OracleError
from oracle.publish.anchor import Checkpoint
from oracle.service import Service, install_signal_handlers
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)
DEV_SIGNERS = 3
DEV_THRESHOLD = 2
PUBLISH_WAIT_S = 120.0
#: Dev contract parameters: short enough to watch an epoch become final and to try a
#: governance change within a session.
DEV_CHALLENGE_WINDOW_S = 600
DEV_GOVERNANCE_DELAY_S = 60
#: How often the background task moves anvil's clock up to the regtest tip.
CLOCK_FOLLOW_INTERVAL_S = 1.0


@dataclasses.dataclass
class DevStack:
    workdir: Path
    bitcoind: Bitcoind
    anvil: Anvil
    keys: DevKeys
    contract_address: str = ""
    genesis: Checkpoint | None = None
    market: DevMarket | None = None


def _fresh_workdir(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("bitcoind", "keys"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    for name in (
        "bme-oracle.sqlite",
        "bme-oracle.sqlite-wal",
        "bme-oracle.sqlite-shm",
        "oracle.toml",
    ):
        (workdir / name).unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class DevKeys:
    """Encrypted keystores of the dev signers and sender, and the file holding their password."""

    signers: list[Path]
    sender: Path
    password_file: Path

    @property
    def password(self) -> str:
        return self.password_file.read_text(encoding="utf-8")


def make_dev_keys(directory: Path, *, signers: int = DEV_SIGNERS) -> DevKeys:
    """Fresh random keys, each only ever written as an encrypted keystore."""
    from oracle.publish.signing import write_keystore

    directory.mkdir(parents=True)
    password_file = directory / "password"
    password_file.write_text(secrets.token_hex(16), encoding="utf-8")
    password = password_file.read_text(encoding="utf-8")
    paths = []
    for i in range(signers + 1):
        path = directory / (f"signer{i}.json" if i < signers else "sender.json")
        write_keystore(path, bytes(Account.create().key), password, kdf_iterations=2**10)
        paths.append(path)
    return DevKeys(signers=paths[:signers], sender=paths[signers], password_file=password_file)


async def deploy_dev_contract(
    rpc_url: str,
    keys: DevKeys,
    *,
    genesis: Checkpoint | None = None,
    threshold: int = DEV_THRESHOLD,
    network: str = "regtest",
    challenge_window_s: int = DEV_CHALLENGE_WINDOW_S,
    governance_delay_s: int = DEV_GOVERNANCE_DELAY_S,
) -> str:
    """Fund the sender (anvil_setBalance) and deploy a DifficultyOracle for the dev signers.

    ``genesis`` defaults to regtest epoch 0 (the same on every regtest chain); a node that
    has mined past epoch 0 before the deployment needs its own (``dev_genesis``).
    """
    from oracle.devstack.nodes import json_rpc
    from oracle.publish.contract import connect, deploy_oracle
    from oracle.publish.genesis import REGTEST_GENESIS
    from oracle.publish.signing import load_keystore, load_keystores

    sender = load_keystore(keys.sender, keys.password)
    signers = load_keystores(keys.signers, keys.password)
    json_rpc(rpc_url, "anvil_setBalance", [sender.address, hex(10**21)], version="2.0")
    w3 = connect(rpc_url)
    try:
        return await deploy_oracle(
            w3,
            sender,
            owner=sender.address,
            signers=sorted(s.address for s in signers),
            threshold=threshold,
            network=network,
            genesis=genesis or REGTEST_GENESIS,
            challenge_window_s=challenge_window_s,
            governance_delay_s=governance_delay_s,
            max_fee_wei=100 * 10**9,
            priority_fee_wei=10**9,
        )
    finally:
        await w3.provider.disconnect()


async def dev_genesis(bitcoind: Bitcoind, epoch: int = 0) -> Checkpoint:
    """The regtest checkpoint of ``epoch`` (default: the first) as the dev bitcoind serves it."""
    from oracle.publish.genesis import genesis_from_node
    from oracle.sources.bitcoind import BitcoindSource
    from oracle.sources.rpc import RpcCredentials

    source = BitcoindSource(
        name="bitcoind",
        url=bitcoind.rpc_url,
        credentials=RpcCredentials(user=bitcoind.rpc_user, password=bitcoind.rpc_password),
    )
    try:
        return await genesis_from_node(source, "regtest", epoch)
    finally:
        await source.close()


def follow_tip(stack: DevStack) -> int:
    """Move anvil's clock up to the regtest tip's header time; returns the EVM pending time."""
    tip = stack.bitcoind.call("getblockheader", stack.bitcoind.call("getbestblockhash"))
    return follow_bitcoin_time(stack.anvil.url, int(tip["time"]))


async def _follow_clock(stack: DevStack) -> None:
    """Keep anvil at or after the regtest tip while the stack runs (blocks mined by hand)."""
    while True:
        try:
            await asyncio.to_thread(follow_tip, stack)
        except (DevnetError, OSError) as exc:  # a node going down is reported by the daemon
            log.warning("dev clock follow failed", error=str(exc))
        await asyncio.sleep(CLOCK_FOLLOW_INTERVAL_S)


def publisher_config(
    rpc_url: str, contract_address: str, keys: DevKeys, *, chain_id: int = 31337
) -> PublisherConfig:
    """``[publisher]`` for a dev stack (the password stays in its file)."""
    return PublisherConfig(
        enabled=True,
        rpc_url=rpc_url,
        chain_id=chain_id,
        contract_address=contract_address,
        keystore_files=tuple(str(p) for p in keys.signers),
        keystore_password_file=str(keys.password_file),
        sender_keystore_file=str(keys.sender),
        replace_after_s=10.0,
        receipt_confirmations=1,
        receipt_timeout_s=60.0,
    )


def dev_config(stack: DevStack, *, api_port: int) -> Config:
    """The daemon's configuration for the local stack (secrets stay in memory or files):
    also written to ``<workdir>/oracle.toml`` for the commands run beside it."""
    db_url = f"sqlite+aiosqlite:///{stack.workdir.resolve() / 'bme-oracle.sqlite'}"
    password_file = stack.keys.password_file.parent / "bitcoind-rpc-password"
    if not password_file.exists():
        password_file.touch(mode=0o600)
        password_file.write_text(stack.bitcoind.rpc_password, encoding="utf-8")
    market = stack.market
    return Config(
        network=NetworkConfig(name="regtest"),
        database=DatabaseConfig(url=db_url),
        bitcoind=BitcoindConfig(
            url=stack.bitcoind.rpc_url,
            rpc_user=stack.bitcoind.rpc_user,
            rpc_password=Secret(stack.bitcoind.rpc_password),
            rpc_password_file=str(password_file.resolve()),
            zmq_hashblock=stack.bitcoind.zmq_url,
            poll_interval_s=2.0,
        ),
        crosscheck=CrossCheckConfig(quorum=1, confirmations=0, use_checkpoints=False),
        publisher=publisher_config(
            stack.anvil.url, stack.contract_address, stack.keys, chain_id=stack.anvil.chain_id
        ),
        api=ApiConfig(enabled=True, host="127.0.0.1", port=api_port),
        market=MarketConfig(address=market.address, collateral=market.collateral)
        if market is not None
        else MarketConfig(),
        logging=LoggingConfig(format="console", level="info"),
    )


async def _wait_published(service: Service, epoch: int) -> Any:
    deadline = asyncio.get_running_loop().time() + PUBLISH_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        record = await service.repository.get_retarget(service.config.network.name, epoch)
        if record is not None and record.status == RetargetStatus.PUBLISHED:
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
        await asyncio.to_thread(
            stack.bitcoind.mine, boundary - height, on_batch=lambda: follow_tip(stack)
        )
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
    from oracle.publish.signing import load_keystore
    from oracle.store import migrate

    root = Path(workdir)
    _fresh_workdir(root)
    stack = DevStack(
        root, Bitcoind(datadir=root / "bitcoind"), Anvil(), make_dev_keys(root / "keys")
    )
    driver: asyncio.Task[None] | None = None
    clock: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(stack.bitcoind.start)
        await asyncio.to_thread(stack.anvil.start)
        stack.genesis = genesis = await dev_genesis(stack.bitcoind)
        stack.contract_address = await deploy_dev_contract(
            stack.anvil.url, stack.keys, genesis=genesis
        )
        stack.market = await deploy_dev_market(
            stack.anvil.url,
            load_keystore(stack.keys.sender, stack.keys.password),
            stack.contract_address,
        )
        clock = asyncio.create_task(_follow_clock(stack))
        config = await asyncio.to_thread(dev_config, stack, api_port=api_port)
        await migrate.upgrade(config.database.url)
        config_file = await asyncio.to_thread(write_config, config, root / "oracle.toml")
        market = stack.market
        assert market is not None

        async def ready(service: Service) -> None:
            nonlocal driver
            _say(
                as_json,
                {
                    "event": "ready",
                    "api_url": service.api_url,
                    "contract_address": stack.contract_address,
                    "evm_rpc_url": stack.anvil.url,
                    "evm_chain_id": stack.anvil.chain_id,
                    "bitcoind_rpc_url": stack.bitcoind.rpc_url,
                    "network": "regtest",
                    "genesis": genesis.as_dict(),
                    "challenge_window_s": DEV_CHALLENGE_WINDOW_S,
                    "governance_delay_s": DEV_GOVERNANCE_DELAY_S,
                    **market.as_dict(),
                    "config_file": str(config_file),
                },
                f"API: {service.api_url}\ncontract: {stack.contract_address} "
                f"(anvil {stack.anvil.url}, regtest mode, genesis epoch {genesis.epoch}, "
                f"challenge window {DEV_CHALLENGE_WINDOW_S} s, governance delay "
                f"{DEV_GOVERNANCE_DELAY_S} s)\nmarket: {market.address} (collateral tWBTC "
                f"{market.collateral}, dev only), sample series {market.sample_series}\n"
                f"config for other terminals: {config_file}\n"
                f"mining through {retargets} retarget(s)...",
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
        for task in (driver, clock):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await asyncio.to_thread(stack.anvil.stop)
        await asyncio.to_thread(stack.bitcoind.stop)
