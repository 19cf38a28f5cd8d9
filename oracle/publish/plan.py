"""What the contract needs for one agreed epoch, read from the contract before signing.

Where it sits: ``publisher.Publisher`` asks ``plan_epoch`` before it builds a proof or
signs, and the pipeline asks ``correction_outlook`` when a published retarget left the
best chain. The DifficultyOracle (contract v2) holds a contiguous run of epochs from a
genesis checkpoint and takes them in order, so for an agreed block of epoch ``e``:

* ``e`` below the genesis: nothing to publish (``before_genesis``);
* the contract holds this block for ``e``: done (``on_chain``; the genesis too);
* ``e`` is the next epoch (latest + 1): ``submit``;
* ``e`` is further ahead: the previous epoch goes first (``PublishDeferred``);
* the contract holds another block for ``e``: ``replace`` if ``e`` is the latest
  epoch, not the genesis, and its challenge window is open (a reorg correction);
  otherwise the stored block is final and only a governance re-anchor can change it
  (``ReanchorRequired``).

The contract re-checks everything at submit time; this only avoids paying gas (and
alerting) for refusals the oracle can see coming.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from oracle.errors import PublishDeferred, PublishError, ReanchorRequired
from oracle.publish.contract import OracleContract

Action = Literal["before_genesis", "on_chain", "submit", "replace"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The contract function an agreed block needs (``action``) and what it was decided from."""

    epoch: int
    action: Action
    genesis: int
    latest: int
    #: the block the contract holds for the epoch (None: nothing)
    on_chain_hex: str | None = None
    #: replace: when the challenge window of the latest epoch closes (EVM time)
    window_closes_at: int = 0


@dataclass(frozen=True, slots=True)
class Correction:
    """Whether a published block that left the best chain can still be replaced on chain."""

    replaceable: bool
    detail: str


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _finality(
    oracle: OracleContract, epoch: int, genesis: int, latest: int
) -> tuple[str, int]:
    """Why the block stored for ``epoch`` can no longer change ("" if it still can) and,
    if it can, when its challenge window closes."""
    if epoch == genesis:
        return f"epoch {epoch} is the contract's genesis checkpoint, which is never replaced", 0
    if epoch < latest:
        return f"epochs up to {latest} are stored on top of epoch {epoch}, so it is final", 0
    closes = await oracle.final_at(epoch)
    if closes == 0:
        return f"the challenge window of epoch {epoch} has closed, so it is final", 0
    return "", closes


async def plan_epoch(oracle: OracleContract, epoch: int, block_hash_hex: str) -> Plan:
    """What landing ``block_hash_hex`` as epoch ``epoch`` takes (see the module docstring).

    Raises ``PublishDeferred`` while earlier epochs are missing on chain and
    ``ReanchorRequired`` when the contract holds another block that is final.
    """
    genesis = await oracle.first_epoch()
    if epoch < genesis:
        return Plan(epoch, "before_genesis", genesis, genesis)
    latest = await oracle.latest_epoch()
    if epoch == latest + 1:
        return Plan(epoch, "submit", genesis, latest)
    if epoch > latest + 1:
        raise PublishDeferred(
            f"epoch {epoch} waits: the contract holds epochs {genesis}..{latest} and takes "
            f"them in order (epoch {latest + 1} first)"
        )
    stored = await oracle.retarget(epoch)
    if stored is None:  # the contract was re-anchored between the two reads
        raise PublishError(f"epoch {epoch}: the contract changed while it was read; try again")
    if stored.block_hash_hex == block_hash_hex:
        return Plan(epoch, "on_chain", genesis, latest, stored.block_hash_hex)
    reason, closes = await _finality(oracle, epoch, genesis, latest)
    if reason:
        raise ReanchorRequired(
            f"epoch {epoch}: the contract holds block {stored.block_hash_hex}, the oracle "
            f"agreed {block_hash_hex}; {reason}: a re-anchor by governance is needed"
        )
    return Plan(epoch, "replace", genesis, latest, stored.block_hash_hex, window_closes_at=closes)


async def correction_outlook(
    oracle: OracleContract, epoch: int, orphaned_hex: str, *, confirmations: int
) -> Correction:
    """For a published block of ``epoch`` that left the best chain: will the daemon replace
    it on chain (its window is open), or must governance re-anchor?"""
    genesis = await oracle.first_epoch()
    latest = await oracle.latest_epoch()
    stored = await oracle.retarget(epoch) if genesis <= epoch <= latest else None
    if stored is None or stored.block_hash_hex != orphaned_hex:
        held = "nothing" if stored is None else f"block {stored.block_hash_hex}"
        return Correction(True, f"the contract holds {held} for epoch {epoch}, not this block")
    reason, closes = await _finality(oracle, epoch, genesis, latest)
    if reason:
        return Correction(
            False,
            f"{reason}: the contract keeps the orphaned block; a re-anchor by governance is "
            "needed, no replacement will be sent",
        )
    return Correction(
        True,
        f"its challenge window is open until {_when(closes)}: the daemon replaces it on chain "
        f"once the new retarget is agreed with {confirmations} confirmations",
    )
