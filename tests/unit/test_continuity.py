"""Continuity (the header at 2016e-2016 is the retarget held for e-1) and the effective tip.

Real mainnet headers from tests/data and the bundled checkpoints; the "one epoch
behind" answer is the real headers of the previous epoch, served one epoch late.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from oracle.agreement.continuity import (
    CONTINUITY_AGREED,
    CONTINUITY_CHECKPOINT,
    CONTINUITY_CHECKPOINT_BITS,
    CONTINUITY_NONE,
    Anchor,
    behind_problems,
    continuity_problems,
    misplaced_problems,
    missing_problems,
)
from oracle.agreement.crosscheck import Agreed
from oracle.agreement.reorg import quorum_tip
from oracle.agreement.verify import METHOD_RULE, retarget_heights, verify_retarget
from oracle.agreement.watcher import (
    MAX_EPOCHS_PER_PASS,
    EpochObserved,
    RetargetWatcher,
    checkpoint_anchor,
)
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, get_network
from oracle.bitcoin.header import Header, parse_header_hex
from oracle.errors import HeightNotFound
from oracle.sources.checkpoints import checkpoint_bits, checkpoint_last_hash
from oracle.sources.types import Observation, Tip
from tests.fixtures.restreplay import mainnet_headers

MAINNET = get_network("mainnet")
HEADERS = mainnet_headers()
NOW = datetime(2024, 3, 1, tzinfo=UTC)


def h(height: int) -> Header:
    return parse_header_hex(HEADERS[height])


def behind(epoch: int) -> tuple[Header, Header, Header]:
    """What a source one epoch behind serves for ``epoch``: at h, the header of h-2016."""
    first, last, retarget = (h(x - EPOCH_BLOCKS) for x in retarget_heights(epoch))
    return first, last, retarget


def agreed_anchor(epoch: int) -> Anchor:
    header = h(epoch * EPOCH_BLOCKS)
    return Anchor(epoch, CONTINUITY_AGREED, header.bits, block_hash_hex=header.block_hash_hex)


# -- the pure checks ---------------------------------------------------------------------------


def test_an_answer_one_epoch_behind_passes_every_other_check() -> None:
    """Why continuity is needed: real headers one epoch late pass PoW, linkage and the rule."""
    for epoch in (409, 410, 411, 412):
        first, last, retarget = behind(epoch)
        result = verify_retarget(MAINNET, epoch=epoch, retarget=retarget, first=first, last=last)
        assert result.ok and result.method == METHOD_RULE, result.problems
        assert result.continuity == CONTINUITY_NONE


@pytest.mark.parametrize("epoch", [409, 410, 411, 412])
def test_continuity_against_the_agreed_previous_retarget(epoch: int) -> None:
    anchor = agreed_anchor(epoch - 1)
    first, last, retarget = (h(x) for x in retarget_heights(epoch))
    honest = verify_retarget(
        MAINNET, epoch=epoch, retarget=retarget, first=first, last=last, anchor=anchor
    )
    assert honest.ok and honest.continuity == CONTINUITY_AGREED
    first, last, retarget = behind(epoch)
    lagging = verify_retarget(
        MAINNET, epoch=epoch, retarget=retarget, first=first, last=last, anchor=anchor
    )
    assert not lagging.ok and lagging.continuity == CONTINUITY_AGREED
    [problem] = lagging.problems
    assert problem.startswith(f"continuity: block {(epoch - 1) * EPOCH_BLOCKS} served is ")
    assert h((epoch - 1) * EPOCH_BLOCKS).block_hash_hex in problem


def test_checkpoint_anchor_has_the_header_where_bundled_else_bits_and_parent() -> None:
    full = checkpoint_anchor(410)
    assert full is not None and full.origin == CONTINUITY_CHECKPOINT
    assert full.block_hash_hex == h(410 * EPOCH_BLOCKS).block_hash_hex
    bits_only = checkpoint_anchor(437)  # epochs 437..473: only bits and the parent's hash
    assert bits_only is not None and bits_only.origin == CONTINUITY_CHECKPOINT_BITS
    assert bits_only.block_hash_hex is None
    assert bits_only.bits == checkpoint_bits(437)
    assert bits_only.prev_hash_hex == checkpoint_last_hash(437)
    assert checkpoint_anchor(474) is None and checkpoint_bits(474) is None


def test_bits_only_anchor_compares_what_the_bundle_has() -> None:
    """The bits file's bits of epoch 410 and hash of block 826,559, against real headers."""
    bits, parent = checkpoint_bits(410), checkpoint_last_hash(410)
    assert bits is not None and parent is not None
    anchor = Anchor(410, CONTINUITY_CHECKPOINT_BITS, bits, prev_hash_hex=parent)
    assert continuity_problems(anchor, h(826560)) == []
    problems = continuity_problems(anchor, h(824544))  # the lagging source's header
    assert [p.split(" has ")[0] for p in problems] == [
        "continuity: block 826560 served",
        "continuity: block 826560 served",
    ]
    assert "bits" in problems[0] and "parent" in problems[1]
    with pytest.raises(ValueError):
        Anchor(410, CONTINUITY_CHECKPOINT_BITS, bits)


def test_anchor_must_be_the_previous_epoch() -> None:
    with pytest.raises(ValueError, match="anchored by epoch 410"):
        verify_retarget(MAINNET, epoch=411, retarget=h(828576), anchor=agreed_anchor(409))


def test_a_block_agreed_for_another_epoch_is_misplaced() -> None:
    known = {h(826560).block_hash_hex: 410}
    assert misplaced_problems({826560: h(826560), 828576: h(828576)}, known) == []
    [problem] = misplaced_problems({828576: h(826560)}, known)
    assert problem == (
        f"continuity: block {h(826560).block_hash_hex} served at height 828576 is the agreed "
        "retarget of epoch 410 (height 826560)"
    )
    assert missing_problems(412) == [
        "continuity: epoch 411 is not agreed yet; epoch 412 can only follow it"
    ]


def test_without_anchor_the_answer_behind_another_source_fails() -> None:
    honest_first = h(826560)
    firsts = {"honest": honest_first, "lagging": h(824544)}
    [problem] = behind_problems(411, "lagging", h(826560), firsts)
    assert "honest serve(s) at height 826560" in problem
    assert behind_problems(411, "honest", h(828576), firsts) == []


# -- the effective tip -------------------------------------------------------------------------


def test_quorum_tip_is_the_quorum_th_highest() -> None:
    a, b, inflated = 830_592, 830_000, 10**9
    assert quorum_tip([a, b, inflated], 2) == a
    assert quorum_tip([inflated, b, a], 3) == b
    assert quorum_tip([a, b, inflated], 1) == inflated
    assert quorum_tip([inflated], 2) is None
    with pytest.raises(ValueError):
        quorum_tip([a], 0)


class MemorySource:
    """A ``HeaderSource`` over the real headers in tests/data, with a tip it is told."""

    def __init__(self, name: str, tip: int) -> None:
        self.name = name
        self.tip_height = tip
        self.asked: list[int] = []

    async def tip(self) -> Tip:
        return Tip(self.name, self.tip_height, "00" * 32, NOW)

    async def header_at(self, height: int) -> Observation:
        self.asked.append(height)
        if height not in HEADERS or height > self.tip_height:
            raise HeightNotFound("no such height", source=self.name, request=f"h {height}")
        header = h(height)
        return Observation(self.name, height, header.block_hash_hex, header, NOW)

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return [await self.header_at(x) for x in heights]

    async def new_blocks(self) -> AsyncIterator[Tip]:  # pragma: no cover - not driven here
        yield await self.tip()

    async def close(self) -> None:
        return None


async def _tips(*sources: MemorySource) -> list[Tip]:
    return [await s.tip() for s in sources]


async def test_one_inflated_tip_moves_nothing() -> None:
    a, b = MemorySource("a", 828_580), MemorySource("b", 828_579)
    liar = MemorySource("liar", 10**9)
    watcher = RetargetWatcher([a, b, liar], MAINNET, quorum=2)
    events = await watcher.handle_tips(await _tips(a, b, liar))
    assert watcher.best_height == 828_580 and watcher.start_epoch == 411
    observed = [e for e in events if isinstance(e, EpochObserved)]
    assert [e.epoch for e in observed] == [411]
    assert isinstance(observed[0].outcome, Agreed)
    assert observed[0].trigger is not None and observed[0].trigger.height == 828_580


async def test_no_effective_tip_until_quorum_sources_report() -> None:
    a, liar = MemorySource("a", 828_580), MemorySource("liar", 10**9)
    watcher = RetargetWatcher([a, liar], MAINNET, quorum=2)
    assert await watcher.handle_tips(await _tips(liar)) == []
    assert watcher.best_height is None and watcher.start_epoch is None
    assert liar.asked == []
    events = await watcher.handle_tips(await _tips(a))
    assert watcher.best_height == 828_580
    assert [e.epoch for e in events if isinstance(e, EpochObserved)] == [411]


async def test_a_pass_observes_a_bounded_number_of_epochs_then_goes_on() -> None:
    """Even a quorum of inflated tips: each pass observes at most the bound, in turn."""
    liars = [MemorySource("x", 10**9), MemorySource("y", 10**9)]
    watcher = RetargetWatcher(liars, MAINNET, quorum=2, start_epoch=400)
    first = await watcher.handle_tips(await _tips(*liars))
    epochs = [e.epoch for e in first if isinstance(e, EpochObserved)]
    assert epochs == list(range(400, 400 + MAX_EPOCHS_PER_PASS))
    second = await watcher.handle_tips(await _tips(*liars))
    epochs = [e.epoch for e in second if isinstance(e, EpochObserved)]
    assert epochs == list(range(400 + MAX_EPOCHS_PER_PASS, 400 + 2 * MAX_EPOCHS_PER_PASS))
    small = RetargetWatcher(liars, MAINNET, quorum=2, start_epoch=1, max_epochs_per_pass=3)
    small.note_tip(Tip("x", 8 * EPOCH_BLOCKS, "00" * 32, NOW))
    small.note_tip(Tip("y", 8 * EPOCH_BLOCKS, "00" * 32, NOW))
    assert [small.epochs_this_pass() for _ in range(4)] == [
        [1, 2, 3],
        [4, 5, 6],
        [1, 7, 8],  # wraps around: every pending epoch gets its turn
        [2, 3, 4],
    ]
    with pytest.raises(ValueError):
        RetargetWatcher(liars, MAINNET, quorum=2, max_epochs_per_pass=0)
