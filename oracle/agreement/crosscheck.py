"""Cross-check: what every source said about one retarget -> one typed outcome.

Pure (no I/O, no asyncio). Input: each source's observation of the retarget
block at height 2016e (or its failure) and the oracle's own verification of
each observation (``oracle.agreement.verify``). Output:

* ``Agreed``   at least ``quorum`` verified sources report the same block (same
  hash, hence the same 80 bytes, bits and time) and no verified source reports
  a different one;
* ``Disputed`` two or more verified sources report different blocks;
* ``Insufficient`` fewer than ``quorum`` verified sources agree (failures,
  unverified answers, too few sources).

A claim whose verification failed (or is missing) never counts toward the
quorum; it is kept, field by field, in the outcome so monitoring can report
exactly what each source said. The result depends only on the arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from oracle.agreement.verify import VerificationResult
from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.sources.types import Observation, SourceFailure

#: Fields of a claim that are compared between sources, in display order.
CLAIM_FIELDS = (
    "block_hash_hex",
    "bits",
    "time",
    "version",
    "prev_hash_hex",
    "merkle_root_hex",
    "nonce",
    "header_hex",
)


@dataclass(frozen=True, slots=True)
class Claim:
    """One source's answer for the retarget height, with the oracle's verdict."""

    source: str
    height: int
    block_hash_hex: str
    bits: int
    time: int
    version: int
    prev_hash_hex: str
    merkle_root_hex: str
    nonce: int
    header_hex: str
    observed_at: datetime
    verified: bool
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Agreed:
    """A retarget that ``quorum`` verified sources agree on."""

    epoch: int
    height: int
    block_hash_hex: str
    bits: int
    time: int
    header: bytes
    sources: tuple[str, ...]
    #: claims that did not count (failed verification), and sources that failed
    dissent: tuple[Claim, ...] = ()
    failures: tuple[SourceFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class Disputed:
    """Verified sources report different blocks; nothing may be published."""

    epoch: int
    height: int
    claims: tuple[Claim, ...]
    #: names of the claim fields on which the verified claims differ
    fields_in_dispute: tuple[str, ...]
    failures: tuple[SourceFailure, ...] = ()


@dataclass(frozen=True, slots=True)
class Insufficient:
    """Not enough verified agreement to decide; ``reasons`` says why."""

    epoch: int
    height: int
    reasons: tuple[str, ...]
    claims: tuple[Claim, ...] = ()
    failures: tuple[SourceFailure, ...] = ()


Outcome = Agreed | Disputed | Insufficient


def claim_from(observation: Observation, verification: VerificationResult | None) -> Claim:
    """A claim with every header field spelled out (verification must match the same block)."""
    header = observation.header
    verified = (
        verification is not None
        and verification.ok
        and verification.block_hash_hex == observation.block_hash_hex
    )
    if verification is None:
        problems: tuple[str, ...] = ("not verified",)
    elif verification.block_hash_hex != observation.block_hash_hex:
        problems = (f"verification was for block {verification.block_hash_hex}",)
    else:
        problems = verification.problems
    return Claim(
        source=observation.source,
        height=observation.height,
        block_hash_hex=observation.block_hash_hex,
        bits=header.bits,
        time=header.time,
        version=header.version,
        prev_hash_hex=header.prev_hash_hex,
        merkle_root_hex=header.merkle_root_hex,
        nonce=header.nonce,
        header_hex=header.raw.hex(),
        observed_at=observation.observed_at,
        verified=verified,
        problems=problems,
    )


def differing_fields(claims: Sequence[Claim]) -> tuple[str, ...]:
    """Names of the fields on which at least two claims differ."""
    return tuple(f for f in CLAIM_FIELDS if len({getattr(c, f) for c in claims}) > 1)


def cross_check(
    epoch: int,
    results: Sequence[Observation | SourceFailure],
    *,
    quorum: int,
    verified: Mapping[str, VerificationResult],
) -> Outcome:
    """Decide one epoch's retarget from all sources' answers.

    Parameters
    ----------
    epoch: the epoch; its retarget block is at height ``2016 * epoch``.
    results: one entry per source: its observation at that height or its failure.
    quorum: how many verified sources must report the same block.
    verified: the oracle's verification of each source's observation, by source name.
    """
    if quorum < 1:
        raise ValueError(f"quorum should be >= 1, got {quorum}")
    height = epoch * EPOCH_BLOCKS
    # sorted by source so the outcome does not depend on the order answers arrived in
    results = sorted(results, key=lambda r: r.source)
    failures = tuple(r for r in results if isinstance(r, SourceFailure))
    claims: list[Claim] = []
    reasons: list[str] = []
    for result in results:
        if isinstance(result, SourceFailure):
            reasons.append(f"{result.source}: {result.kind}: {result.message}")
            continue
        if result.height != height:
            reasons.append(f"{result.source}: answered for height {result.height}, not {height}")
            continue
        claims.append(claim_from(result, verified.get(result.source)))
    names = [c.source for c in claims] + [f.source for f in failures]
    if len(set(names)) != len(names):
        raise ValueError(f"each source may answer once per epoch, got {sorted(names)}")
    good = [c for c in claims if c.verified]
    bad = tuple(c for c in claims if not c.verified)
    reasons += [f"{c.source}: not verified: {'; '.join(c.problems)}" for c in bad]
    blocks = sorted({c.block_hash_hex for c in good})
    if len(blocks) > 1:
        return Disputed(
            epoch=epoch,
            height=height,
            claims=tuple(claims),
            fields_in_dispute=differing_fields(good),
            failures=failures,
        )
    if not blocks or len(good) < quorum:
        reasons.insert(0, f"{len(good)} verified source(s) agree, quorum is {quorum}")
        return Insufficient(
            epoch=epoch,
            height=height,
            reasons=tuple(reasons),
            claims=tuple(claims),
            failures=failures,
        )
    first = good[0]
    return Agreed(
        epoch=epoch,
        height=height,
        block_hash_hex=first.block_hash_hex,
        bits=first.bits,
        time=first.time,
        header=bytes.fromhex(first.header_hex),
        sources=tuple(sorted(c.source for c in good)),
        dissent=bad,
        failures=failures,
    )
