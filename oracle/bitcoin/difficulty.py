"""Compact bits, targets, difficulty and the retarget rule, exactly as Bitcoin Core.

Pure integer arithmetic; difficulty is a ``Fraction``. These functions are the
reference the contract must reproduce bit for bit, so they mirror Core line by line:
``arith_uint256::SetCompact``/``GetCompact`` (src/arith_uint256.cpp) and
``GetNextWorkRequired``/``CalculateNextWorkRequired``/``PermittedDifficultyTransition``
(src/pow.cpp).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import NewType

from oracle.errors import InvalidBits

Bits = NewType("Bits", int)
Target = NewType("Target", int)

#: Target of bits 0x1d00ffff: the numerator of difficulty (Core ``GetDifficulty``).
DIFF1_TARGET = 0xFFFF << 208
#: Blocks per retarget epoch (``DifficultyAdjustmentInterval``).
EPOCH_BLOCKS = 2016
#: Two weeks in seconds (``nPowTargetTimespan``).
TARGET_TIMESPAN_S = 14 * 24 * 60 * 60
#: Ten minutes (``nPowTargetSpacing``).
TARGET_SPACING_S = 600
_UINT256_MASK = (1 << 256) - 1


@dataclass(frozen=True, slots=True)
class Network:
    """Consensus parameters that the retarget rule depends on (Core ``CChainParams``)."""

    name: str
    pow_limit: Target
    allow_min_difficulty_blocks: bool = False  # testnet3/testnet4 20-minute rule
    no_retargeting: bool = False  # regtest
    enforce_bip94: bool = False  # testnet4: old target from the epoch's first block


NETWORKS: dict[str, Network] = {
    net.name: net
    for net in (
        Network(
            "mainnet", Target(0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)
        ),
        Network(
            "testnet3",
            Target(0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF),
            allow_min_difficulty_blocks=True,
        ),
        Network(
            "testnet4",
            Target(0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF),
            allow_min_difficulty_blocks=True,
            enforce_bip94=True,
        ),
        Network(
            "signet", Target(0x00000377AE000000000000000000000000000000000000000000000000000000)
        ),
        Network(
            "regtest",
            Target(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF),
            allow_min_difficulty_blocks=True,
            no_retargeting=True,
        ),
    )
}


def get_network(name: str) -> Network:
    """Look a network up by name, with an error that lists the known ones."""
    try:
        return NETWORKS[name]
    except KeyError:
        known = ", ".join(NETWORKS)
        raise InvalidBits(f"unknown network {name!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class Compact:
    """The raw result of ``SetCompact``: the value plus Core's two flags."""

    value: int
    negative: bool
    overflow: bool


def decode_compact(bits: int) -> Compact:
    """Decode compact bits exactly as ``arith_uint256::SetCompact``, flags included."""
    if not 0 <= bits <= 0xFFFFFFFF:
        raise InvalidBits(f"bits should be a uint32, got {bits!r}")
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        # Core shifts nWord in place, so the flags below see the shifted word.
        word >>= 8 * (3 - size)
        value = word
    else:
        value = (word << (8 * (size - 3))) & _UINT256_MASK
    negative = word != 0 and bool(bits & 0x00800000)
    overflow = word != 0 and (
        size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32)
    )
    return Compact(value=value, negative=negative, overflow=overflow)


def encode_compact(value: int, *, negative: bool = False) -> Bits:
    """Encode a 256-bit value as compact bits, exactly as ``arith_uint256::GetCompact``."""
    if not 0 <= value <= _UINT256_MASK:
        raise InvalidBits(f"target should be a uint256, got {value!r}")
    size = (value.bit_length() + 7) // 8
    compact = value << 8 * (3 - size) & 4294967295 if size <= 3 else value >> 8 * (size - 3)
    # The 0x00800000 bit is the sign; if the mantissa would set it, shift one byte.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    compact |= size << 24
    if negative and (compact & 0x007FFFFF):
        compact |= 0x00800000
    return Bits(compact)


def bits_to_target(bits: int) -> Target:
    """The target that valid compact bits encode.

    Raises ``InvalidBits`` for what ``CheckProofOfWork`` rejects: a negative,
    overflowing or zero target. (Too easy for a network is a separate check.)
    """
    compact = decode_compact(bits)
    if compact.negative:
        raise InvalidBits(f"bits {bits:#010x} encode a negative target")
    if compact.overflow:
        raise InvalidBits(f"bits {bits:#010x} overflow 256 bits")
    if compact.value == 0:
        raise InvalidBits(f"bits {bits:#010x} encode a zero target")
    return Target(compact.value)


def target_to_bits(target: int) -> Bits:
    """Compact encoding of a positive target (lossy: keeps the top 3 bytes)."""
    if target <= 0:
        raise InvalidBits(f"target should be positive, got {target!r}")
    return encode_compact(target)


def parse_bits(text: str) -> Bits:
    """Parse bits written as hex (``1703ba5d`` or ``0x1703ba5d``) and validate them."""
    cleaned = text.strip().lower().removeprefix("0x")
    if not cleaned or len(cleaned) > 8 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InvalidBits(f"bits should be up to 8 hex digits, got {text!r}")
    bits = Bits(int(cleaned, 16))
    bits_to_target(bits)
    return bits


def difficulty_from_target(target: int) -> Fraction:
    """Difficulty ``DIFF1_TARGET / target``, exact."""
    if target <= 0:
        raise InvalidBits(f"target should be positive, got {target!r}")
    return Fraction(DIFF1_TARGET, target)


def difficulty_from_bits(bits: int) -> Fraction:
    """Difficulty of valid compact bits, as an exact fraction."""
    return difficulty_from_target(bits_to_target(bits))


def target_from_difficulty(difficulty: Fraction) -> Target:
    """The target whose difficulty is ``difficulty`` (floor, since targets are integers)."""
    if difficulty <= 0:
        raise InvalidBits(f"difficulty should be positive, got {difficulty}")
    return Target(int(DIFF1_TARGET / difficulty))


def core_get_difficulty(bits: int) -> float:
    """Bitcoin Core's ``GetDifficulty`` float (display and cross-checking floats only).

    Core masks the mantissa with 0x00ffffff, not 0x007fffff; it matters only for
    bits with the sign bit set, which valid headers never have.
    """
    shift = (bits >> 24) & 0xFF
    mantissa = bits & 0x00FFFFFF
    if mantissa == 0:
        raise InvalidBits(f"bits {bits:#010x} have a zero mantissa")
    diff = 0x0000FFFF / mantissa
    while shift < 29:
        diff *= 256.0
        shift += 1
    while shift > 29:
        diff /= 256.0
        shift -= 1
    return diff


def clamp_timespan(actual_timespan_s: int) -> int:
    """Clamp the observed epoch timespan to [1/4, 4] x two weeks, as Core does."""
    return min(max(actual_timespan_s, TARGET_TIMESPAN_S // 4), TARGET_TIMESPAN_S * 4)


def calculate_next_work_required(
    network: Network,
    *,
    last_bits: int,
    first_time: int,
    last_time: int,
    first_bits: int | None = None,
) -> Bits:
    """Bits of the next epoch's first block (Core ``CalculateNextWorkRequired``).

    Parameters
    ----------
    last_bits: bits of block 2016e-1, the old target.
    first_time, last_time: header times of blocks 2016e-2016 and 2016e-1. Core
        measures 2015 intervals (the off-by-one is consensus, so we keep it).
    first_bits: bits of block 2016e-2016; testnet4 (BIP94) takes the old target
        from there so a min-difficulty last block cannot lower the difficulty.
    """
    if network.no_retargeting:
        return Bits(last_bits)
    timespan = clamp_timespan(last_time - first_time)
    if network.enforce_bip94:
        if first_bits is None:
            raise InvalidBits("testnet4 (BIP94) needs the bits of the epoch's first block")
        old_target = bits_to_target(first_bits)
    else:
        old_target = bits_to_target(last_bits)
    # arith_uint256 arithmetic wraps at 2^256; no real powLimit gets near it.
    new_target = ((old_target * timespan) & _UINT256_MASK) // TARGET_TIMESPAN_S
    new_target = min(new_target, network.pow_limit)
    return encode_compact(new_target)


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """What the retarget rule needs to know about one block."""

    height: int
    bits: int
    time: int


def get_next_work_required(
    network: Network,
    *,
    last: BlockInfo,
    new_block_time: int,
    ancestor: Callable[[int], BlockInfo],
) -> Bits:
    """Bits required of the block after ``last`` (Core ``GetNextWorkRequired``).

    ``ancestor(height)`` returns the block at that height on ``last``'s chain;
    it is used for the epoch's first block and, on testnets, to walk back over
    min-difficulty blocks.
    """
    pow_limit_bits = encode_compact(network.pow_limit)
    if (last.height + 1) % EPOCH_BLOCKS != 0:
        if not network.allow_min_difficulty_blocks:
            return Bits(last.bits)
        # Testnet's 20-minute rule: a block more than 2 x 10 minutes after its
        # parent may be mined at minimum difficulty.
        if new_block_time > last.time + TARGET_SPACING_S * 2:
            return pow_limit_bits
        block = last
        while (
            block.height > 0 and block.height % EPOCH_BLOCKS != 0 and block.bits == pow_limit_bits
        ):
            block = ancestor(block.height - 1)
        return Bits(block.bits)
    first = ancestor(last.height - (EPOCH_BLOCKS - 1))
    return calculate_next_work_required(
        network,
        last_bits=last.bits,
        first_time=first.time,
        last_time=last.time,
        first_bits=first.bits,
    )


def permitted_difficulty_transition(
    network: Network, *, height: int, old_bits: int, new_bits: int
) -> bool:
    """Whether ``new_bits`` may follow ``old_bits`` at ``height`` (PermittedDifficultyTransition).

    Used when the oracle lacks the headers to apply the exact rule: the new
    target must lie within [1/4, 4] of the old one, after Core's compact rounding.
    """
    if network.allow_min_difficulty_blocks:
        return True
    if height % EPOCH_BLOCKS != 0:
        return old_bits == new_bits
    observed = bits_to_target(new_bits)
    old_target = bits_to_target(old_bits)
    largest = min(old_target * (TARGET_TIMESPAN_S * 4) // TARGET_TIMESPAN_S, network.pow_limit)
    if decode_compact(encode_compact(largest)).value < observed:
        return False
    smallest = min(old_target * (TARGET_TIMESPAN_S // 4) // TARGET_TIMESPAN_S, network.pow_limit)
    return decode_compact(encode_compact(smallest)).value <= observed


def work_from_bits(bits: int) -> int:
    """Expected hashes for a block at these bits (Core ``GetBlockProof``): 2^256 / (target + 1)."""
    target = bits_to_target(bits)
    return (1 << 256) // (target + 1)
