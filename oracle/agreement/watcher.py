"""The retarget watcher: new-block events from every source -> verified, cross-checked outcomes.

For each retarget epoch it asks every source for the headers at 2016e-2016,
2016e-1 and 2016e, verifies each source's answer itself (``oracle.agreement.verify``,
including continuity: the header at 2016e-2016 must be the retarget it already
holds for e-1, agreed or bundled, ``oracle.agreement.continuity``), and
cross-checks them (``oracle.agreement.crosscheck``). ``run()`` is driven by
new-block events from any source (ZMQ or polling), observes every epoch up to
the effective tip — including epochs missed while the watcher was down or a
notification was lost — re-observes epochs that are not agreed yet on each new
event, and re-checks recently agreed retargets for reorgs.

The effective tip (``best_height``: the epochs to observe, the reorg re-check
window and, in the daemon, confirmations) is the ``quorum``-th highest tip the
sources report, never one source's alone: a source claiming height 10^9 moves
nothing. A pass observes at most ``max_epochs_per_pass`` epochs (default
``MAX_EPOCHS_PER_PASS``); when more are pending, the next pass goes on where it
stopped, so the pass lock is never held for an unbounded catch-up. The daemon reuses
it; it stores nothing itself, it yields typed events:

* ``EpochObserved``    one cross-check outcome for an epoch (Agreed/Disputed/Insufficient)
* ``TipRegressed``     a source's tip went backwards or was replaced (``oracle.agreement.reorg``)
* ``RetargetOrphaned`` an agreed retarget block is no longer on the best chain of
  ``quorum`` sources; it is followed by a fresh ``EpochObserved`` for that epoch
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from oracle.agreement.continuity import (
    CONTINUITY_AGREED,
    CONTINUITY_CHECKPOINT,
    CONTINUITY_CHECKPOINT_BITS,
    CONTINUITY_MISSING,
    CONTINUITY_SOURCES,
    Anchor,
    behind_problems,
    misplaced_problems,
    missing_problems,
)
from oracle.agreement.crosscheck import Agreed, Outcome, cross_check
from oracle.agreement.reorg import (
    RetargetOrphaned,
    TipRegressed,
    check_stored_retarget,
    classify_tip_change,
    orphaned_by_quorum,
    quorum_tip,
)
from oracle.agreement.verify import VerificationResult, retarget_heights, verify_retarget
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, Network
from oracle.bitcoin.header import Header
from oracle.errors import SourceError, SourceTimeout
from oracle.sources.checkpoints import bundled_checkpoints
from oracle.sources.types import HeaderSource, Observation, SourceFailure, Tip, utc_now

log = structlog.get_logger(__name__)

#: The most epochs one pass observes (a catch-up over more takes several passes).
MAX_EPOCHS_PER_PASS = 64


def checkpoint_anchor(epoch: int) -> Anchor | None:
    """The bundled mainnet checkpoint for the retarget of ``epoch``: its header where one is
    bundled, else its bits and the hash of the block before it; None past the bundle."""
    bundle = bundled_checkpoints()
    header = bundle.headers.get(epoch * EPOCH_BLOCKS)
    if header is not None:
        return Anchor(
            epoch, CONTINUITY_CHECKPOINT, header.bits, block_hash_hex=header.block_hash_hex
        )
    bits, last_hash = bundle.bits.get(epoch), bundle.last_hashes.get(epoch)
    if bits is None or last_hash is None:
        return None
    return Anchor(epoch, CONTINUITY_CHECKPOINT_BITS, bits, prev_hash_hex=last_hash)


@dataclass(frozen=True, slots=True)
class EpochObserved:
    """One observation round for an epoch: the outcome and everything it was decided from."""

    epoch: int
    outcome: Outcome
    results: tuple[Observation | SourceFailure, ...]
    verifications: Mapping[str, VerificationResult]
    observed_at: datetime
    #: the effective tip (a source at the quorum-th highest height) when the round ran;
    #: None for direct calls
    trigger: Tip | None = None
    #: earlier failures of the same round (e.g. the 2016e-2016/2016e-1 fetch) by source
    side_failures: tuple[SourceFailure, ...] = field(default=())
    #: the header at 2016e-1 each source served (the parent the retarget rule was checked
    #: with): the first half of the contract's proof, stored with the agreed epoch
    last_headers: Mapping[str, Header] = field(default_factory=dict)


WatchEvent = EpochObserved | TipRegressed | RetargetOrphaned


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one source served for one epoch, before verification."""

    result: Observation | SourceFailure
    first: Header | None = None
    last: Header | None = None
    side: SourceFailure | None = None


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
        use_checkpoints: bool = True,
        max_epochs_per_pass: int = MAX_EPOCHS_PER_PASS,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        if quorum < 1:
            raise ValueError(f"quorum should be >= 1, got {quorum}")
        if max_epochs_per_pass < 1:
            raise ValueError(f"max_epochs_per_pass should be >= 1, got {max_epochs_per_pass}")
        self.sources = list(sources)
        self.network = network
        self.quorum = quorum
        self.start_epoch = start_epoch
        self.recheck_depth = recheck_depth
        self.fetch_timeout_s = fetch_timeout_s
        self._previous_bits_lookup = previous_bits
        #: bundled mainnet checkpoints anchor continuity where no agreed epoch does
        self.use_checkpoints = use_checkpoints and network.name == "mainnet"
        self.max_epochs_per_pass = max_epochs_per_pass
        #: agreed retargets this watcher knows, by epoch (seeded by the daemon from its store)
        self.agreed: dict[int, Agreed] = {}
        self._tips: dict[str, Tip] = {}
        self._best_height: int | None = None
        #: the last epoch a truncated pass observed (the next pass goes on after it)
        self._cursor: int | None = None

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

    def anchor(self, epoch: int) -> Anchor | None:
        """What the oracle holds for the retarget of ``epoch - 1`` (continuity of ``epoch``):
        the agreed one, else the bundled checkpoint (mainnet); None for epoch 0 or neither."""
        if epoch < 1:
            return None
        previous = self.agreed.get(epoch - 1)
        if previous is not None:
            return Anchor(
                epoch - 1,
                CONTINUITY_AGREED,
                previous.bits,
                block_hash_hex=previous.block_hash_hex,
            )
        return checkpoint_anchor(epoch - 1) if self.use_checkpoints else None

    async def _answer(self, source: HeaderSource, epoch: int) -> _Answer:
        heights = retarget_heights(epoch)
        height = epoch * EPOCH_BLOCKS
        try:
            observations = await self._fetch(source, heights)
        except SourceError as exc:
            if len(heights) == 1:
                return _Answer(SourceFailure.from_error(exc, source=source.name, height=height))
            # the retarget block alone still allows the [1/4, 4] check
            side = SourceFailure.from_error(exc, source=source.name, height=heights[0])
            try:
                (retarget,) = await self._fetch(source, [height])
            except SourceError as exc2:
                failure = SourceFailure.from_error(exc2, source=source.name, height=height)
                return _Answer(failure, side=side)
            return _Answer(retarget, side=side)
        if len(observations) == 3:
            return _Answer(observations[-1], observations[0].header, observations[1].header)
        return _Answer(observations[-1])

    def _verify(
        self,
        epoch: int,
        answer: _Answer,
        anchor: Anchor | None,
        firsts: Mapping[str, Header],
        known: Mapping[str, int],
    ) -> VerificationResult | None:
        """The oracle's verdict on one answer: its own checks, then continuity."""
        retarget = answer.result
        if not isinstance(retarget, Observation):
            return None
        verification = verify_retarget(
            self.network,
            epoch=epoch,
            retarget=retarget.header,
            first=answer.first,
            last=answer.last,
            previous_bits=self._previous_bits(epoch),
            anchor=anchor,
            source=retarget.source,
        )
        height = epoch * EPOCH_BLOCKS
        served = {height: retarget.header}
        if answer.first is not None and answer.last is not None:
            served |= {height - EPOCH_BLOCKS: answer.first, height - 1: answer.last}
        extra = misplaced_problems(served, known)
        if anchor is not None or epoch == 0:
            return verification.with_problems(extra)
        if any(agreed < epoch - 1 for agreed in known.values()):
            extra += missing_problems(epoch)
            return verification.with_problems(extra, continuity=CONTINUITY_MISSING)
        extra += behind_problems(epoch, retarget.source, retarget.header, firsts)
        return verification.with_problems(extra, continuity=CONTINUITY_SOURCES)

    async def observe(self, epoch: int, *, trigger: Tip | None = None) -> EpochObserved:
        """Ask every source about ``epoch``, verify, cross-check; remember it when agreed."""
        answers = await asyncio.gather(*(self._answer(s, epoch) for s in self.sources))
        anchor = self.anchor(epoch)
        firsts = {a.result.source: a.first for a in answers if a.first is not None}
        results = tuple(a.result for a in answers)
        known = {agreed.block_hash_hex: e for e, agreed in self.agreed.items()}
        verifications: dict[str, VerificationResult] = {}
        for answer in answers:
            verification = self._verify(epoch, answer, anchor, firsts, known)
            if verification is not None:
                verifications[answer.result.source] = verification
        side = tuple(a.side for a in answers if a.side is not None)
        last_headers = {
            a.result.source: a.last
            for a in answers
            if a.last is not None and isinstance(a.result, Observation)
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
            anchor=anchor.origin if anchor is not None else None,
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
        self._best_height = quorum_tip([t.height for t in self._tips.values()], self.quorum)
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

    def _pending(self, low: int, high: int) -> Iterator[int]:
        """Epochs in [low, high] that are not agreed yet, oldest first (lazily)."""
        return (e for e in range(low, high + 1) if e not in self.agreed)

    def epochs_this_pass(self) -> list[int]:
        """The epochs one pass observes, oldest first: every epoch up to the effective tip
        that is not agreed yet, at most ``max_epochs_per_pass`` of them; when more are
        pending, the next pass goes on after the last one observed (wrapping around)."""
        if self._best_height is None:
            return []
        last = self._best_height // EPOCH_BLOCKS
        first = self.start_epoch if self.start_epoch is not None else last
        cursor = self._cursor
        start = cursor + 1 if cursor is not None and first <= cursor < last else first
        bound = self.max_epochs_per_pass
        turn = list(
            itertools.islice(
                itertools.chain(self._pending(start, last), self._pending(first, start - 1)),
                bound + 1,
            )
        )
        if len(turn) <= bound:
            self._cursor = None
            return turn
        chosen = turn[:bound]
        self._cursor = chosen[-1]
        log.warning(
            "epochs_per_pass_bounded",
            network=self.network.name,
            bound=bound,
            first=min(chosen),
            last=max(chosen),
            tip_epoch=last,
        )
        return sorted(chosen)

    @property
    def best_height(self) -> int | None:
        """The effective tip: the ``quorum``-th highest tip the sources report (None until
        ``quorum`` sources have reported one)."""
        return self._best_height

    def effective_tip(self) -> Tip | None:
        """The tip of a source at the effective height (None before there is one)."""
        best = self._best_height
        if best is None:
            return None
        return max((t for t in self._tips.values() if t.height <= best), key=lambda t: t.height)

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
        """One round: note the tips, re-check reorgs, observe the pending epochs (bounded).

        Everything follows the effective tip (``best_height``); until ``quorum`` sources
        have reported a tip the round only notes them.
        """
        events: list[WatchEvent] = []
        for tip in tips:
            regressed = self.note_tip(tip)
            if regressed is not None:
                events.append(regressed)
        if self._best_height is None:
            return events
        if self.start_epoch is None:
            self.start_epoch = self._best_height // EPOCH_BLOCKS
        events.extend(await self.check_reorgs())
        trigger = self.effective_tip()
        for epoch in self.epochs_this_pass():
            events.append(await self.observe(epoch, trigger=trigger))
        return events
