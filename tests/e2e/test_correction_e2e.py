"""A published retarget orphaned by a Bitcoin reorg: replaced on chain inside the challenge
window, with one critical alert; after the window, one critical alert and no replacement.

Real regtest bitcoind (``invalidateblock`` on the published retarget block, then a
longer competing chain), real anvil with the real contract (v2, regtest mode,
anchored at the regtest genesis), real Postgres, a real webhook receiver; the
daemon runs in-process (``Service``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from oracle.publish.contract import OracleContract, connect
from oracle.service import Service
from tests.e2e.helpers import PublicationPasses, WebhookReceiver, running, status_of, wait_for
from tests.e2e.test_publish_e2e import OTHER_ADDRESS, accepted_events, on_chain, publishing_config
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]
CONFIRMATIONS = 2


def critical(hooks: WebhookReceiver) -> list[dict[str, Any]]:
    return [a for a in hooks.alerts if a["severity"] == "critical" and a["status"] == "firing"]


async def publish_epoch_one(service: Service, node: BitcoindNode) -> str:
    """Mine epoch 1 with its confirmations; wait until it is published; its block hash."""
    node.mine(2016 + CONFIRMATIONS)
    await wait_for(lambda: _is(service, 1, "published"), 60, "epoch 1 published")
    return str(node.rpc("getblockhash", 2016))


def reorg_retarget(node: BitcoindNode) -> str:
    """Invalidate the retarget block of epoch 1 and mine a longer competing chain."""
    old_tip = node.height()
    node.rpc("invalidateblock", node.rpc("getblockhash", 2016))
    node.mine(old_tip - 2015 + 1, address=OTHER_ADDRESS)  # 2016' .. one past the old tip
    return str(node.rpc("getblockhash", 2016))


async def test_orphaned_publication_is_replaced_on_chain_within_the_window(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    node = bitcoind_factory()
    async with WebhookReceiver() as hooks:
        config, address = await publishing_config(
            pg_url, node, anvil, tmp_path / "k", confirmations=CONFIRMATIONS, webhooks=(hooks.url,)
        )
        service = Service(config)
        async with running(service):
            passes = PublicationPasses(service)
            old = await publish_epoch_one(service, node)
            new = reorg_retarget(node)
            assert new != old

            async def replaced() -> bool:
                stored = await on_chain(anvil, address, 1)
                record = await service.repository.get_retarget("regtest", 1)
                return (
                    stored.block_hash_hex == new
                    and record is not None
                    and (record.status, record.block_hash_hex) == ("published", new)
                )

            await wait_for(replaced, 90, "epoch 1 replaced on chain")
            for _ in range(2):  # two more passes: nothing else may be sent or alerted
                node.mine(1)
                await passes.after(node.height())
            await service.parts.monitor.alerter.drain()
        w3 = connect(anvil.url)
        try:
            logs = (
                await OracleContract(w3, address)
                .contract.events.EpochReplaced()
                .get_logs(from_block=0)
            )
        finally:
            await w3.provider.disconnect()  # type: ignore[attr-defined]
        (event,) = logs
        assert bytes(event["args"]["oldHash"]).hex() == old
        assert bytes(event["args"]["newHash"]).hex() == new
        assert await accepted_events(anvil, address) == [1]  # the first report, once
        (alert,) = critical(hooks)
        assert alert["kind"] == "orphaned_published" and alert["fields"]["epoch"] == 1
        assert "challenge window is open until" in alert["message"]
        (done,) = [
            a
            for a in hooks.alerts
            if a["status"] == "resolved" and a["kind"] == "orphaned_published"
        ]
        assert f"replaced on chain by block {new}" in done["message"]
        record = await _record(pg_url)
        assert any(o.block_hash_hex == old and o.status == "orphaned" for o in record.others)
        assert [p.block_hash_hex for p in record.publications] == [old, new]


async def test_after_the_window_one_alert_says_reanchor_and_nothing_is_sent(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    node = bitcoind_factory()
    async with WebhookReceiver() as hooks:
        config, address = await publishing_config(
            pg_url,
            node,
            anvil,
            tmp_path / "k",
            confirmations=CONFIRMATIONS,
            webhooks=(hooks.url,),
            challenge_window_s=60,
        )
        service = Service(config)
        async with running(service):
            passes = PublicationPasses(service)
            old = await publish_epoch_one(service, node)
            anvil.call("evm_increaseTime", hex(61))
            anvil.call("evm_mine")
            new = reorg_retarget(node)
            await wait_for(lambda: _is(service, 1, "agreed"), 60, "the new block agreed")
            assert (await service.repository.get_retarget("regtest", 1)).block_hash_hex == new  # type: ignore[union-attr]
            await wait_for(lambda: _has_critical(hooks), 30, "the critical alert")
            node.mine(2)  # more passes with the new block confirmed: still nothing sent
            await passes.after(node.height())
            await service.parts.monitor.alerter.drain()
            assert await status_of(service, 1) == "agreed"
        assert (await on_chain(anvil, address, 1)).block_hash_hex == old
        assert await accepted_events(anvil, address, "EpochReplaced") == []
        (alert,) = critical(hooks)
        assert alert["kind"] == "orphaned_published"
        assert "re-anchor by governance is needed" in alert["message"]
        assert not [a for a in hooks.alerts if a["kind"] == "publish_failed"]
        record = await _record(pg_url)
        assert [p.block_hash_hex for p in record.publications] == [old]
        service_rows = [
            (block, function)
            for block, function, _state in await _submissions_at(pg_url, address, (old, new))
        ]
        assert service_rows == [(old, "submit")]


async def _is(service: Service, epoch: int, status: str) -> bool:
    return await status_of(service, epoch) == status


async def _has_critical(hooks: WebhookReceiver) -> bool:
    return bool(critical(hooks))


async def _record(db_url: str) -> Any:
    from oracle.store.repository import open_repository

    repository = await open_repository(db_url)
    try:
        record = await repository.get_retarget("regtest", 1)
        assert record is not None
        return record
    finally:
        await repository.close()


async def _submissions_at(
    db_url: str, address: str, blocks: tuple[str, ...]
) -> list[tuple[str, str, str]]:
    from oracle.store.repository import open_repository

    repository = await open_repository(db_url)
    try:
        found = []
        for block in blocks:
            row = await repository.submission_for_epoch(31337, address, 1, block)
            if row is not None:
                found.append((row.block_hash_hex, row.function, row.state))
        return found
    finally:
        await repository.close()
