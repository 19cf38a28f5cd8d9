"""Agreed retargets land on chain: right values, reorgs before confirmation, an EVM node restart.

Real regtest bitcoind, real anvil with the real contract (v2, regtest mode,
anchored at the regtest genesis: epoch 0 is on chain from the start, each
later epoch goes with its chain-bound proof), real Postgres; the daemon runs
in-process (`Service`). Reorgs after publication: ``test_correction_e2e.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from oracle.config import Config
from oracle.devstack.stack import make_dev_keys, publisher_config
from oracle.index.bme import EpochTarget, bme
from oracle.publish.contract import OracleContract, connect
from oracle.service import Service
from tests.e2e.helpers import (
    WebhookReceiver,
    daemon_config,
    deploy_regtest_oracle,
    running,
    status_of,
    wait_for,
)
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]
OTHER_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"


async def publishing_config(
    db_url: str,
    node: BitcoindNode,
    anvil: AnvilNode,
    keys_dir: Path,
    *,
    confirmations: int,
    webhooks: tuple[str, ...] = (),
    challenge_window_s: int = 12 * 3600,
) -> tuple[Config, str]:
    keys = make_dev_keys(keys_dir)
    address = await deploy_regtest_oracle(
        anvil.url, keys, node, challenge_window_s=challenge_window_s
    )
    base = daemon_config(db_url, node, quorum=1, confirmations=confirmations, webhooks=webhooks)
    return dataclasses.replace(base, publisher=publisher_config(anvil.url, address, keys)), address


async def on_chain(anvil: AnvilNode, address: str, epoch: int):  # type: ignore[no-untyped-def]
    w3 = connect(anvil.url)
    try:
        return await OracleContract(w3, address).retarget(epoch)
    finally:
        await w3.provider.disconnect()  # type: ignore[attr-defined]


async def accepted_events(
    anvil: AnvilNode, address: str, name: str = "ReportAccepted"
) -> list[int]:
    """The epochs of every ``name`` event of the contract, ascending."""
    w3 = connect(anvil.url)
    try:
        contract = OracleContract(w3, address).contract
        logs = await getattr(contract.events, name)().get_logs(from_block=0)
        return sorted(int(entry["args"]["epoch"]) for entry in logs)
    finally:
        await w3.provider.disconnect()  # type: ignore[attr-defined]


async def test_retarget_published_with_right_values(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    node = bitcoind_factory()
    config, address = await publishing_config(pg_url, node, anvil, tmp_path / "k", confirmations=2)
    service = Service(config)
    async with running(service):
        node.mine(2016 + 1)
        await asyncio.sleep(1)
        assert await status_of(service, 1) == "agreed"  # 1 block on top, 2 required
        node.mine(1)
        await wait_for(lambda: _is(service, 1, "published"), 60, "epoch 1 published")
        block_hash = node.rpc("getblockhash", 2016)
        header = node.rpc("getblockheader", block_hash)
        stored = await on_chain(anvil, address, 1)
        assert stored.block_hash_hex == block_hash
        assert stored.bits == int(header["bits"], 16) and stored.time == header["time"]
        w3 = connect(anvil.url)
        try:
            contract = OracleContract(w3, address)
            expected = bme(14, [EpochTarget.from_bits(1, int(header["bits"], 16))]).fixed
            assert await contract.bme(14, 1) == expected
            record = await service.repository.index_value("regtest", 14, 1)
            assert record.fixed == expected
            assert await contract.config_version() == 1
        finally:
            await w3.provider.disconnect()  # type: ignore[attr-defined]
        stored = await service.repository.get_retarget("regtest", 1)
        assert stored is not None and stored.last_header is not None  # the proof's first half
        parent = node.rpc("getblockheader", node.rpc("getblockhash", 2015))
        assert stored.last_header.hex() == _raw_header(node, parent["hash"])
        assert await accepted_events(anvil, address) == [1]  # the genesis needs no report


async def test_reorg_before_confirmation_publishes_the_new_block(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    node = bitcoind_factory()
    config, address = await publishing_config(pg_url, node, anvil, tmp_path / "k", confirmations=3)
    service = Service(config)
    async with running(service):
        node.mine(2016)
        old = node.rpc("getblockhash", 2016)
        await wait_for(lambda: _is(service, 1, "agreed"), 60, "old block agreed")
        node.rpc("invalidateblock", old)
        node.mine(4, address=OTHER_ADDRESS)  # a competing block at 2016, then 3 on top
        new = node.rpc("getblockhash", 2016)
        assert new != old
        await wait_for(lambda: _is(service, 1, "published"), 90, "new block published")
        assert (await on_chain(anvil, address, 1)).block_hash_hex == new
        record = await service.repository.get_retarget("regtest", 1)
        assert record.block_hash_hex == new
        assert any(o.block_hash_hex == old and o.status == "orphaned" for o in record.others)
        assert await accepted_events(anvil, address) == [1]
        assert await accepted_events(anvil, address, "EpochReplaced") == []


async def test_an_epoch_stored_without_its_proof_header_is_observed_again_at_start(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    """An agreed, unpublished epoch without the 2016e-1 header (agreed before the release
    that stores it, or by the bound check) gets it from a fresh observation at start."""
    from oracle.store.repository import open_repository

    node = bitcoind_factory()
    node.mine(2016 + 2)
    config, address = await publishing_config(pg_url, node, anvil, tmp_path / "k", confirmations=2)
    block = str(node.rpc("getblockhash", 2016))
    header = node.rpc("getblockheader", block)
    repository = await open_repository(pg_url)
    try:
        stored = await repository.record_agreed(
            "regtest",
            epoch=1,
            height=2016,
            block_hash_hex=block,
            bits=int(header["bits"], 16),
            time=int(header["time"]),
            raw_header=bytes.fromhex(_raw_header(node, block)),
            sources=["bitcoind"],
        )
        assert stored.last_header is None
    finally:
        await repository.close()
    service = Service(config)
    async with running(service):
        await wait_for(lambda: _is(service, 1, "published"), 60, "epoch 1 published")
        record = await service.repository.get_retarget("regtest", 1)
        assert record is not None and record.last_header is not None
        assert record.last_header.hex() == _raw_header(node, header["previousblockhash"])
    assert (await on_chain(anvil, address, 1)).block_hash_hex == block


async def test_evm_node_restart_holds_then_recovers(
    bitcoind_factory: NodeFactory,
    anvil_factory: Callable[..., AnvilNode],
    pg_url: str,
    tmp_path: Path,
) -> None:
    node = bitcoind_factory()
    chain = anvil_factory(persistent=True)
    async with WebhookReceiver() as hooks:
        config, address = await publishing_config(
            pg_url, node, chain, tmp_path / "k", confirmations=0, webhooks=(hooks.url,)
        )
        service = Service(config)
        async with running(service):
            node.mine(2016)
            await wait_for(lambda: _is(service, 1, "published"), 60, "epoch 1 published")
            chain.stop()  # state is dumped; the daemon keeps running
            node.mine(2016)
            await wait_for(lambda: _is(service, 2, "agreed"), 60, "epoch 2 agreed while EVM down")
            await wait_for(lambda: _alerted(hooks, "publish_failed"), 60, "publish_failed alert")
            chain.start()
            node.mine(1)  # a new block triggers a pass (the 15 s retry job would too)
            await wait_for(lambda: _is(service, 2, "published"), 90, "epoch 2 after restart")
        assert await accepted_events(chain, address) == [1, 2]


def _raw_header(node: BitcoindNode, block_hash: str) -> str:
    return str(node.rpc("getblockheader", block_hash, False))


async def _is(service: Service, epoch: int, status: str) -> bool:
    return await status_of(service, epoch) == status


async def _alerted(hooks: WebhookReceiver, kind: str) -> bool:
    return kind in hooks.kinds()
