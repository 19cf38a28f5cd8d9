"""The retarget watcher: new-block events from every source -> verified, cross-checked outcomes.

For each retarget epoch it asks every source for the headers at 2016e-2016,
2016e-1 and 2016e, verifies each source's answer itself (``oracle.agreement.verify``),
and cross-checks them (``oracle.agreement.crosscheck``). ``run()`` is driven by
new-block events from any source (ZMQ or polling), observes every epoch up to
the highest tip seen — including epochs missed while the watcher was down or a
notification was lost — re-observes epochs that are not agreed yet on each new
event, and re-checks recently agreed retargets for reorgs. The daemon reuses
it; it stores nothing itself, it yields typed events:

* ``EpochObserved``    one cross-check outcome for an epoch (Agreed/Disputed/Insufficient)
* ``TipRegressed``     a source's tip went backwards or was replaced (``oracle.agreement.reorg``)
* ``RetargetOrphaned`` an agreed retarget block is no longer on the best chain of
  ``quorum`` sources; it is followed by a fresh ``EpochObserved`` for that epoch
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from oracle.agreement.crosscheck import Agreed, Outcome, cross_check
from oracle.agreement.reorg import (
    RetargetOrphaned,
    TipRegressed,
    check_stored_retarget,
    classify_tip_change,
    orphaned_by_quorum,
)
from oracle.agreement.verify import VerificationResult, retarget_heights, verify_retarget
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, Network
from oracle.bitcoin.header import Header
from oracle.errors import SourceError, SourceTimeout
from oracle.sources.types import HeaderSource, Observation, SourceFailure, Tip, utc_now

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class EpochObserved:
    """One observation round for an epoch: the outcome and everything it was decided from."""

    epoch: int
    outcome: Outcome
    results: tuple[Observation | SourceFailure, ...]
    verifications: Mapping[str, VerificationResult]
    observed_at: datetime
    #: the tip event that triggered the round (None for direct calls)
    trigger: Tip | None = None
    #: earlier failures of the same round (e.g. the 2016e-2016/2016e-1 fetch) by source
    side_failures: tuple[SourceFailure, ...] = field(default=())
    #: the header at 2016e-1 each source served (the parent the retarget rule was checked
    #: with): the first half of the contract's proof, stored with the agreed epoch
    last_headers: Mapping[str, Header] = field(default_factory=dict)


WatchEvent = EpochObserved | TipRegressed | RetargetOrphaned


async def check_still_best(
    source: HeaderSource, *, epoch: int, stored_hash_hex: str
) -> RetargetOrphaned | SourceFailure | None:
    """Ask one source whether the stored retarget block is still its block at 2016e.

    Returns ``RetargetOrphaned`` when the source serves another block there,
    None when it still serves the stored one, and a ``SourceFailure`` when it
    could not say.
    """
    height = epoch * EPOCH_BLOCKS
    try:
        observation = await source.header_at(height)
    except SourceError as exc:
        return SourceFailure.from_error(exc, source=source.name, height=height)
    return check_stored_retarget(epoch=epoch, stored_hash_hex=stored_hash_hex, result=observation)


class RetargetWatcher:
    """Observe, verify and cross-check retargets across several ``HeaderSource``s."""

    def __init__(
        self,
        sources: Sequence[HeaderSource],
        network: Network,
        *,
        quorum: int = 2,
        start_epoch: int | None = None,
        recheck_depth: int = 144,
        fetch_timeout_s: float = 60.0,
        previous_bits: Callable[[int], int | None] | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if quorum < 1:
            raise ValueError(f"quorum should be >= 1, got {quorum}")
        self.sources = list(sources)
        self.network = network
        self.quorum = quorum
        self.start_epoch = start_epoch
        self.recheck_depth = recheck_depth
        self.fetch_timeout_s = fetch_timeout_s
        self._previous_bits_lookup = previous_bits
        #: agreed retargets this watcher knows, by epoch (seeded by the daemon from its store)
        self.agreed: dict[int, Agreed] = {}
        self._tips: dict[str, Tip] = {}
        self._best_height: int | None = None

    # -- one epoch -------------------------------------------------------------------------

    def _previous_bits(self, epoch: int) -> int | None:
        previous = self.agreed.get(epoch - 1)
        if previous is not None:
            return previous.bits
        return self._previous_bits_lookup(epoch - 1) if self._previous_bits_lookup else None

    async def _fetch(self, source: HeaderSource, heights: Sequence[int]) -> list[Observation]:
        try:
            return await asyncio.wait_for(source.headers_at(heights), self.fetch_timeout_s)
        except TimeoutError as exc:
            raise SourceTimeout(
                f"no answer within {self.fetch_timeout_s} s",
                source=source.name,
                request=f"headers_at{tuple(heights)}",
            ) from exc

    async def _observe_source(
        self, source: HeaderSource, epoch: int
    ) -> tuple[
        Observation | SourceFailure, VerificationResult | None, SourceFailure | None, Header | None
    ]:
        heights = retarget_heights(epoch)
        height = epoch * EPOCH_BLOCKS
        side: SourceFailure | None = None
        first = last = None
        try:
            observations = await self._fetch(source, heights)
            retarget = observations[-1]
            if len(observations) == 3:
                first, last = observations[0].header, observations[1].header
        except SourceError as exc:
            if len(heights) == 1:
                failure = SourceFailure.from_error(exc, source=source.name, height=height)
                return failure, None, None, None
            # the retarget block alone still allows the [1/4, 4] check
            side = SourceFailure.from_error(exc, source=source.name, height=heights[0])
            try:
                (retarget,) = await self._fetch(source, [height])
            except SourceError as exc2:
                failure = SourceFailure.from_error(exc2, source=source.name, height=height)
                return failure, None, side, None
        verification = verify_retarget(
            self.network,
            epoch=epoch,
            retarget=retarget.header,
            first=first,
            last=last,
            previous_bits=self._previous_bits(epoch),
            source=source.name,
        )
        return retarget, verification, side, last

    async def observe(self, epoch: int, *, trigger: Tip | None = None) -> EpochObserved:
        """Ask every source about ``epoch``, verify, cross-check; remember it when agreed."""
        answers = await asyncio.gather(*(self._observe_source(s, epoch) for s in self.sources))
        results = tuple(result for result, _, _, _ in answers)
        verifications = {
            result.source: verification
            for result, verification, _, _ in answers
            if verification is not None and isinstance(result, Observation)
        }
        side = tuple(s for _, _, s, _ in answers if s is not None)
        last_headers = {
            result.source: last
            for result, _, _, last in answers
            if last is not None and isinstance(result, Observation)
        }
        outcome = cross_check(epoch, results, quorum=self.quorum, verified=verifications)
        if isinstance(outcome, Agreed):
            self.agreed[epoch] = outcome
        log.info(
            "epoch_observed",
            network=self.network.name,
            epoch=epoch,
            height=epoch * EPOCH_BLOCKS,
            outcome=type(outcome).__name__,
            block=getattr(outcome, "block_hash_hex", None),
        )
        return EpochObserved(
            epoch=epoch,
            outcome=outcome,
            results=results,
            verifications=verifications,
            observed_at=utc_now(),
            trigger=trigger,
            side_failures=side,
            last_headers=last_headers,
        )

    async def observe_epoch(self, epoch: int) -> tuple[Outcome, list[Observation | SourceFailure]]:
        """The outcome for ``epoch`` and each source's answer at its retarget height."""
        observed = await self.observe(epoch)
        return observed.outcome, list(observed.results)

    # -- reorgs ----------------------------------------------------------------------------

    async def check_reorgs(self) -> list[WatchEvent]:
        """Re-check agreed retargets near the best tip (``recheck_depth``); re-observe orphans."""
        if self._best_height is None:
            return []
        events: list[WatchEvent] = []
        for epoch, agreed in sorted(self.agreed.items()):
            if agreed.height < self._best_height - self.recheck_depth:
                continue
            answers = await asyncio.gather(
                *(
                    check_still_best(s, epoch=epoch, stored_hash_hex=agreed.block_hash_hex)
                    for s in self.sources
                )
            )
            orphans = [a for a in answers if isinstance(a, RetargetOrphaned)]
            if not orphans:
                continue
            if not orphaned_by_quorum(orphans, quorum=self.quorum):
                log.warning(
                    "retarget_minority_dissent",
                    network=self.network.name,
                    epoch=epoch,
                    height=epoch * EPOCH_BLOCKS,
                    stored=agreed.block_hash_hex,
                    sources=[o.source for o in orphans],
                )
                continue
            log.warning(
                "retarget_orphaned",
                network=self.network.name,
                epoch=epoch,
                height=epoch * EPOCH_BLOCKS,
                stored=agreed.block_hash_hex,
            )
            events.extend(orphans)
            del self.agreed[epoch]
            events.append(await self.observe(epoch))
        return events

    def note_tip(self, tip: Tip) -> TipRegressed | None:
        """Record a source's tip; report it if it went backwards or was replaced."""
        regressed = classify_tip_change(self._tips.get(tip.source), tip)
        self._tips[tip.source] = tip
        self._best_height = max(t.height for t in self._tips.values())
        if regressed is not None:
            log.warning(
                "tip_regressed",
                source=tip.source,
                kind=regressed.kind,
                previous=regressed.previous.height,
                current=tip.height,
            )
        return regressed

    # -- the loop --------------------------------------------------------------------------

    def pending_epochs(self) -> list[int]:
        """Epochs up to the best tip that are not agreed yet, oldest first."""
        if self._best_height is None:
            return []
        last = self._best_height // EPOCH_BLOCKS
        first = self.start_epoch if self.start_epoch is not None else last
        return [e for e in range(first, last + 1) if e not in self.agreed]

    @property
    def best_height(self) -> int | None:
        """The highest tip any source has reported (None before the first)."""
        return self._best_height

    @staticmethod
    async def _pump(source: HeaderSource, queue: asyncio.Queue[Tip]) -> None:
        async for tip in source.new_blocks():
            await queue.put(tip)

    async def tip_batches(self) -> AsyncGenerator[list[Tip], None]:
        """The one tip loop: new-block events from every source, a burst coalesced per batch.

        Raises when a source's event stream ends (a dead feed is a bug, not a bad
        source), so a silent feed cannot leave the oracle running blind.
        """
        queue: asyncio.Queue[Tip] = asyncio.Queue()
        pumps = [
            asyncio.create_task(self._pump(s, queue), name=f"pump-{s.name}") for s in self.sources
        ]
        try:
            while True:
                tips = [await self._next_tip(queue, pumps)]
                while not queue.empty():  # coalesce a burst of events into one round
                    tips.append(queue.get_nowait())
                yield tips
        finally:
            for pump in pumps:
                pump.cancel()
            for pump in pumps:
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    async def run(self) -> AsyncGenerator[WatchEvent, None]:
        """Yield events forever, driven by new-block events from every source."""
        async for tips in self.tip_batches():
            for event in await self.handle_tips(tips):
                yield event

    @staticmethod
    async def _next_tip(queue: asyncio.Queue[Tip], pumps: list[asyncio.Task[None]]) -> Tip:
        """The next tip; re-raises if a source's event stream died (a bug, not a bad source)."""
        if not queue.empty():
            return queue.get_nowait()
        getter = asyncio.ensure_future(queue.get())
        try:
            await asyncio.wait([getter, *pumps], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        dead = next(p for p in pumps if p.done())
        raise RuntimeError(f"new-block stream {dead.get_name()} ended") from dead.exception()

    async def handle_tips(self, tips: Sequence[Tip]) -> list[WatchEvent]:
        """One round: note the tips, re-check reorgs, observe every pending epoch."""
        if self.start_epoch is None and self._best_height is None and tips:
            self.start_epoch = max(t.height for t in tips) // EPOCH_BLOCKS
        events: list[WatchEvent] = []
        for tip in tips:
            regressed = self.note_tip(tip)
            if regressed is not None:
                events.append(regressed)
        events.extend(await self.check_reorgs())
        trigger = max(tips, key=lambda t: t.height) if tips else None
        for epoch in self.pending_epochs():
            events.append(await self.observe(epoch, trigger=trigger))
        return events
