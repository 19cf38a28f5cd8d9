"""The service's monitor hub: pipeline and source events -> metrics, health samples, alerts.

Implements ``oracle.pipeline.Notifier`` and the source-call callback of
``oracle.monitor.instrument``. Alert policy lives in ``oracle.monitor.watchdog.Watchdog``
(disagreement, source_failing, source_stale, publication_late,
signer_balance_low, readback_mismatch, peer_conflict); the hub adds the two
incidents only the pipeline can see:

* ``publish_failed``      publishing an agreed epoch failed (retried every 15 s; a refusal
                          retrying cannot fix, such as ``ProofUnavailable``, is raised once);
                          key ``chain``: the EVM chain cannot be used at all (unreachable,
                          wrong chain id, no contract), resolved when it can
* ``orphaned_published``  a published retarget left the best chain: one critical alert that
                          says whether the daemon will replace it on chain (its challenge
                          window is open; resolved when the replacement lands) or a re-anchor
                          by governance is needed

From the watcher's outcomes it also learns what no single request shows: a
source whose retarget answers fail the oracle's own verification is marked so
(``SourceState.note_rejected``) and judged unhealthy in ``/ready``,
``/v1/status``, the metrics and a ``source_failing`` alert; an epoch whose
retarget block is there but not agreed (disputed, or no quorum) is remembered
and raises ``publication_late`` once it is ``monitor.publication_late_s`` past
its retarget block (the median header time the sources reported, or when this
node first saw it, whichever is earlier), checked at every observation and by
the scheduled ``check_publication``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from eth_typing import HexStr

from oracle.agreement.crosscheck import Agreed, Disputed, Insufficient
from oracle.agreement.watcher import EpochObserved
from oracle.config import Config
from oracle.monitor.alerts import Alerter
from oracle.monitor.instrument import InstrumentedSource
from oracle.monitor.metrics import Metrics
from oracle.monitor.watchdog import Watchdog
from oracle.publish.publisher import Publisher
from oracle.sources.types import Observation
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)
PUBLISH_FAILED = "publish_failed"
ORPHANED_PUBLISHED = "orphaned_published"
#: the incident key of a chain that cannot be used at all
CHAIN_KEY = "chain"


@dataclass(frozen=True, slots=True)
class Unagreed:
    """An epoch whose retarget block is there but has no agreed value yet."""

    since: float  # unix seconds: the retarget block's time, as far as it is known
    detail: str  # "disputed: bits" / "no quorum: ..."


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
        #: set by ``oracle.wiring``: the sources whose answers the outcomes judge
        self.sources: list[InstrumentedSource] = []
        #: epochs observed without agreement, by epoch
        self.unagreed: dict[int, Unagreed] = {}
        #: False for replay (``oracle.wiring``): history judges no source and makes no epoch late
        self.live = True

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
        if not self.live:
            return
        if self._judge_answers(observed):
            await self.check_sources(self.sources)
        await self._note_agreement(observed)

    def _judge_answers(self, observed: EpochObserved) -> bool:
        """Mark each answering source verified or rejected; True if any source was judged."""
        by_name = {source.name: source for source in self.sources}
        judged = False
        for result in observed.results:
            source = by_name.get(result.source)
            if source is None or not isinstance(result, Observation):
                continue
            verification = observed.verifications.get(result.source)
            if verification is not None and verification.ok:
                source.state.note_verified()
            else:
                problems = verification.problems if verification is not None else ()
                source.state.note_rejected("; ".join(problems) or "not verified")
                log.warning(
                    "source_answer_rejected", source=result.source, epoch=observed.epoch,
                    problems=list(problems),
                )  # fmt: skip
            judged = True
        return judged

    async def _note_agreement(self, observed: EpochObserved) -> None:
        """Remember an epoch without agreement (alert once it is late); forget it once agreed."""
        epoch, outcome = observed.epoch, observed.outcome
        if isinstance(outcome, Agreed):
            if self.unagreed.pop(epoch, None) is not None and self.publisher is None:
                await self.watchdog.agreed(epoch)  # a publishing node resolves at publication
            return
        now = _now()
        times = sorted(r.header.time for r in observed.results if isinstance(r, Observation))
        since = min(now, times[len(times) // 2]) if times else now
        previous = self.unagreed.get(epoch)
        if previous is not None:
            since = min(since, previous.since)
        entry = Unagreed(since=since, detail=_describe(outcome))
        self.unagreed[epoch] = entry
        await self.watchdog.unagreed(epoch=epoch, since=entry.since, detail=entry.detail, now=now)

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

    async def chain_unavailable(self, error: BaseException) -> None:
        """The EVM chain cannot be used (unreachable, wrong chain id, no contract): nothing
        can be published until it can; the Bitcoin side carries on."""
        self.metrics.count_publish_failure()
        await self.alerter.alert(
            PUBLISH_FAILED,
            f"cannot publish: the EVM chain is not usable ({error}); observation and "
            "agreement carry on, publication resumes when the chain answers",
            key=CHAIN_KEY,
            error_type=type(error).__name__,
        )

    async def chain_available(self) -> None:
        await self.alerter.resolve(PUBLISH_FAILED, "the EVM chain answers", key=CHAIN_KEY)

    async def check_publication(self, network: str, *, agreed: bool = True) -> None:
        """Scheduled: epochs without agreement and (with ``agreed``: a publishing node)
        agreed epochs still unpublished past the threshold are late (epochs before the
        contract's genesis are never published, so never late)."""
        now = _now()
        late = 0
        for epoch, entry in sorted(self.unagreed.items()):
            if await self.watchdog.unagreed(
                epoch=epoch, since=entry.since, detail=entry.detail, now=now
            ):
                late += 1
        if not agreed:
            self.metrics.set_publication_late_epochs(late)
            return
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


def _describe(outcome: Disputed | Insufficient) -> str:
    if isinstance(outcome, Disputed):
        return f"disputed: sources disagree on {', '.join(outcome.fields_in_dispute) or '?'}"
    return f"no quorum: {'; '.join(outcome.reasons) or '?'}"
