"""The service's monitor hub: pipeline and source events -> metrics, health samples, alerts.

Implements ``oracle.pipeline.Notifier`` and the source-call callback of
``oracle.instrument``. Alert kinds (each logged, counted in
``bme_oracle_alerts`` and POSTed to every webhook, rate-limited per incident):

* ``disagreement``        verified sources report different blocks for an epoch
* ``source_failing``      a source's requests fail (key: source)
* ``source_stale``        a source has not answered for ``monitor.source_stale_after_s``
* ``source_lagging``      a source's tip is more than 3 blocks behind the best tip
* ``orphaned_published``  a published retarget left the best chain (cannot be undone on chain)
* ``publish_failed``      publishing an agreed epoch failed (retried every 15 s)
* ``publication_late``    an agreed epoch stays unpublished past ``monitor.publication_late_s``
* ``onchain_mismatch``    the contract holds a different block than the database
* ``signer_balance_low``  the sending account's balance is below ``monitor.min_signer_balance_wei``
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog

from oracle.config import Config
from oracle.crosscheck import Agreed, Disputed
from oracle.instrument import SourceState
from oracle.monitor.alerts import Alerter
from oracle.monitor.metrics import Metrics
from oracle.watcher import EpochObserved

log = structlog.get_logger(__name__)
LAG_ALERT_BLOCKS = 3


class MonitorHub:
    """One per running oracle; owns the Metrics registry and the Alerter."""

    def __init__(self, config: Config, *, repository: Any, metrics: Metrics | None = None) -> None:
        self.config = config
        self.repository = repository
        self.metrics = metrics or Metrics(config.network.name)
        self.alerter = Alerter(config.monitor, self.metrics, network=config.network.name)
        self._agreed_at: dict[int, float] = {}

    # -- sources ---------------------------------------------------------------------------

    async def source_call(self, source: str, latency_ms: float, ok: bool, kind: str | None) -> None:
        self.metrics.observe_source_request(source, "request", latency_ms / 1000)
        if ok:
            self.metrics.set_source_healthy(source, True)
            await self.alerter.resolve("source_failing", key=source)
        else:
            self.metrics.count_source_error(source, kind or "unknown")
            self.metrics.set_source_healthy(source, False)
            await self.alerter.alert(
                "source_failing",
                f"source {source} failed: {kind}",
                key=source,
                severity="warning",
                source=source,
                error_kind=kind,
            )
        try:
            await self.repository.record_health(source, latency_ms, ok, kind, datetime.now(UTC))
        except Exception as exc:
            log.warning("health_sample_not_stored", source=source, error=str(exc))

    async def source_state(
        self, state: SourceState, *, age_s: float | None, lag_blocks: int | None
    ) -> None:
        if state.last_tip is not None:
            self.metrics.set_source_tip(state.name, state.last_tip.height)
        stale_after = self.config.monitor.source_stale_after_s
        if age_s is None or age_s > stale_after:
            await self.alerter.alert(
                "source_stale",
                f"source {state.name} has not answered for {stale_after:.0f} s",
                key=state.name,
                severity="warning",
                source=state.name,
                last_error=state.last_error,
            )
        else:
            await self.alerter.resolve("source_stale", key=state.name)
        if lag_blocks is not None and lag_blocks > LAG_ALERT_BLOCKS:
            await self.alerter.alert(
                "source_lagging",
                f"source {state.name} is {lag_blocks} blocks behind",
                key=state.name,
                severity="warning",
                source=state.name,
                lag_blocks=lag_blocks,
            )

    # -- pipeline (oracle.pipeline.Notifier) ----------------------------------------------

    async def outcome(self, observed: EpochObserved) -> None:
        outcome = observed.outcome
        self.metrics.count_tick(type(outcome).__name__.lower())
        if observed.trigger is not None:
            self.metrics.set_tip_height(observed.trigger.height)
        if isinstance(outcome, Agreed):
            self.metrics.set_last_agreed_epoch(outcome.epoch)
            self._agreed_at.setdefault(outcome.epoch, time.monotonic())
            await self.alerter.resolve("disagreement", key=str(outcome.epoch))

    async def disputed(self, epoch: int, fields: dict[str, dict[str, object]]) -> None:
        for name in fields:
            self.metrics.count_disagreement(name)
        await self.alerter.alert(
            "disagreement",
            f"sources disagree on epoch {epoch}: {', '.join(fields)}",
            key=str(epoch),
            epoch=epoch,
            claims={k: {s: str(v) for s, v in c.items()} for k, c in fields.items()},
        )

    async def orphaned(self, epoch: int, block_hash_hex: str, *, published: bool) -> None:
        if published:
            await self.alerter.alert(
                "orphaned_published",
                f"published retarget of epoch {epoch} ({block_hash_hex}) left the best chain",
                key=str(epoch),
                severity="critical",
                epoch=epoch,
                block=block_hash_hex,
            )
        else:
            log.warning("retarget_orphaned_before_publication", epoch=epoch, block=block_hash_hex)

    async def published(self, epoch: int, tx_hash: str | None, *, height: int, time: int) -> None:
        self.metrics.set_last_published_epoch(epoch)
        started = self._agreed_at.pop(epoch, None)
        if started is not None:
            self.metrics.observe_publication_lag(_monotonic() - started)
        await self.alerter.resolve("publish_failed", key=str(epoch))
        await self.alerter.resolve("publication_late", key=str(epoch))

    async def publish_failed(self, epoch: int, error: Exception) -> None:
        await self.alerter.alert(
            "publish_failed",
            f"publishing epoch {epoch} failed: {error}",
            key=str(epoch),
            epoch=epoch,
            error_type=type(error).__name__,
        )
        started = self._agreed_at.get(epoch)
        late_after = self.config.monitor.publication_late_s
        if started is not None and _monotonic() - started > late_after:
            await self.alerter.alert(
                "publication_late",
                f"epoch {epoch} agreed but unpublished for over {late_after:.0f} s",
                key=str(epoch),
                epoch=epoch,
            )

    # -- chain read-back -------------------------------------------------------------------

    async def readback(self, publisher: Any) -> None:
        """Compare the contract with the database; check the sender's balance."""
        mismatches = await publisher.readback(self.repository, self.config.network.name)
        for epoch, detail in mismatches:
            self.metrics.count_readback_mismatch()
            await self.alerter.alert(
                "onchain_mismatch",
                f"epoch {epoch}: {detail}",
                key=str(epoch),
                severity="critical",
                epoch=epoch,
            )
        balance = await publisher.sender_balance_wei()
        if balance is not None:
            self.metrics.set_signer_balance(balance)
            if balance < self.config.monitor.min_signer_balance_wei:
                await self.alerter.alert(
                    "signer_balance_low",
                    f"sender balance {balance} wei is below the minimum",
                    key="sender",
                    balance_wei=str(balance),
                )

    async def close(self) -> None:
        await self.alerter.close()


def _monotonic() -> float:
    return time.monotonic()


def build_notifier(config: Config, *, repository: Any, metrics: Metrics | None) -> MonitorHub:
    return MonitorHub(config, repository=repository, metrics=metrics)


__all__ = ["Disputed", "MonitorHub", "build_notifier"]
