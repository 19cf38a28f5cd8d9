"""Reorg detection: pure helpers that compare what a source says now with what we knew.

Two questions, both answered without I/O:

* did a source's view of the tip go backwards (lower height) or get replaced
  (same height, another hash)? -> ``TipRegressed``
* is the block stored for a retarget height still the block a source has at
  that height on its best chain? -> ``RetargetOrphaned`` when not.

and which tip counts: ``quorum_tip``, the ``quorum``-th highest the sources report.

The watcher asks sources and feeds their answers here; the store keeps the old
row marked orphaned and the new observation replaces it (before publication).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.sources.types import Observation, SourceFailure, Tip

TIP_LOWER = "height_decreased"
TIP_REPLACED = "replaced"


@dataclass(frozen=True, slots=True)
class TipRegressed:
    """A source's tip went backwards or was replaced at the same height."""

    source: str
    kind: str  # TIP_LOWER | TIP_REPLACED
    previous: Tip
    current: Tip


@dataclass(frozen=True, slots=True)
class RetargetOrphaned:
    """The block stored for a retarget height is no longer on a source's best chain."""

    epoch: int
    height: int
    source: str
    stored_hash_hex: str
    current_hash_hex: str
    observed_at: datetime


def classify_tip_change(previous: Tip | None, current: Tip) -> TipRegressed | None:
    """``TipRegressed`` if ``current`` is lower than, or replaces, ``previous``; else None."""
    if previous is None or previous.source != current.source:
        return None
    if current.height < previous.height:
        return TipRegressed(
            source=current.source, kind=TIP_LOWER, previous=previous, current=current
        )
    if current.height == previous.height and current.block_hash_hex != previous.block_hash_hex:
        return TipRegressed(
            source=current.source, kind=TIP_REPLACED, previous=previous, current=current
        )
    return None


def check_stored_retarget(
    *, epoch: int, stored_hash_hex: str, result: Observation | SourceFailure
) -> RetargetOrphaned | None:
    """Whether a source's current answer at ``2016 * epoch`` still matches the stored block.

    A failure proves nothing either way (None): only a source that positively
    serves another block at that height reports an orphaned retarget.
    """
    height = epoch * EPOCH_BLOCKS
    if isinstance(result, SourceFailure) or result.height != height:
        return None
    if result.block_hash_hex == stored_hash_hex:
        return None
    return RetargetOrphaned(
        epoch=epoch,
        height=height,
        source=result.source,
        stored_hash_hex=stored_hash_hex,
        current_hash_hex=result.block_hash_hex,
        observed_at=result.observed_at,
    )


def orphaned_by_quorum(events: list[RetargetOrphaned], *, quorum: int) -> bool:
    """True when at least ``quorum`` distinct sources say the stored block is gone."""
    return len({e.source for e in events}) >= quorum


def quorum_tip(heights: Sequence[int], quorum: int) -> int | None:
    """The ``quorum``-th highest of the sources' tip heights (None with fewer tips):
    the highest height that ``quorum`` sources all claim to have reached."""
    if quorum < 1:
        raise ValueError(f"quorum should be >= 1, got {quorum}")
    ranked = sorted(heights, reverse=True)
    return ranked[quorum - 1] if len(ranked) >= quorum else None
