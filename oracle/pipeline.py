"""One pass of the oracle's data flow, shared by ``run`` and ``replay``.

    watcher event -> store observations -> (agreed) store retarget -> indices
                                        -> (disputed) store disagreement, alert
                  -> publish every agreed epoch that has enough confirmations

Every step is idempotent (the store upserts, the publisher keys on the epoch
and block and asks the contract first), so repeating a pass after a crash is
harmless. Publication is driven by what the database says is agreed and
unpublished, and by the current tip; the only memory is which refusals were
already reported (below), so a permanent one is alerted once, not every pass.
After each step that wrote to the store it calls ``on_change`` (the daemon's
API rebuilds its in-memory snapshot then, ``oracle.api.state``).

With each agreed epoch the pipeline stores the header at 2016e-1 that an
agreeing source served and that the retarget rule was checked with (the first
half of the contract's chain-bound proof). An epoch agreed without one (the
[1/4, 4] bound or the genesis check) is stored and shown but cannot be
published: ``ProofUnavailable``, logged and alerted once; later epochs wait,
since the contract takes epochs in order.

A published retarget that leaves the best chain is marked orphaned (kept), the
contract is asked whether its challenge window is still open, and one critical
alert says what happens next: the new block, once agreed and confirmed, goes
on chain through ``replace`` (the alert is resolved when it lands), or the
stored block is final and a re-anchor by governance is needed (no replacement
is sent; the new block's ``ReanchorRequired`` is then only logged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from oracle.agreement.crosscheck import CLAIM_FIELDS, Agreed, Disputed, Insufficient
from oracle.agreement.reorg import RetargetOrphaned, TipRegressed
from oracle.agreement.verify import METHOD_RULE
from oracle.agreement.watcher import EpochObserved, RetargetWatcher, WatchEvent
from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.bitcoin.header import parse_header
from oracle.errors import NotPublishable, PublishDeferred, ReanchorRequired
from oracle.index.bme import EpochTarget, bme_series
from oracle.sources.checkpoints import mainnet_checkpoints
from oracle.sources.types import Observation, SourceFailure
from oracle.store.records import AgreedEpoch, ObservationInput, RetargetRecord
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)


class Landed(Protocol):
    """How the publisher left an epoch (``oracle.publish.txmanager.Outcome``)."""

    @property
    def status(self) -> str: ...  # "confirmed", "already_on_chain" or "before_genesis"
    @property
    def tx_hash(self) -> str | None: ...
    @property
    def function(self) -> str: ...  # "submit" or "replace"


class Correction(Protocol):
    """Whether a published block that left the best chain can still be replaced."""

    @property
    def replaceable(self) -> bool: ...
    @property
    def detail(self) -> str: ...


class Publisher(Protocol):
    """Lands one agreed retarget on chain exactly once (see ``oracle.publish``)."""

    async def publish_epoch(
        self, epoch: int, raw_header: bytes, last_header: bytes | None
    ) -> Landed:
        """Submit (or replace) the block with its proof; the outcome names the tx."""
        ...

    async def correction(
        self, epoch: int, orphaned_hex: str, *, confirmations: int
    ) -> Correction: ...


class Notifier(Protocol):
    """Where the pipeline reports what happened (metrics, alerts); see ``oracle.monitor``."""

    async def outcome(self, observed: EpochObserved) -> None: ...

    async def disputed(self, epoch: int, fields: dict[str, dict[str, object]]) -> None: ...

    async def orphaned(
        self, epoch: int, block_hash_hex: str, *, published: bool, detail: str | None = None
    ) -> None: ...

    async def published(
        self, epoch: int, tx_hash: str | None, *, height: int, time: int
    ) -> None: ...

    async def replaced(
        self, epoch: int, old_hash_hex: str | None, new_hash_hex: str, tx_hash: str | None
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
    #: (epoch, block) refusals already reported, so each is alerted once, not every pass
    _reported: set[tuple[int, str]] = field(default_factory=set)
    #: epochs whose orphaned published block was already alerted as final on chain
    _reanchor_alerted: set[int] = field(default_factory=set)
    #: (epoch, block) agreed below the contract's genesis: nothing to publish, not asked again
    _before_genesis: set[tuple[int, str]] = field(default_factory=set)

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
                    last_header=proof_header(observed, outcome),
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
        """A stored retarget left the best chain: keep it, marked orphaned.

        A published one too, so the epoch's new block can be agreed and replace it on
        chain; the contract says whether that is still possible, and the one critical
        alert says which (see the module docstring).
        """
        record = await self.repository.get_retarget(self.network, event.epoch)
        published = (
            record is not None
            and record.status == RetargetStatus.PUBLISHED
            and (record.block_hash_hex == event.stored_hash_hex)
        )
        detail = await self._correction(event) if published else None
        await self.repository.mark_orphaned(
            self.network, event.epoch, event.stored_hash_hex, even_if_published=published
        )
        await self.notifier.orphaned(
            event.epoch, event.stored_hash_hex, published=published, detail=detail
        )

    async def _correction(self, event: RetargetOrphaned) -> str | None:
        if self.publisher is None:
            return None
        try:
            outlook = await self.publisher.correction(
                event.epoch, event.stored_hash_hex, confirmations=self.confirmations
            )
        except Exception as exc:  # the chain cannot be read now: say so, decide at publication
            log.warning("correction_outlook_failed", error=str(exc))
            return (
                f"the contract could not be read ({type(exc).__name__}); the daemon replaces "
                "the block on chain if its challenge window is still open when the new "
                "retarget is confirmed"
            )
        if not outlook.replaceable:
            self._reanchor_alerted.add(event.epoch)
        return outlook.detail

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
            if record.raw_header is None:  # pragma: no cover - agreed rows always have it
                continue
            key = (epoch, record.block_hash_hex)
            if key in self._before_genesis:
                continue
            attempted.append(epoch)
            with structlog.contextvars.bound_contextvars(
                network=self.network, epoch=epoch, height=record.height
            ):
                try:
                    landed = await self.publisher.publish_epoch(
                        epoch, record.raw_header, record.last_header
                    )
                except PublishDeferred as exc:
                    log.info("publish_deferred", reason=str(exc))
                    break  # later epochs wait for this one; the next pass retries
                except NotPublishable as exc:
                    await self._not_publishable(key, exc, time=record.time)
                    break  # the contract takes epochs in order: later ones wait too
                except Exception as exc:
                    log.error("publish_failed", error=str(exc), error_type=type(exc).__name__)
                    await self.notifier.publish_failed(epoch, exc, time=record.time)
                    break  # keep epochs in order on chain; retry next pass
                if landed.status == "before_genesis":
                    self._before_genesis.add(key)
                    log.info("epoch_before_contract_genesis", reason="nothing to publish")
                    continue
                await self._record_landed(epoch, record, landed)
                published.append(epoch)

    async def _not_publishable(
        self, key: tuple[int, str], exc: NotPublishable, *, time: int
    ) -> None:
        """A refusal retrying cannot fix: logged and alerted once per epoch and block."""
        epoch = key[0]
        if key in self._reported:
            log.debug("publish_blocked", error_type=type(exc).__name__)
            return
        self._reported.add(key)
        log.error("publish_blocked", error=str(exc), error_type=type(exc).__name__)
        if isinstance(exc, ReanchorRequired) and epoch in self._reanchor_alerted:
            return  # the orphaned-publication alert already said a re-anchor is needed
        await self.notifier.publish_failed(epoch, exc, time=time)

    async def _record_landed(self, epoch: int, record: RetargetRecord, landed: Landed) -> None:
        await self.repository.mark_published(
            self.network,
            epoch,
            tx_hash=landed.tx_hash or "",
            chain_id=self._chain_id(),
            contract_address=self._contract(),
            block_hash_hex=record.block_hash_hex,
        )
        old = next(
            (
                o.block_hash_hex
                for o in reversed(record.others)
                if o.status == RetargetStatus.ORPHANED and o.published_at is not None
            ),
            None,
        )
        if old is not None:  # a correction: by our replace, or by another operator's
            log.warning(
                "epoch_replaced_on_chain", old=old, tx_hash=landed.tx_hash, by=landed.status
            )
            await self.notifier.replaced(epoch, old, record.block_hash_hex, landed.tx_hash)
        await self.notifier.published(epoch, landed.tx_hash, height=record.height, time=record.time)
        log.info("epoch_published", tx_hash=landed.tx_hash, function=landed.function)

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


def proof_header(observed: EpochObserved, agreed: Agreed) -> bytes | None:
    """The header at 2016e-1 for the contract's proof: served by an agreeing source whose
    answer the retarget rule verified, and the parent of the agreed retarget block (None
    when no agreeing source's bits were checked by the rule)."""
    for source in agreed.sources:
        verification = observed.verifications.get(source)
        last = observed.last_headers.get(source)
        if (
            verification is None
            or not verification.ok
            or verification.method != METHOD_RULE
            or verification.block_hash_hex != agreed.block_hash_hex
            or last is None
        ):
            continue
        if parse_header(agreed.header).prev_hash_hex == last.block_hash_hex:
            return last.raw
    return None


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
