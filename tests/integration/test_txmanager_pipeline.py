"""The pipeline's publication stage on contract v2: real anvil, real store, real publisher.

A regtest-mode contract anchored at a mined genesis header (epoch 0). Epoch 1 is
stored as agreed without the oracle's own 2016e-1 header (what the [1/4, 4] bound
check leaves): it cannot be published, which is alerted once (``ProofUnavailable``,
not every pass), and epoch 2 waits behind it, since the contract takes epochs in
order. Once the header is known, both land in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from oracle.config import MonitorConfig
from oracle.monitor.hub import MonitorHub
from oracle.pipeline import Pipeline
from oracle.publish.publisher import build_publisher
from oracle.store.repository import Repository
from tests.e2e.helpers import WebhookReceiver
from tests.fixtures.anvil import AnvilNode, ChainAccounts, OnChain
from tests.integration.test_txmanager_publisher import publisher_config
from tests.integration.test_txmanager_replace import BITS, Fork, _child

pytestmark = pytest.mark.anvil
NET = "regtest"


async def test_an_epoch_without_its_proof_header_is_alerted_once_and_later_ones_wait(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory()
    onchain = OnChain(node, test_accounts)
    fork = Fork.mine()
    oracle = await onchain.deploy(genesis=fork.checkpoint(), network="regtest", threshold=2)
    last2 = _child(fork.first, time_=fork.first.time + 600, salt=5)
    retarget2 = _child(last2, time_=fork.first.time + 1200, salt=6)
    for epoch, header, last in (
        (0, fork.genesis, None),
        (1, fork.first, None),  # agreed without its 2016e-1 header
        (2, retarget2, last2.raw),
    ):
        await repository.record_agreed(
            NET,
            epoch=epoch,
            height=epoch * 2016,
            block_hash_hex=header.block_hash_hex,
            bits=BITS,
            time=header.time,
            raw_header=header.raw,
            sources=["bitcoind"],
            last_header=last,
        )
    async with WebhookReceiver() as hooks:
        base = publisher_config(node, test_accounts, oracle.address, "correct horse battery staple")
        config = dataclasses.replace(
            base,
            network=dataclasses.replace(base.network, name=NET),
            monitor=MonitorConfig(webhooks=(hooks.url,), alert_min_interval_s=0.0),
        )
        publisher = await build_publisher(config, repository, poll_interval_s=0.05)
        hub = MonitorHub(config, repository=repository)
        pipeline = Pipeline(
            network=NET,
            repository=repository,
            notifier=hub,
            confirmations=0,
            publisher=publisher,
            use_checkpoints=False,
        )
        try:
            for _ in range(3):  # three passes, one alert
                assert (await pipeline.publish_confirmed(10_000)).published in ((0,), ())
            await hub.alerter.drain()
            statuses = [(await repository.get_retarget(NET, e)).status for e in (0, 1, 2)]  # type: ignore[union-attr]
            assert statuses == ["published", "agreed", "agreed"]  # the genesis is on chain
            (alert,) = [a for a in hooks.alerts if a["kind"] == "publish_failed"]
            assert alert["fields"]["error_type"] == "ProofUnavailable"
            assert "agreed without the oracle's own header at height 2015" in alert["message"]
            assert hub.metrics.sample("bme_oracle_publish_failures_total") == 1
            assert await oracle.latest_epoch() == 0

            # the header becomes known (a later observation verified by the rule): both land
            await repository.record_agreed(
                NET,
                epoch=1,
                height=2016,
                block_hash_hex=fork.first.block_hash_hex,
                bits=BITS,
                time=fork.first.time,
                raw_header=fork.first.raw,
                sources=["bitcoind"],
                last_header=fork.last.raw,
            )
            assert (await pipeline.publish_confirmed(10_000)).published == (1, 2)
            assert await oracle.latest_epoch() == 2
            record = await repository.get_retarget(NET, 2)
            assert record is not None and record.publications[0].tx_hash is not None
        finally:
            await publisher.close()
            await hub.close()
            await onchain.w3.provider.disconnect()
