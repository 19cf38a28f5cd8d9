"""Watchdog: facts -> metrics, alerts and resolutions, delivered to a real local webhook."""

from __future__ import annotations

from typing import Any

from oracle.config import MonitorConfig
from oracle.monitor.alerts import Alerter
from oracle.monitor.health import SourceHealth
from oracle.monitor.metrics import Metrics
from oracle.monitor.watchdog import Watchdog
from tests.unit.test_alerts import Receiver, receiver  # noqa: F401  (fixture)

ALERTS = "bme_oracle_alerts_total"


def _watchdog(url: str, **config: Any) -> tuple[Watchdog, Alerter, Metrics]:
    metrics = Metrics()
    monitor = MonitorConfig(webhooks=(url,), webhook_retries=0, **config)
    alerter = Alerter(monitor, metrics, backoff_base_s=0.01)
    return Watchdog(monitor, metrics, alerter), alerter, metrics


async def test_sources_alert_once_and_resolve(receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    hook, url = receiver
    watchdog, alerter, metrics = _watchdog(url)
    bad = [SourceHealth("bitcoind", True), SourceHealth("esplora", False, "stale: 4000 s")]
    await watchdog.sources(bad)
    await watchdog.sources(bad)  # same incident: rate-limited
    await watchdog.sources([SourceHealth("bitcoind", True), SourceHealth("esplora", True)])
    await alerter.close()
    assert [(p["kind"], p["key"], p["status"]) for p in hook.received] == [
        ("source_stale", "esplora", "firing"),
        ("source_stale", "esplora", "resolved"),
    ]
    assert metrics.sample("bme_oracle_source_healthy", {"source": "esplora"}) == 1
    assert metrics.sample(ALERTS, {"kind": "source_stale", "outcome": "suppressed"}) == 1


async def test_publication_late_only_past_the_threshold(receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    hook, url = receiver
    watchdog, alerter, metrics = _watchdog(url, publication_late_s=3600.0)
    retarget_time = 1_706_888_526
    now = retarget_time + 3600
    assert (
        await watchdog.publication(epoch=411, retarget_time=retarget_time, published=False, now=now)
        is False
    )
    assert (
        await watchdog.publication(
            epoch=411, retarget_time=retarget_time, published=False, now=now + 1
        )
        is True
    )
    await watchdog.published(
        epoch=411, retarget_time=retarget_time, confirmed_at=now + 60, gas_used=150_000
    )
    await alerter.close()
    assert [(p["kind"], p["status"]) for p in hook.received] == [
        ("publication_late", "firing"),
        ("publication_late", "resolved"),
    ]
    assert hook.received[0]["fields"]["late_s"] == 3601
    assert metrics.sample("bme_oracle_last_published_epoch") == 411
    assert metrics.sample("bme_oracle_publication_lag_seconds_sum") == 3660
    assert metrics.sample("bme_oracle_gas_used_sum") == 150_000


async def test_signer_balance_low(receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    hook, url = receiver
    watchdog, alerter, _ = _watchdog(url, min_signer_balance_wei=10**16)
    signer = "0x" + "11" * 20
    assert await watchdog.signer_balance(signer, 10**16) is False
    assert await watchdog.signer_balance(signer, 10**16 - 1) is True
    await alerter.close()
    [payload] = hook.received
    assert payload["kind"] == "signer_balance_low" and payload["key"] == signer
    assert payload["fields"]["balance_wei"] == str(10**16 - 1)


async def test_readback_mismatch_names_the_fields(receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    hook, url = receiver
    watchdog, alerter, metrics = _watchdog(url)
    stored = {"block_hash": "00" * 32, "bits": 0x1703BA5D, "time": 1706888526}
    assert await watchdog.readback(epoch=411, stored=stored, on_chain=dict(stored)) is True
    assert (
        await watchdog.readback(epoch=411, stored=stored, on_chain={**stored, "bits": 1}) is False
    )
    assert await watchdog.readback(epoch=412, stored=stored, on_chain=None) is False
    await alerter.close()
    assert [p["message"] for p in hook.received] == [
        "contract and database differ for epoch 411: bits",
        "contract and database differ for epoch 412: bits, block_hash, time",
    ]
    assert metrics.sample("bme_oracle_readback_mismatches_total") == 2


async def test_disagreement_and_peer_conflict(receiver: tuple[Receiver, str]) -> None:  # noqa: F811
    hook, url = receiver
    watchdog, alerter, metrics = _watchdog(url)
    await watchdog.disagreement(412, "bits", {"bitcoind": "1702d2b1", "liar": "1d00ffff"})
    await watchdog.peer_conflict("https://user:pw@peer.example:8443/attest", 412, {"reports": 2})
    await alerter.close()
    assert [p["kind"] for p in hook.received] == ["disagreement", "peer_conflict"]
    assert hook.received[0]["fields"]["claims"] == {"bitcoind": "1702d2b1", "liar": "1d00ffff"}
    assert hook.received[1]["key"] == "https://peer.example:8443:412"
    assert "pw" not in str(hook.received[1])
    assert metrics.sample("bme_oracle_disagreements_total", {"field": "bits"}) == 1
    assert (
        metrics.sample("bme_oracle_peer_conflicts_total", {"peer": "https://peer.example:8443"})
        == 1
    )
