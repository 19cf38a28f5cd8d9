"""Continuity: the header a source serves at 2016e-2016 must be what the oracle already holds.

Pure (no I/O). The first block of epoch e-1 sits at height 2016e-2016; the
oracle fetches it anyway for the retarget rule (``verify.retarget_heights``).
It must be the retarget block already agreed for epoch e-1 (from the store, or
earlier in this run) or, lacking one, the bundled mainnet checkpoint: the whole
header where one is bundled; where the bundle has only the bits of epoch e-1
and the hash of block 2016e-2017 (``epoch_bits_1_473.csv``), the header's bits
and previous-block hash. A source that serves real headers one epoch behind
(at height h the header of h-2016) passes proof of work, linkage and the
retarget rule, and fails here.

When e-1 is neither agreed nor bundled but earlier epochs are agreed (e-1
failed to reach agreement), no claim for e is verified until e-1 is: the chain
of agreed retargets is never broken. Only with no agreed history at all (a
first start on a network without checkpoints) are the sources compared with
each other instead: a retarget block that another source serves at 2016e-2016
cannot also be at 2016e, and the claim that puts it there is the one an epoch
behind (near the tip nobody can be an epoch ahead). In every case a header
served at a height other than the one of the agreed retarget it is, is wrong.

A claim that fails is unverified, like a header that fails its proof of work:
it is recorded with what the source said and never counts toward the quorum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.bitcoin.header import Header

#: Where the anchor for epoch e-1 came from (``VerificationResult.continuity``).
CONTINUITY_AGREED = "agreed"  # the retarget agreed for e-1 (store or this run)
CONTINUITY_CHECKPOINT = "checkpoint"  # the bundled header at 2016e-2016
CONTINUITY_CHECKPOINT_BITS = "checkpoint_bits"  # bundled bits of e-1 + hash of 2016e-2017
CONTINUITY_SOURCES = "sources"  # no anchor, no history: compared with the other sources
CONTINUITY_MISSING = "missing"  # e-1 not agreed, though earlier epochs are: not verified
CONTINUITY_NONE = "none"  # not checked: epoch 0, or the source did not serve 2016e-2016


@dataclass(frozen=True, slots=True)
class Anchor:
    """What the oracle holds for the retarget block of epoch ``epoch`` (height 2016·epoch).

    ``block_hash_hex`` is known for an agreed retarget or a bundled header; where only
    bits are bundled, ``prev_hash_hex`` is the bundled hash of the block before it.
    """

    epoch: int
    origin: str
    bits: int
    block_hash_hex: str | None = None
    prev_hash_hex: str | None = None

    def __post_init__(self) -> None:
        if self.block_hash_hex is None and self.prev_hash_hex is None:
            raise ValueError("an anchor needs the block's hash or its parent's")


def continuity_problems(anchor: Anchor, first: Header) -> list[str]:
    """Why ``first`` (served at 2016e-2016, e = anchor.epoch + 1) is not the anchored block."""
    height = anchor.epoch * EPOCH_BLOCKS
    what = f"the {anchor.origin.replace('_', ' ')} retarget of epoch {anchor.epoch}"
    if anchor.block_hash_hex is not None:
        if first.block_hash_hex != anchor.block_hash_hex:
            return [
                f"continuity: block {height} served is {first.block_hash_hex}, "
                f"{what} is {anchor.block_hash_hex}"
            ]
        return []
    problems: list[str] = []
    if first.bits != anchor.bits:
        problems.append(
            f"continuity: block {height} served has bits {first.bits:#010x}, "
            f"{what} has {anchor.bits:#010x}"
        )
    if first.prev_hash_hex != anchor.prev_hash_hex:
        problems.append(
            f"continuity: block {height} served has parent {first.prev_hash_hex}, "
            f"{what} has parent {anchor.prev_hash_hex}"
        )
    return problems


def misplaced_problems(served: Mapping[int, Header], known: Mapping[str, int]) -> list[str]:
    """Headers served (by height) that are the agreed retarget of an epoch at another
    height: a block has one height. ``known`` maps agreed block hashes to their epochs.
    Applies whether or not the 2016e-2016 header was served."""
    problems: list[str] = []
    for height, header in sorted(served.items()):
        epoch = known.get(header.block_hash_hex)
        if epoch is not None and epoch * EPOCH_BLOCKS != height:
            problems.append(
                f"continuity: block {header.block_hash_hex} served at height {height} is the "
                f"agreed retarget of epoch {epoch} (height {epoch * EPOCH_BLOCKS})"
            )
    return problems


def missing_problems(epoch: int) -> list[str]:
    """Epoch ``epoch - 1`` is neither agreed nor bundled, though earlier epochs are agreed:
    nothing for this epoch's claims to follow on from yet (they wait for e-1)."""
    return [f"continuity: epoch {epoch - 1} is not agreed yet; epoch {epoch} can only follow it"]


def behind_problems(
    epoch: int, source: str, retarget: Header, firsts: Mapping[str, Header]
) -> list[str]:
    """Without an anchor: a retarget block another source serves at 2016e-2016 (``firsts``,
    by source) puts this claim an epoch behind that source."""
    height = epoch * EPOCH_BLOCKS - EPOCH_BLOCKS
    others = sorted(
        name
        for name, first in firsts.items()
        if name != source and first.block_hash_hex == retarget.block_hash_hex
    )
    if not others:
        return []
    return [
        f"continuity: block {retarget.block_hash_hex} is what {', '.join(others)} serve(s) "
        f"at height {height}: this answer is an epoch behind"
    ]
