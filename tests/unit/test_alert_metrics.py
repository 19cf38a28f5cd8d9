"""The metrics that let Prometheus rules mirror the webhook alerts (deploy/prometheus):
each is set exactly where its alert is raised."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from oracle.config import Config, MonitorConfig
from oracle.monitor.alerts import Alerter
from oracle.monitor.health import SourceHealth
from oracle.monitor.hub import MonitorHub
from oracle.monitor.metrics import Metrics
from oracle.monitor.watchdog import Watchdog
from oracle.store.states import RetargetStatus


def _watchdog(**config: Any) -> tuple[Watchdog, Alerter, Metrics]:
    metrics = Metrics()
    monitor = MonitorConfig(**config)  # no webhooks: logged and counted only
    alerter = Alerter(monitor, metrics)
    return Watchdog(monitor, metrics, alerter), alerter, metrics


class _Repository:
    """The two reads ``MonitorHub.check_publication`` makes, over a fixed set of epochs."""

    def __init__(self, agreed: dict[int, int]) -> None:
        self.agreed = agreed  # epoch -> retarget block header time

    async def epochs_with_status(self, network: str, status: RetargetStatus) -> list[int]:
        assert status == RetargetStatus.AGREED
        return sorted(self.agreed)

    async def get_retarget(self, network: str, epoch: int) -> Any:
        return SimpleNamespace(time=self.agreed[epoch]) if epoch in self.agreed else None


def _hub(repository: Any = None) -> MonitorHub:
    return MonitorHub(Config(), repository=repository or _Repository({}))


async def test_source_stale_tells_stale_from_failing() -> None:
    watchdog, alerter, metrics = _watchdog()
    await watchdog.sources(
        [
            SourceHealth("bitcoind", True),
            SourceHealth("mempool", False, "failing: timeout"),
            SourceHealth("blockstream", False, "stale: last success 4000 s ago"),
        ]
    )
    stale = "bme_oracle_source_stale"
    assert metrics.sample(stale, {"source": "bitcoind"}) == 0
    assert metrics.sample(stale, {"source": "mempool"}) == 0
    assert metrics.sample(stale, {"source": "blockstream"}) == 1
    await watchdog.sources([SourceHealth("blockstream", True)])
    assert metrics.sample(stale, {"source": "blockstream"}) == 0
    await alerter.close()


async def test_signer_balance_comes_with_its_minimum() -> None:
    watchdog, alerter, metrics = _watchdog(min_signer_balance_wei=10**16)
    assert metrics.sample("bme_oracle_signer_balance_minimum_wei") == 0  # not checked yet
    assert await watchdog.signer_balance("0x" + "11" * 20, 5 * 10**15) is True
    assert metrics.sample("bme_oracle_signer_balance_wei") == 5 * 10**15
    assert metrics.sample("bme_oracle_signer_balance_minimum_wei") == 10**16
    await alerter.close()


async def test_publish_failures_and_orphaned_publications_are_counted() -> None:
    hub = _hub()
    try:
        assert hub.metrics.sample("bme_oracle_publish_failures_total") == 0
        await hub.publish_failed(431, RuntimeError("EnforcedPause"), time=1_700_000_000)
        await hub.publish_failed(431, RuntimeError("EnforcedPause"), time=1_700_000_000)
        assert hub.metrics.sample("bme_oracle_publish_failures_total") == 2
        await hub.orphaned(430, "00" * 32, published=False)  # not published: no incident
        assert hub.metrics.sample("bme_oracle_orphaned_published_total") == 0
        await hub.orphaned(429, "00" * 32, published=True)
        assert hub.metrics.sample("bme_oracle_orphaned_published_total") == 1
        sent = {"outcome": "sent"}
        assert hub.metrics.sample("bme_oracle_alerts_total", {"kind": "publish_failed", **sent})
        assert hub.metrics.sample("bme_oracle_alerts_total", {"kind": "orphaned_published", **sent})
    finally:
        await hub.close()


async def test_late_epochs_are_counted_by_each_publication_check() -> None:
    import time

    now = time.time()
    late_s = Config().monitor.publication_late_s
    repository = _Repository({430: int(now - late_s - 600), 431: int(now - 60)})
    hub = _hub(repository)
    try:
        await hub.check_publication("mainnet")
        assert hub.metrics.sample("bme_oracle_publication_late_epochs") == 1
        repository.agreed[431] = int(now - late_s - 60)  # now both are late
        await hub.check_publication("mainnet")
        assert hub.metrics.sample("bme_oracle_publication_late_epochs") == 2
        repository.agreed.clear()  # published
        await hub.check_publication("mainnet")
        assert hub.metrics.sample("bme_oracle_publication_late_epochs") == 0
    finally:
        await hub.close()
