"""Where the current epoch stands and what the next retarget will probably be (``/v1/status``).

Pure: the caller fetches a handful of header facts from the chain on every
request (``plan_inputs`` says which) and passes them in with ``now``; nothing
here is cached, so a reorg of the epoch-start block, a fast catch-up or a
restart cannot leave a stale epoch state behind (a pitfall mempool.space's
users hit; see ``../shared/reference/difficulty-estimate.md``).

The estimate follows mempool.space's ``calcDifficultyAdjustment`` so the
figures match what Bitcoin users already read, with these differences:

* every quantity is an exact ``Fraction`` until the API formats it; the
  millisecond fields are exact floors, not floors of rounded floats;
* ``previous_retarget_percent`` is computed from the two epochs' bits exactly
  (mempool's mantissa arithmetic is off in the 14th digit);
* when the tip is the last block of the epoch (``locked_in``), the next bits
  are already fixed by consensus, so they are computed with Bitcoin Core's
  retarget rule (2015 intervals, clamp, powLimit, compact rounding) instead of
  estimated, and the projected BME14 is the exact value that will be published;
* for the first 503 blocks of an epoch the estimate blends in a 504-block
  sliding window (mempool's fix for wild swings early in the epoch), rescaled
  by the exact previous retarget ratio.

The projected BME14 is the index at the estimated difficulty of the next
epoch, ``K_{e+1} / D_{e+1}``: what a TH/s will earn per day after the retarget.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from oracle.bitcoin.difficulty import (
    EPOCH_BLOCKS,
    TARGET_SPACING_S,
    Network,
    bits_to_target,
    calculate_next_work_required,
    difficulty_from_target,
)
from oracle.errors import InputError
from oracle.index.bme import BmeValue, EpochTarget, bme

#: Blocks of the sliding window used early in an epoch (a quarter epoch).
WINDOW_BLOCKS = 504
#: Below this many blocks into the epoch the sliding window is used.
SLIDING_WINDOW_BELOW = 503
#: Bitcoin's retarget is clamped to [1/4, 4] x: in percent, [-75, +300].
MIN_CHANGE_PERCENT = Fraction(-75)
MAX_CHANGE_PERCENT = Fraction(300)


@dataclass(frozen=True, slots=True)
class StatusPlan:
    """Which block heights the estimate for a tip needs (fetch these, nothing else)."""

    tip_height: int
    epoch: int
    epoch_start_height: int
    previous_epoch_start_height: int | None
    window_start_height: int | None


def plan_inputs(tip_height: int) -> StatusPlan:
    """The heights whose header time or bits ``estimate_next_retarget`` needs for this tip."""
    if isinstance(tip_height, bool) or not isinstance(tip_height, int) or tip_height < 0:
        raise InputError(f"tip height should be a non-negative integer, got {tip_height!r}")
    epoch = tip_height // EPOCH_BLOCKS
    blocks_in_epoch = tip_height % EPOCH_BLOCKS
    window_start = tip_height - SLIDING_WINDOW_BELOW
    return StatusPlan(
        tip_height=tip_height,
        epoch=epoch,
        epoch_start_height=epoch * EPOCH_BLOCKS,
        previous_epoch_start_height=(epoch - 1) * EPOCH_BLOCKS if epoch else None,
        window_start_height=(
            window_start if blocks_in_epoch < SLIDING_WINDOW_BELOW and window_start >= 0 else None
        ),
    )


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    """The header facts one estimate is computed from, read from the chain just now.

    ``epoch_bits`` are the bits of block 2016e (the current epoch's difficulty),
    ``tip_bits`` those of the tip (the old target of Core's rule at lock-in),
    ``previous_epoch_bits`` those of block 2016(e-1), and ``window_start_time``
    the header time of block tip-503 (only needed early in an epoch).
    """

    tip_height: int
    tip_time: int
    tip_bits: int
    epoch_start_time: int
    epoch_bits: int
    previous_epoch_bits: int | None = None
    window_start_time: int | None = None


@dataclass(frozen=True, slots=True)
class RetargetEstimate:
    """The state of the current epoch and the estimated next retarget (exact values)."""

    tip_height: int
    tip_time: int
    now: int
    epoch: int
    blocks_in_epoch: int
    progress_percent: float
    remaining_blocks: int
    next_retarget_height: int
    epoch_start_time: int
    current_bits: int
    current_difficulty: Fraction
    previous_retarget_percent: Fraction | None
    difficulty_change_percent: Fraction
    estimated_next_difficulty: Fraction
    locked_in: bool
    next_bits: int | None
    used_sliding_window: bool
    time_avg_ms: int
    adjusted_time_avg_ms: int
    remaining_time_ms: int
    estimated_retarget_date_ms: int
    expected_blocks: Fraction
    projected_bme14: BmeValue


def retarget_percent(old_bits: int, new_bits: int) -> Fraction:
    """Exact difficulty change from ``old_bits`` to ``new_bits``, in percent.

    ``D_new / D_old - 1 = target_old / target_new - 1``: integers only, so no
    float rounding (mempool's ``calcBitsDifference`` rounds in the mantissa).
    """
    return (Fraction(bits_to_target(old_bits), bits_to_target(new_bits)) - 1) * 100


def clamp_change_percent(change: Fraction) -> Fraction:
    """A difficulty change clamped to what one retarget can do: [-75 %, +300 %]."""
    return min(max(change, MIN_CHANGE_PERCENT), MAX_CHANGE_PERCENT)


def _change_from_span(span_s: Fraction | int, blocks: int) -> Fraction:
    """``(600 / (span / blocks) - 1) x 100``: the change that brings ``blocks`` back to 600 s."""
    if span_s <= 0:
        # Blocks came at (or, with skewed clocks, before) the epoch start: as fast
        # as it gets; the clamp caps it.
        return MAX_CHANGE_PERCENT
    return clamp_change_percent((Fraction(TARGET_SPACING_S * blocks) / span_s - 1) * 100)


def _floor_ms(seconds: Fraction) -> int:
    scaled = seconds * 1000
    return scaled.numerator // scaled.denominator


@dataclass(frozen=True, slots=True)
class _Forecast:
    change: Fraction  # percent, clamped
    next_bits: int | None  # known only at lock-in (or without retargeting)
    adjusted_time_avg_s: Fraction | None  # the sliding window's block interval
    sliding: bool


def _forecast(
    network: Network, snapshot: ChainSnapshot, *, now: int, blocks_in_epoch: int
) -> _Forecast:
    """The difficulty change: 0 (regtest), exact (lock-in), windowed (early) or plain."""
    if network.no_retargeting:
        return _Forecast(Fraction(0), snapshot.epoch_bits, None, False)
    if blocks_in_epoch == EPOCH_BLOCKS - 1:
        # The tip is the epoch's last block: Core's rule (2015 intervals from the
        # first to this block, clamp, powLimit, compact) already fixes the bits.
        next_bits = calculate_next_work_required(
            network,
            last_bits=snapshot.tip_bits,
            first_time=snapshot.epoch_start_time,
            last_time=snapshot.tip_time,
            first_bits=snapshot.epoch_bits,
        )
        return _Forecast(retarget_percent(snapshot.epoch_bits, next_bits), next_bits, None, False)
    diff_seconds = max(0, now - snapshot.epoch_start_time)
    window_time, previous_bits = snapshot.window_start_time, snapshot.previous_epoch_bits
    if (
        blocks_in_epoch < SLIDING_WINDOW_BELOW
        and window_time is not None
        and previous_bits is not None
    ):
        # The window's part in the previous epoch was mined at the previous
        # difficulty; rescale it to this one by the exact ratio D_e / D_{e-1}.
        ratio = Fraction(bits_to_target(previous_bits), bits_to_target(snapshot.epoch_bits))
        adjusted_span = diff_seconds + (snapshot.epoch_start_time - window_time) * ratio
        change = _change_from_span(adjusted_span, WINDOW_BLOCKS)
        return _Forecast(change, None, adjusted_span / SLIDING_WINDOW_BELOW, True)
    # From the epoch's first block to now, the block being mined counted
    # (blocks_in_epoch + 1 blocks), as mempool does.
    change = _change_from_span(now - snapshot.epoch_start_time, blocks_in_epoch + 1)
    return _Forecast(change, None, None, False)


def estimate_next_retarget(
    network: Network, snapshot: ChainSnapshot, *, now: int
) -> RetargetEstimate:
    """Estimate the next retarget from the chain as it is at ``now`` (unix seconds).

    Parameters
    ----------
    network: the Bitcoin network (regtest never retargets: the change is 0).
    snapshot: header facts for the heights ``plan_inputs(tip_height)`` named.
    now: the wall clock, in whole seconds; the open interval since the tip
        counts as time spent (mempool's convention).

    Returns
    -------
    RetargetEstimate with exact fractions; ``locked_in`` when the tip is the
    epoch's last block, in which case ``next_bits`` are the consensus bits.
    """
    plan = plan_inputs(snapshot.tip_height)
    blocks_in_epoch = snapshot.tip_height % EPOCH_BLOCKS
    remaining_blocks = EPOCH_BLOCKS - blocks_in_epoch
    diff_seconds = max(0, now - snapshot.epoch_start_time)
    time_avg_s = (
        Fraction(diff_seconds, blocks_in_epoch) if blocks_in_epoch else Fraction(TARGET_SPACING_S)
    )
    forecast = _forecast(network, snapshot, now=now, blocks_in_epoch=blocks_in_epoch)
    current_target = bits_to_target(snapshot.epoch_bits)
    if forecast.next_bits is not None:
        next_target: int | Fraction = bits_to_target(forecast.next_bits)
    else:
        next_target = current_target * Fraction(100, 100 + forecast.change)
    adjusted_time_avg_ms = _floor_ms(forecast.adjusted_time_avg_s or time_avg_s)
    remaining_time_ms = remaining_blocks * adjusted_time_avg_ms
    return RetargetEstimate(
        tip_height=snapshot.tip_height,
        tip_time=snapshot.tip_time,
        now=now,
        epoch=plan.epoch,
        blocks_in_epoch=blocks_in_epoch,
        # Display only; computed in the same float order as mempool so the
        # two agree to the last digit.
        progress_percent=blocks_in_epoch / EPOCH_BLOCKS * 100,
        remaining_blocks=remaining_blocks,
        next_retarget_height=snapshot.tip_height + remaining_blocks,
        epoch_start_time=snapshot.epoch_start_time,
        current_bits=snapshot.epoch_bits,
        current_difficulty=difficulty_from_target(current_target),
        previous_retarget_percent=(
            retarget_percent(snapshot.previous_epoch_bits, snapshot.epoch_bits)
            if snapshot.previous_epoch_bits is not None
            else None
        ),
        difficulty_change_percent=forecast.change,
        estimated_next_difficulty=difficulty_from_target(current_target)
        * (1 + forecast.change / 100),
        locked_in=forecast.next_bits is not None and not network.no_retargeting,
        next_bits=forecast.next_bits,
        used_sliding_window=forecast.sliding,
        time_avg_ms=_floor_ms(time_avg_s),
        adjusted_time_avg_ms=adjusted_time_avg_ms,
        remaining_time_ms=remaining_time_ms,
        estimated_retarget_date_ms=now * 1000 + remaining_time_ms,
        expected_blocks=Fraction(diff_seconds, TARGET_SPACING_S),
        projected_bme14=bme(14, [EpochTarget(epoch=plan.epoch + 1, target=next_target)]),
    )
