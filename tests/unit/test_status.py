"""The ``/v1/status`` estimate against mempool.space's published vectors and real mainnet headers.

Expected values come from outside the code under test: mempool's own test
vectors (``backend/src/__tests__/api/difficulty-adjustment.test.ts``, quoted in
``../shared/reference/sources-api.md`` §3), the bits of the blocks that really
followed (tests/data), hand arithmetic on mantissas, and DESIGN.md's BME check.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from fractions import Fraction

import pytest

from oracle.bitcoin.difficulty import EPOCH_BLOCKS, get_network
from oracle.errors import InputError
from oracle.index.bme import format_scientific
from oracle.monitor.status import (
    ChainSnapshot,
    clamp_change_percent,
    estimate_next_retarget,
    plan_inputs,
)
from tests.conftest import DATA

MAINNET = get_network("mainnet")


def _rows(name: str, *, role: str | None = None) -> dict[int, dict[str, str]]:
    with (DATA / name).open() as f:
        return {int(r["height"]): r for r in csv.DictReader(f) if role is None or r["role"] == role}


HEADERS = _rows("headers_822528_830592.csv")
BOUNDARIES = _rows("epoch_boundary_headers_0_832608.csv")


def _time(rows: dict[int, dict[str, str]], height: int) -> int:
    return int(rows[height]["time"])


def _bits(rows: dict[int, dict[str, str]], height: int) -> int:
    return int(rows[height]["bits"], 16)


def _utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def _snapshot(rows: dict[int, dict[str, str]], tip: int, **extra: int | None) -> ChainSnapshot:
    plan = plan_inputs(tip)
    previous = plan.previous_epoch_start_height
    return ChainSnapshot(
        tip_height=tip,
        tip_time=_time(rows, tip),
        tip_bits=_bits(rows, tip),
        epoch_start_time=_time(rows, plan.epoch_start_height),
        epoch_bits=_bits(rows, plan.epoch_start_height),
        previous_epoch_bits=_bits(BOUNDARIES, previous) if previous is not None else None,
        **extra,  # type: ignore[arg-type]
    )


# mempool vector 1: tip 830027, mid-epoch (no sliding window).
V1 = {
    "progressPercent": 71.97420634920636,
    "difficultyChange": 8.512745140778843,
    "estimatedRetargetDate": 1708004001715,
    "remainingBlocks": 565,
    "remainingTime": 312620715,
    "previousRetarget": 7.333505241141637,
    "previousTime": 1706888526,
    "nextRetargetHeight": 830592,
    "timeAvg": 553311,
    "adjustedTimeAvg": 553311,
    "expectedBlocks": 1338.0916666666667,
}


def test_mempool_vector_830027_rebuilt_from_real_headers() -> None:
    # The vector's `now` is not in the response: recover it from two of its fields.
    now_ms = V1["estimatedRetargetDate"] - V1["remainingTime"]
    assert now_ms % 1000 == 0
    now = int(now_ms // 1000)
    # ... and it is the `now` input of mempool's test (2024-02-11T22:43:01Z).
    assert now == _utc("2024-02-11T22:43:01")
    estimate = estimate_next_retarget(MAINNET, _snapshot(HEADERS, 830027), now=now)

    assert estimate.progress_percent == V1["progressPercent"]
    assert estimate.remaining_blocks == V1["remainingBlocks"]
    assert estimate.next_retarget_height == V1["nextRetargetHeight"]
    assert estimate.epoch_start_time == V1["previousTime"]
    assert estimate.time_avg_ms == V1["timeAvg"]
    assert estimate.adjusted_time_avg_ms == V1["adjustedTimeAvg"]
    assert estimate.remaining_time_ms == V1["remainingTime"]
    assert estimate.estimated_retarget_date_ms == V1["estimatedRetargetDate"]
    assert float(estimate.expected_blocks) == V1["expectedBlocks"]
    assert not estimate.used_sliding_window and not estimate.locked_in
    # mempool computes in floats; the exact value agrees to ~1e-15 relative.
    assert float(estimate.difficulty_change_percent) == pytest.approx(
        V1["difficultyChange"], rel=1e-14
    )
    # (600 x 1452 / (now - epoch start) - 1) x 100, by hand.
    assert estimate.difficulty_change_percent == (Fraction(600 * 1452, now - 1706888526) - 1) * 100


def test_previous_retarget_is_exact_from_bits() -> None:
    """0x1704005a -> 0x1703ba5d: same exponent, so D ratio = 0x04005a / 0x03ba5d exactly."""
    estimate = estimate_next_retarget(MAINNET, _snapshot(HEADERS, 830027), now=1707691381)
    expected = (Fraction(0x04005A, 0x03BA5D) - 1) * 100
    assert estimate.previous_retarget_percent == expected
    # mempool's mantissa arithmetic (7.333505241141637) is off in the 15th digit;
    # so is the Core-float ratio (7.333505241141625): the exact value lies between.
    assert Fraction(7.333505241141625) < expected < Fraction(V1["previousRetarget"])
    assert float(expected) == pytest.approx(V1["previousRetarget"], rel=1e-14)


def test_mempool_vector_788255_lock_in_uses_the_consensus_rule() -> None:
    """mempool vector 4: the tip is the epoch's last block, so the next bits are already fixed."""
    tip = 788255
    now = _utc("2023-05-04T14:54:09")  # the vector's now: 17 s *before* the tip's header time
    assert _time(BOUNDARIES, tip) == _utc("2023-05-04T14:54:26")
    assert _time(BOUNDARIES, 786240) == _utc("2023-04-20T09:57:33")
    estimate = estimate_next_retarget(MAINNET, _snapshot(BOUNDARIES, tip), now=now)
    assert estimate.locked_in
    assert estimate.next_bits == _bits(BOUNDARIES, 788256)  # what block 788256 really carried
    assert estimate.progress_percent == 99.95039682539682
    assert estimate.remaining_blocks == 1
    assert estimate.next_retarget_height == 788256
    assert estimate.time_avg_ms == 609129
    assert estimate.remaining_time_ms == 609129
    assert estimate.estimated_retarget_date_ms == 1683212658129
    assert float(estimate.expected_blocks) == 2045.66
    # mempool's float estimate (-1.4512637555574193) ignores the compact rounding of the
    # new target; one unit of the 3-byte mantissa moves the difficulty by 1/mantissa.
    mantissa = _bits(BOUNDARIES, 788256) & 0x7FFFFF
    assert abs(float(estimate.difficulty_change_percent) + 1.4512637555574193) < 100 / mantissa
    assert float(estimate.previous_retarget_percent or 0) == pytest.approx(
        1.7220298879531821, rel=1e-12
    )


def test_mempool_vector_750134_sliding_window() -> None:
    """mempool vector 2: 182 blocks in, the previous 504-block window is blended in."""
    tip = 750134
    epoch_start = 749952
    # The vector's times are rounded to the minute (block 749952 is at 11:07:57): use
    # its inputs as given, with the real bits of epochs 371 and 372.
    epoch_start_time = _utc("2022-08-18T11:07:00")
    assert abs(_time(BOUNDARIES, epoch_start) - epoch_start_time) < 60
    snapshot = ChainSnapshot(
        tip_height=tip,
        tip_time=0,  # not used before lock-in; our data has no header at 750134
        tip_bits=_bits(BOUNDARIES, epoch_start),
        epoch_start_time=epoch_start_time,
        epoch_bits=_bits(BOUNDARIES, epoch_start),
        previous_epoch_bits=_bits(BOUNDARIES, epoch_start - EPOCH_BLOCKS),
        window_start_time=_utc("2022-08-16T03:16:54"),  # the vector's window start input
    )
    estimate = estimate_next_retarget(MAINNET, snapshot, now=_utc("2022-08-19T14:03:53"))
    assert estimate.used_sliding_window
    assert float(estimate.previous_retarget_percent or 0) == pytest.approx(
        0.6280047707459726, rel=1e-12
    )
    assert estimate.progress_percent == 9.027777777777777
    assert estimate.remaining_blocks == 1834
    assert estimate.next_retarget_height == 751968
    assert estimate.time_avg_ms == 533038
    assert estimate.adjusted_time_avg_ms == 594992
    assert estimate.remaining_time_ms == 1091215328
    assert estimate.estimated_retarget_date_ms == 1662009048328
    assert float(estimate.expected_blocks) == 161.68833333333333
    assert float(estimate.difficulty_change_percent) == pytest.approx(1.0420538959004633, rel=1e-12)


@pytest.mark.parametrize("next_epoch_start", [824544, 826560, 828576, 830592])
def test_lock_in_predicts_every_real_retarget_in_the_recorded_range(next_epoch_start: int) -> None:
    tip = next_epoch_start - 1
    estimate = estimate_next_retarget(MAINNET, _snapshot(HEADERS, tip), now=_time(HEADERS, tip))
    assert estimate.locked_in
    assert estimate.next_bits == _bits(HEADERS, next_epoch_start)
    assert estimate.previous_retarget_percent is not None


def test_projected_bme14_matches_design_check_value() -> None:
    """DESIGN.md: height 572,544 (difficulty 6,353,030,562,983) -> BME14 = 3.958E-05."""
    estimate = estimate_next_retarget(
        MAINNET, _snapshot(BOUNDARIES, 572543), now=_time(BOUNDARIES, 572543)
    )
    assert estimate.next_bits == _bits(BOUNDARIES, 572544)
    assert int(estimate.estimated_next_difficulty) == 6_353_030_562_983
    assert estimate.projected_bme14.epoch == 284
    assert format_scientific(estimate.projected_bme14.value) == "3.958E-05"


def test_sliding_window_keeps_early_estimates_steady_on_real_headers() -> None:
    """The first 40 blocks of epoch 411: the window estimate barely moves, the naive one swings."""
    windowed, naive = [], []
    for tip in range(828577, 828577 + 40):
        now = _time(HEADERS, tip)
        snapshot = _snapshot(HEADERS, tip, window_start_time=_time(HEADERS, tip - 503))
        estimate = estimate_next_retarget(MAINNET, snapshot, now=now)
        assert estimate.used_sliding_window
        windowed.append(estimate.difficulty_change_percent)
        naive.append(
            estimate_next_retarget(
                MAINNET, _snapshot(HEADERS, tip), now=now
            ).difficulty_change_percent
        )
    assert max(windowed) - min(windowed) < 10
    assert max(naive) - min(naive) > 100
    assert max(naive) == 300  # one quick block reads as the +300 % clamp


def test_window_start_is_tip_minus_503_and_only_early_in_the_epoch() -> None:
    plan = plan_inputs(828576 + 10)
    assert plan.epoch == 411
    assert plan.epoch_start_height == 828576
    assert plan.previous_epoch_start_height == 826560
    assert plan.window_start_height == 828576 + 10 - 503
    assert plan_inputs(828576 + 503).window_start_height is None
    assert plan_inputs(100).window_start_height is None  # no block 100 - 503
    assert plan_inputs(5).previous_epoch_start_height is None
    for bad in (-1, True, 1.5):
        with pytest.raises(InputError):
            plan_inputs(bad)  # type: ignore[arg-type]


def test_change_is_clamped_to_what_one_retarget_can_do() -> None:
    base = _snapshot(HEADERS, 829000)
    fast = estimate_next_retarget(MAINNET, base, now=base.epoch_start_time + 60)
    assert fast.difficulty_change_percent == 300
    slow = estimate_next_retarget(MAINNET, base, now=base.epoch_start_time + 100 * 86400)
    assert slow.difficulty_change_percent == -75
    skewed = estimate_next_retarget(MAINNET, base, now=base.epoch_start_time - 10)
    assert skewed.difficulty_change_percent == 300  # now before epoch start: no division by 0
    assert skewed.expected_blocks == 0
    assert clamp_change_percent(Fraction(301)) == 300
    assert clamp_change_percent(Fraction(-76)) == -75
    assert clamp_change_percent(Fraction(1, 3)) == Fraction(1, 3)


def test_sign_of_change_follows_block_speed() -> None:
    """The sign once was inverted upstream: faster blocks must mean higher difficulty."""
    base = _snapshot(HEADERS, 829000)
    blocks = 829000 - 828576 + 1
    faster = estimate_next_retarget(MAINNET, base, now=base.epoch_start_time + blocks * 500)
    slower = estimate_next_retarget(MAINNET, base, now=base.epoch_start_time + blocks * 700)
    assert faster.difficulty_change_percent == 20
    assert slower.estimated_next_difficulty < slower.current_difficulty
    assert faster.estimated_next_difficulty == faster.current_difficulty * Fraction(6, 5)
    assert faster.projected_bme14.value < slower.projected_bme14.value


def test_regtest_never_retargets() -> None:
    snapshot = ChainSnapshot(
        tip_height=2015,
        tip_time=1_700_000_000,
        tip_bits=0x207FFFFF,
        epoch_start_time=1_600_000_000,
        epoch_bits=0x207FFFFF,
    )
    estimate = estimate_next_retarget(get_network("regtest"), snapshot, now=1_700_000_100)
    assert estimate.difficulty_change_percent == 0
    assert estimate.next_bits == 0x207FFFFF
    assert not estimate.locked_in
    assert estimate.previous_retarget_percent is None
