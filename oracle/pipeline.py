"""One pass of the oracle's data flow, shared by ``run`` and ``replay``.

    watcher event -> store observations -> (agreed) store retarget -> indices
                                        -> (disputed) store disagreement, alert
                  -> publish every agreed epoch that has enough confirmations

Every step is idempotent (the store upserts, the publisher keys on the epoch
and asks the contract first), so repeating a pass after a crash is harmless.
The pipeline decides nothing from memory: publication is driven by what the
database says is agreed and unpublished, and by the current tip. After each
step that wrote to the store it calls ``on_change`` (the daemon's API rebuilds
its in-memory snapshot then, ``oracle.api.state``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from oracle.agreement.crosscheck import CLAIM_FIELDS, Agreed, Disputed, Insufficient
from oracle.agreement.reorg import RetargetOrphaned, TipRegressed
from oracle.agreement.watcher import EpochObserved, RetargetWatcher, WatchEvent
from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.errors import PublishDeferred, PublishError
from oracle.index.bme import EpochTarget, bme_series
from oracle.sources.checkpoints import mainnet_checkpoints
from oracle.sources.types import Observation, SourceFailure
from oracle.store.records import AgreedEpoch, ObservationInput
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)


class Publisher(Protocol):
    """Lands one agreed retarget on chain exactly once (see ``oracle.publish``)."""

    async def publish_epoch(self, epoch: int, raw_header: bytes) -> str | None:
        """Return the tx hash that carries the epoch (None when it was already on chain)."""
        ...


class Notifier(Protocol):
    """Where the pipeline reports what happened (metrics, alerts); see ``oracle.monitor``."""

    async def outcome(self, observed: EpochObserved) -> None: ...

    async def disputed(self, epoch: int, fields: dict[str, dict[str, object]]) -> None: ...

    async def orphaned(self, epoch: int, block_hash_hex: str, *, published: bool) -> None: ...

    async def published(
        self, epoch: int, tx_hash: str | None, *, height: int, time: int
    ) -> None: ...

    async def publish_failed(self, epoch: int, error: Exception, *, time: int) -> None: ...


@dataclass(frozen=True, slots=True)
class PassSummary:
    """What one pass did (replay adds these up)."""

    agreed: tuple[int, ...] = ()
    disputed: tuple[int, ...] = ()
    insufficient: tuple[tuple[int, str], ...] = ()
    published: tuple[int, ...] = ()


@dataclass
class Pipeline:
    """Wires the stages; it holds no state that the database does not also hold."""

    network: str
    repository: Repository
    notifier: Notifier
    confirmations: int
    index_days: Sequence[int] = (14, 28, 84)
    publisher: Publisher | None = None
    use_checkpoints: bool = True
    #: Called (synchronously, cheaply) after each step that wrote to the store.
    on_change: Callable[[], None] | None = None
    _checkpoint_hashes: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.use_checkpoints and self.network == "mainnet":
            self._checkpoint_hashes = {
                height // EPOCH_BLOCKS: header.block_hash_hex
                for height, header in mainnet_checkpoints().items()
                if height % EPOCH_BLOCKS == 0
            }

    # -- events ----------------------------------------------------------------------------

    async def handle(self, event: WatchEvent) -> PassSummary:
        """Route one watcher event to its stage."""
        if isinstance(event, EpochObserved):
            try:
                return await self.on_observed(event)
            finally:
                self._changed()  # observations are stored whatever the outcome
        if isinstance(event, RetargetOrphaned):
            try:
                await self.on_orphaned(event)
            finally:
                self._changed()
        elif isinstance(event, TipRegressed):
            log.warning(
                "tip_regressed",
                source=event.current.source,
                kind=event.kind,
                previous=event.previous.height,
                current=event.current.height,
            )
        return PassSummary()

    async def on_observed(self, observed: EpochObserved, *, index: bool = True) -> PassSummary:
        """Store what every source said, then act on the outcome.

        ``index=False`` leaves the indices to the caller (replay recomputes them
        once for the whole range instead of once per epoch).
        """
        repo = self.repository
        epoch = observed.epoch
        with structlog.contextvars.bound_contextvars(
            network=self.network, epoch=epoch, height=epoch * EPOCH_BLOCKS
        ):
            await repo.record_observations(self.network, observation_inputs(observed))
            outcome = self._anchor(observed.outcome)
            await self.notifier.outcome(observed)
            if isinstance(outcome, Agreed):
                await repo.record_agreed(
                    self.network,
                    epoch=epoch,
                    height=outcome.height,
                    block_hash_hex=outcome.block_hash_hex,
                    bits=outcome.bits,
                    time=outcome.time,
                    raw_header=outcome.header,
                    sources=outcome.sources,
                )
                if index:
                    await self.update_indices(from_epoch=epoch)
                log.info(
                    "epoch_agreed",
                    block=outcome.block_hash_hex,
                    bits=f"{outcome.bits:08x}",
                    sources=list(outcome.sources),
                )
                return PassSummary(agreed=(epoch,))
            if isinstance(outcome, Disputed):
                fields = dispute_fields(outcome)
                for name, claims in fields.items():
                    await repo.record_disagreement(self.network, epoch, name, claims)
                await self.notifier.disputed(epoch, fields)
                log.error("epoch_disputed", fields=list(fields))
                return PassSummary(disputed=(epoch,))
            reason = "; ".join(outcome.reasons) if isinstance(outcome, Insufficient) else "?"
            log.warning("epoch_insufficient", reason=reason)
            return PassSummary(insufficient=((epoch, reason),))

    def _anchor(
        self, outcome: Agreed | Disputed | Insufficient
    ) -> Agreed | Disputed | Insufficient:
        """A quorum that contradicts a bundled mainnet checkpoint is not an agreement."""
        if not isinstance(outcome, Agreed):
            return outcome
        expected = self._checkpoint_hashes.get(outcome.epoch)
        if expected is None or expected == outcome.block_hash_hex:
            return outcome
        log.error("checkpoint_mismatch", block=outcome.block_hash_hex, checkpoint=expected)
        return Insufficient(
            epoch=outcome.epoch,
            height=outcome.height,
            reasons=(
                f"sources {', '.join(outcome.sources)} agree on {outcome.block_hash_hex}, "
                f"but the bundled checkpoint is {expected}",
            ),
        )

    async def on_orphaned(self, event: RetargetOrphaned) -> None:
        """A stored retarget left the best chain: keep it, marked orphaned, unless published."""
        record = await self.repository.get_retarget(self.network, event.epoch)
        published = (
            record is not None
            and record.status == RetargetStatus.PUBLISHED
            and (record.block_hash_hex == event.stored_hash_hex)
        )
        if not published:
            await self.repository.mark_orphaned(self.network, event.epoch, event.stored_hash_hex)
        await self.notifier.orphaned(event.epoch, event.stored_hash_hex, published=published)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- indices ---------------------------------------------------------------------------

    async def update_indices(self, *, from_epoch: int) -> int:
        """Recompute BME_N for every agreed epoch >= ``from_epoch``; return values written."""
        history = await self.repository.agreed_history(self.network)
        targets = [EpochTarget.from_bits(item.epoch, item.bits, item.time) for item in history]
        values = [
            value
            for n in self.index_days
            for epoch, value in bme_series(n, targets).items()
            if epoch >= from_epoch
        ]
        if values:
            await self.repository.upsert_index_values(self.network, values)
        return len(values)

    # -- publication -----------------------------------------------------------------------

    async def publish_confirmed(self, tip_height: int) -> PassSummary:
        """Publish every agreed epoch with ``confirmations`` blocks on top, oldest first."""
        if self.publisher is None:
            return PassSummary()
        published: list[int] = []
        attempted: list[int] = []
        try:
            await self._publish_due(tip_height, published, attempted)
        finally:
            if attempted:  # signatures, submissions or publications were stored
                self._changed()
        return PassSummary(published=tuple(published))

    async def _publish_due(
        self, tip_height: int, published: list[int], attempted: list[int]
    ) -> None:
        """Publish each confirmed agreed epoch in order; stop at the first that cannot go."""
        assert self.publisher is not None
        for epoch in await self.repository.epochs_with_status(self.network, RetargetStatus.AGREED):
            record = await self.repository.get_retarget(self.network, epoch)
            if record is None or tip_height - record.height < self.confirmations:
                continue
            attempted.append(epoch)
            with structlog.contextvars.bound_contextvars(
                network=self.network, epoch=epoch, height=record.height
            ):
                try:
                    if record.raw_header is None:
                        raise PublishError(f"epoch {epoch} has no stored header to submit")
                    tx_hash = await self.publisher.publish_epoch(epoch, record.raw_header)
                except PublishDeferred as exc:
                    log.info("publish_deferred", reason=str(exc))
                    break  # later epochs wait for this one; the next pass retries
                except Exception as exc:
                    log.error("publish_failed", error=str(exc), error_type=type(exc).__name__)
                    await self.notifier.publish_failed(epoch, exc, time=record.time)
                    break  # keep epochs in order on chain; retry next pass
                await self.repository.mark_published(
                    self.network,
                    epoch,
                    tx_hash=tx_hash or "",
                    chain_id=self._chain_id(),
                    contract_address=self._contract(),
                )
                await self.notifier.published(
                    epoch, tx_hash, height=record.height, time=record.time
                )
                log.info("epoch_published", tx_hash=tx_hash)
                published.append(epoch)

    def _chain_id(self) -> int:
        return int(getattr(self.publisher, "chain_id", 0))

    def _contract(self) -> str:
        return str(getattr(self.publisher, "contract_address", ""))


def observation_inputs(observed: EpochObserved) -> list[ObservationInput]:
    """Every source's answer (and failed side fetches) as store records."""
    items: list[ObservationInput] = []
    for result in (*observed.results, *observed.side_failures):
        if isinstance(result, Observation):
            header = result.header
            verification = observed.verifications.get(result.source)
            problems = verification.problems if verification is not None else ("not verified",)
            ok_verified = verification is not None and verification.ok
            items.append(
                ObservationInput(
                    epoch=observed.epoch,
                    source=result.source,
                    height=result.height,
                    block_hash_hex=result.block_hash_hex,
                    bits=header.bits,
                    time=header.time,
                    raw_header=header.raw,
                    error_kind=None if ok_verified else "unverified",
                    error_message=None if ok_verified else "; ".join(problems),
                    observed_at=result.observed_at,
                )
            )
        elif isinstance(result, SourceFailure):
            items.append(
                ObservationInput(
                    epoch=observed.epoch,
                    source=result.source,
                    height=result.height,
                    error_kind=result.kind,
                    error_message=result.message,
                    observed_at=result.observed_at,
                )
            )
    return items


def dispute_fields(outcome: Disputed) -> dict[str, dict[str, object]]:
    """Field -> {source: claimed value} for every field the verified claims differ on."""
    fields: dict[str, dict[str, object]] = {}
    for name in outcome.fields_in_dispute or CLAIM_FIELDS:
        fields[name] = {claim.source: getattr(claim, name) for claim in outcome.claims}
    return fields


def seed_watcher(watcher: RetargetWatcher, history: Sequence[AgreedEpoch]) -> None:
    """Tell the watcher which epochs the store already holds as agreed or published.

    It verifies each new epoch against the one before (the [1/4, 4] fallback) and
    re-checks recent agreed blocks for reorgs; the header itself is not needed.
    """
    for item in history:
        watcher.agreed[item.epoch] = Agreed(
            epoch=item.epoch,
            height=item.height,
            block_hash_hex=item.block_hash_hex,
            bits=item.bits,
            time=item.time,
            header=b"",
            sources=(),
        )
