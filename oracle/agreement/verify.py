"""Verification the oracle does itself, whatever the sources say.

Pure (no I/O). For one source's answer about epoch ``e`` it checks that

* every header meets the proof of work of its own bits (the hash itself was
  recomputed from the 80 bytes when the header was parsed);
* the header at ``2016e - 1`` is the parent of the retarget block at ``2016e``;
* the retarget block's bits equal Bitcoin Core's retarget rule applied to the
  headers at ``2016e - 2016`` and ``2016e - 1`` that the oracle fetched itself,
  or, when those are not available, lie within [1/4, 4] of the previous
  epoch's target (Core's ``PermittedDifficultyTransition``);
* continuity: the header at ``2016e - 2016`` is the retarget the oracle already
  holds for epoch ``e - 1`` (``oracle.agreement.continuity``), when it holds one.

A failed check never raises: it becomes a ``VerificationResult`` with
``ok=False`` and the reasons, so the cross-check can record the source's
claim and keep it out of the quorum.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from oracle.agreement.continuity import CONTINUITY_NONE, Anchor, continuity_problems
from oracle.bitcoin.difficulty import (
    EPOCH_BLOCKS,
    Network,
    calculate_next_work_required,
    permitted_difficulty_transition,
)
from oracle.bitcoin.header import Header, check_links, check_proof_of_work
from oracle.errors import InvalidBits, InvalidHeader

#: How a retarget's bits were checked.
METHOD_RULE = "retarget_rule"  # exact rule from 2016e-2016 and 2016e-1
METHOD_BOUND = "bound"  # [1/4, 4] of the previous epoch (fallback)
METHOD_GENESIS = "genesis"  # epoch 0 has no previous epoch
METHOD_NONE = "none"  # nothing to check the bits against: not verified


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """The verdict on one source's retarget header for one epoch."""

    source: str
    epoch: int
    block_hash_hex: str
    ok: bool
    method: str
    expected_bits: int | None
    problems: tuple[str, ...]
    #: what the 2016e-2016 header was checked against (``continuity.CONTINUITY_*``)
    continuity: str = CONTINUITY_NONE

    def with_problems(
        self, problems: Sequence[str], *, continuity: str | None = None
    ) -> VerificationResult:
        """This verdict with more problems (no longer ``ok`` if there are any)."""
        return dataclasses.replace(
            self,
            ok=self.ok and not problems,
            problems=(*self.problems, *problems),
            continuity=self.continuity if continuity is None else continuity,
        )


def retarget_heights(epoch: int) -> tuple[int, ...]:
    """Heights the oracle fetches for an epoch: 2016e-2016, 2016e-1, 2016e (only 0 for epoch 0)."""
    if epoch < 0:
        raise ValueError(f"epoch should be >= 0, got {epoch}")
    height = epoch * EPOCH_BLOCKS
    if epoch == 0:
        return (0,)
    return (height - EPOCH_BLOCKS, height - 1, height)


def _pow_problems(network: Network, label: str, header: Header | None) -> list[str]:
    if header is None:
        return []
    try:
        check_proof_of_work(header, network)
    except InvalidHeader as exc:
        return [f"{label}: proof of work: {exc}"]
    return []


def _expected_bits(
    network: Network, *, epoch: int, first: Header | None, last: Header | None, problems: list[str]
) -> int | None:
    """Bits the retarget rule requires, or None when the rule cannot be applied."""
    if first is None or last is None:
        return None
    if not network.allow_min_difficulty_blocks and first.bits != last.bits:
        problems.append(
            f"headers {epoch * EPOCH_BLOCKS - EPOCH_BLOCKS} and {epoch * EPOCH_BLOCKS - 1} "
            f"are in one epoch but have bits {first.bits:#010x} and {last.bits:#010x}"
        )
        return None
    try:
        return calculate_next_work_required(
            network,
            last_bits=last.bits,
            first_time=first.time,
            last_time=last.time,
            first_bits=first.bits,
        )
    except InvalidBits as exc:
        problems.append(f"retarget rule: {exc}")
        return None


def verify_retarget(
    network: Network,
    *,
    epoch: int,
    retarget: Header,
    first: Header | None = None,
    last: Header | None = None,
    previous_bits: int | None = None,
    anchor: Anchor | None = None,
    source: str = "",
) -> VerificationResult:
    """Verify the retarget header of ``epoch`` as one source served it.

    Parameters
    ----------
    retarget: the header at height 2016e.
    first, last: headers at 2016e-2016 and 2016e-1 fetched by the oracle (from
        the same source), or None when they could not be fetched.
    previous_bits: the previous epoch's bits from elsewhere (e.g. the stored,
        agreed previous retarget); used only when the rule cannot be applied.
    anchor: what the oracle holds for the retarget of epoch e-1; ``first`` must be
        that block (continuity). Not checked when ``first`` is None.

    Returns
    -------
    A ``VerificationResult``; ``ok`` only if every applicable check passed and
    the bits were checked by the rule or, failing that, the [1/4, 4] bound.
    """
    if anchor is not None and anchor.epoch != epoch - 1:
        raise ValueError(f"epoch {epoch} is anchored by epoch {epoch - 1}, not {anchor.epoch}")
    problems: list[str] = []
    continuity = CONTINUITY_NONE
    if anchor is not None and first is not None:
        problems += continuity_problems(anchor, first)
        continuity = anchor.origin
    problems += _pow_problems(network, f"block {epoch * EPOCH_BLOCKS}", retarget)
    problems += _pow_problems(network, f"block {epoch * EPOCH_BLOCKS - EPOCH_BLOCKS}", first)
    problems += _pow_problems(network, f"block {epoch * EPOCH_BLOCKS - 1}", last)
    if last is not None:
        try:
            check_links(last, retarget)
        except InvalidHeader as exc:
            problems.append(f"linkage: {exc}")
    expected = _expected_bits(network, epoch=epoch, first=first, last=last, problems=problems)
    if epoch == 0:
        method = METHOD_GENESIS
    elif expected is not None:
        method = METHOD_RULE
        if retarget.bits != expected:
            problems.append(
                f"bits {retarget.bits:#010x} differ from the retarget rule's {expected:#010x}"
            )
    else:
        old_bits = last.bits if last is not None else previous_bits
        method = METHOD_BOUND if old_bits is not None else METHOD_NONE
        if old_bits is None:
            problems.append("no headers or previous bits to check the retarget bits against")
        else:
            problems += _bound_problems(
                network, epoch=epoch, old_bits=old_bits, new_bits=retarget.bits
            )
    return VerificationResult(
        source=source,
        epoch=epoch,
        block_hash_hex=retarget.block_hash_hex,
        ok=not problems,
        method=method,
        expected_bits=expected,
        problems=tuple(problems),
        continuity=continuity,
    )


def _bound_problems(network: Network, *, epoch: int, old_bits: int, new_bits: int) -> list[str]:
    if network.no_retargeting:
        if new_bits != old_bits:
            return [
                f"{network.name} never retargets, "
                f"but bits changed {old_bits:#010x} -> {new_bits:#010x}"
            ]
        return []
    try:
        permitted = permitted_difficulty_transition(
            network, height=epoch * EPOCH_BLOCKS, old_bits=old_bits, new_bits=new_bits
        )
    except InvalidBits as exc:
        return [f"bound check: {exc}"]
    if not permitted:
        return [f"bits {new_bits:#010x} are outside [1/4, 4] of the previous {old_bits:#010x}"]
    return []


def verify_linkage(headers: Sequence[Header]) -> list[str]:
    """Problems with consecutive headers that do not link by previous-block hash (empty if fine)."""
    problems: list[str] = []
    for parent, child in itertools.pairwise(headers):
        try:
            check_links(parent, child)
        except InvalidHeader as exc:
            problems.append(str(exc))
    return problems
