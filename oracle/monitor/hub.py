"""The service's monitor hub: pipeline and source events -> metrics, health samples, alerts.

Implements ``oracle.pipeline.Notifier`` and the source-call callback of
``oracle.monitor.instrument``. Alert policy lives in ``oracle.monitor.watchdog.Watchdog``
(disagreement, source_failing, source_stale, publication_late,
signer_balance_low, readback_mismatch, peer_conflict); the hub adds the two
incidents only the pipeline can see:

* ``publish_failed``      publishing an agreed epoch failed (retried every 15 s; a refusal
                          retrying cannot fix, such as ``ProofUnavailable``, is raised once)
* ``orphaned_published``  a published retarget left the best chain: one critical alert that
                          says whether the daemon will replace it on chain (its challenge
                          window is open; resolved when the replacement lands) or a re-anchor
                          by governance is needed
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog
from eth_typing import HexStr

from oracle.agreement.crosscheck import Agreed
from oracle.agreement.watcher import EpochObserved
from oracle.config import Config
from oracle.monitor.alerts import Alerter
from oracle.monitor.instrument import InstrumentedSource
from oracle.monitor.metrics import Metrics
from oracle.monitor.watchdog import Watchdog
from oracle.publish.publisher import Publisher
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)
PUBLISH_FAILED = "publish_failed"
ORPHANED_PUBLISHED = "orphaned_published"


class MonitorHub:
    """One per running oracle; owns the Metrics registry, the Alerter and the Watchdog."""

    def __init__(
        self, config: Config, *, repository: Repository, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.repository = repository
        self.metrics = metrics or Metrics(config.network.name)
        self.alerter = Alerter(config.monitor, self.metrics, network=config.network.name)
        self.watchdog = Watchdog(config.monitor, self.metrics, self.alerter)
        #: set by ``oracle.wiring`` when publishing is enabled (receipts, read-back, balance)
        self.publisher: Publisher | None = None

    # -- sources ---------------------------------------------------------------------------

    async def source_call(self, source: str, latency_ms: float, ok: bool, kind: str | None) -> None:
        """Every source request: latency and errors to metrics, a stored health sample."""
        self.metrics.observe_source_request(source, "request", latency_ms / 1000)
        if not ok:
            self.metrics.count_source_error(source, kind or "unknown")
        try:
            await self.repository.record_health(source, latency_ms, ok, kind, datetime.now(UTC))
        except Exception as exc:  # a health sample must never break a pass
            log.warning("health_sample_not_stored", source=source, error=str(exc))

    async def check_sources(self, sources: Sequence[InstrumentedSource]) -> None:
        """Scheduled: judge every source (failing, stale) and publish tips for lag metrics."""
        now = time.time()
        verdicts = []
        for source in sources:
            state = source.state
            if state.last_tip is not None:
                self.metrics.set_source_tip(state.name, state.last_tip.height)
            verdicts.append(
                state.verdict(now=now, stale_after_s=self.config.monitor.source_stale_after_s)
            )
        await self.watchdog.sources(verdicts)

    # -- pipeline (oracle.pipeline.Notifier) ----------------------------------------------

    async def outcome(self, observed: EpochObserved) -> None:
        self.metrics.count_tick(type(observed.outcome).__name__.lower())
        if observed.trigger is not None:
            self.metrics.set_tip_height(observed.trigger.height)
        if isinstance(observed.outcome, Agreed):
            self.metrics.set_last_agreed_epoch(observed.outcome.epoch)

    async def disputed(self, epoch: int, fields: dict[str, dict[str, object]]) -> None:
        for name, claims in fields.items():
            await self.watchdog.disagreement(epoch, name, {s: str(v) for s, v in claims.items()})

    async def orphaned(
        self, epoch: int, block_hash_hex: str, *, published: bool, detail: str | None = None
    ) -> None:
        """A retarget left the best chain; when it was published, one critical alert whose
        ``detail`` (from the contract) says whether the daemon will replace it on chain."""
        if not published:
            log.warning("retarget_orphaned_before_publication", epoch=epoch, block=block_hash_hex)
            return
        self.metrics.count_orphaned_published()
        message = f"published retarget of epoch {epoch} ({block_hash_hex}) left the best chain"
        await self.alerter.alert(
            ORPHANED_PUBLISHED,
            f"{message}; {detail}" if detail else message,
            key=f"epoch:{epoch}",
            severity="critical",
            epoch=epoch,
            block=block_hash_hex,
        )

    async def replaced(
        self, epoch: int, old_hash_hex: str | None, new_hash_hex: str, tx_hash: str | None
    ) -> None:
        """The daemon replaced an orphaned publication on chain: the incident is over."""
        await self.alerter.resolve(
            ORPHANED_PUBLISHED,
            f"epoch {epoch} replaced on chain by block {new_hash_hex} (tx {tx_hash})",
            key=f"epoch:{epoch}",
            epoch=epoch,
            old_block=old_hash_hex,
            block=new_hash_hex,
            tx_hash=tx_hash,
        )

    async def published(self, epoch: int, tx_hash: str | None, *, height: int, time: int) -> None:
        gas_used = await self._gas_used(tx_hash)
        await self.watchdog.published(
            epoch=epoch, retarget_time=time, confirmed_at=_now(), gas_used=gas_used
        )
        await self.alerter.resolve(PUBLISH_FAILED, f"epoch {epoch} published", key=f"epoch:{epoch}")

    async def publish_failed(self, epoch: int, error: Exception, *, time: int) -> None:
        self.metrics.count_publish_failure()
        await self.alerter.alert(
            PUBLISH_FAILED,
            f"publishing epoch {epoch} failed: {error}",
            key=f"epoch:{epoch}",
            epoch=epoch,
            error_type=type(error).__name__,
        )
        await self.watchdog.publication(
            epoch=epoch, retarget_time=time, published=False, now=_now()
        )

    async def _gas_used(self, tx_hash: str | None) -> int:
        if tx_hash is None or self.publisher is None:
            return 0
        try:
            receipt = await self.publisher.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except Exception as exc:  # a metric, not a reason to fail a pass
            log.warning("receipt_unavailable", tx_hash=tx_hash, error=str(exc))
            return 0
        return int(receipt["gasUsed"])

    # -- scheduled checks ------------------------------------------------------------------

    async def check_publication(self, network: str) -> None:
        """Scheduled: agreed epochs still unpublished past the threshold are late (epochs
        before the contract's genesis are never published, so never late)."""
        late = 0
        genesis = await self._genesis()
        for epoch in await self.repository.epochs_with_status(network, RetargetStatus.AGREED):
            if genesis is not None and epoch < genesis:
                continue
            record = await self.repository.get_retarget(network, epoch)
            if record is not None and await self.watchdog.publication(
                epoch=epoch, retarget_time=record.time, published=False, now=_now()
            ):
                late += 1
        self.metrics.set_publication_late_epochs(late)

    async def _genesis(self) -> int | None:
        """The contract's genesis epoch, None without a publisher or when it cannot be read."""
        if self.publisher is None:
            return None
        try:
            return await self.publisher.oracle.first_epoch()
        except Exception as exc:  # a scheduled check, not a reason to fail
            log.warning("genesis_unavailable", error=str(exc))
            return None

    async def readback(self, network: str, *, depth: int = 6) -> None:
        """Scheduled: the contract must hold exactly what the database says was published
        (from its genesis on: epochs before it were published to an earlier contract)."""
        publisher = self.publisher
        if publisher is None:
            return
        genesis = await self._genesis()
        published = [
            epoch
            for epoch in await self.repository.epochs_with_status(network, RetargetStatus.PUBLISHED)
            if genesis is None or epoch >= genesis
        ][-depth:]
        for epoch in published:
            record = await self.repository.get_retarget(network, epoch)
            if record is None:  # listed as published a moment ago; pruned or rolled back since
                continue
            on_chain = await publisher.read_back(epoch)
            stored = {"block_hash": record.block_hash_hex, "bits": record.bits, "time": record.time}
            await self.watchdog.readback(
                epoch=epoch,
                stored=stored,
                on_chain=None
                if on_chain is None
                else {
                    "block_hash": on_chain.block_hash_hex,
                    "bits": on_chain.bits,
                    "time": on_chain.time,
                },
            )
        sender = publisher.manager.sender.address
        balance = int(await publisher.w3.eth.get_balance(sender))
        await self.watchdog.signer_balance(sender, balance)

    async def close(self) -> None:
        await self.alerter.close()


def _now() -> float:
    return time.time()
