"""BME index: DESIGN.md's worked examples, halving epochs, fixed point, properties."""

from __future__ import annotations

import csv
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.bitcoin.difficulty import DIFF1_TARGET, bits_to_target, target_from_difficulty
from oracle.errors import IndexUnavailable, InputError
from oracle.index.bme import (
    EpochTarget,
    block_subsidy_sat,
    bme,
    bme_at,
    bme_series,
    epoch_subsidy_sat,
    epochs_for_days,
    format_decimal,
    format_scientific,
    k_factor,
)
from tests.conftest import DATA


def _mainnet_history() -> list[EpochTarget]:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as f:
        return [
            EpochTarget.from_bits(int(r["epoch"]), int(r["bits"], 16), int(r["time"]))
            for r in csv.DictReader(f)
            if r["role"] == "first"
        ]


HISTORY = _mainnet_history()


def test_subsidy_schedule() -> None:
    assert block_subsidy_sat(0) == 50 * 10**8
    assert block_subsidy_sat(209_999) == 50 * 10**8
    assert block_subsidy_sat(210_000) == 25 * 10**8
    assert block_subsidy_sat(630_000) == 625_000_000
    assert block_subsidy_sat(840_000) == 312_500_000
    assert block_subsidy_sat(210_000 * 64) == 0
    assert block_subsidy_sat(210_000 * 63) == 0  # 5e9 >> 63
    with pytest.raises(InputError):
        block_subsidy_sat(-1)


def test_halving_epoch_is_block_weighted() -> None:
    # 630,000 lies in epoch 312 (starts 628,992): 1,008 blocks at 12.5, 1,008 at 6.25.
    assert epoch_subsidy_sat(312) == 1008 * 1_250_000_000 + 1008 * 625_000_000
    # Epoch 104 holds 210,000 = 209,664 + 336: 336 blocks at 50, 1,680 at 25.
    assert epoch_subsidy_sat(104) == 336 * 5_000_000_000 + 1680 * 2_500_000_000
    assert epoch_subsidy_sat(311) == 2016 * 1_250_000_000


def test_k_seed_value() -> None:
    # DESIGN.md: K = 251457095.146... at 12.5 BTC.
    k = k_factor(300)
    assert format_decimal(k, 3) == "251457095.146"
    assert k == Fraction(86400 * 10**12, 2**32) * Fraction(25, 2)


def test_design_worked_examples() -> None:
    d1 = Fraction(6_353_030_562_983)
    d2 = Fraction(6_702_169_884_349)
    e = 572_544 // 2016
    # With difficulties given (not bits): K/D exactly.
    window14 = [EpochTarget(e, Fraction(DIFF1_TARGET) / d1)]
    assert format_scientific(bme(14, window14).value, 4) == "3.958E-05"
    window28 = [
        EpochTarget(e, Fraction(DIFF1_TARGET) / d1),
        EpochTarget(e + 1, Fraction(DIFF1_TARGET) / d2),
    ]
    assert format_scientific(bme(28, window28).value, 4) == "3.855E-05"
    # The same from the real mainnet bits of those epochs.
    series14 = bme_series(14, HISTORY)
    series28 = bme_series(28, HISTORY)
    assert format_scientific(series14[e].value, 4) == "3.958E-05"
    assert format_scientific(series28[e + 1].value, 4) == "3.855E-05"


def test_fixed_point_matches_design_formula_independently() -> None:
    """Recompute DESIGN.md's integer formula by hand for a BME84 window."""
    series = bme_series(84, HISTORY)
    for epoch in (5, 104, 312, 313, 413):
        window = range(epoch - 5, epoch + 1)
        numerator = (
            sum(epoch_subsidy_sat(i) * bits_to_target(_bits(i)) for i in window) * 86400 * 10**22
        )
        denominator = 6 * 2016 * 2**32 * DIFF1_TARGET
        assert series[epoch].fixed == numerator // denominator


def _bits(epoch: int) -> int:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as f:
        for r in csv.DictReader(f):
            if r["role"] == "first" and int(r["epoch"]) == epoch:
                return int(r["bits"], 16)
    raise KeyError(epoch)


def test_decimal_cross_check_of_k_over_d() -> None:
    """BME14 of epoch 411 (bits 1703ba5d) recomputed with Decimal arithmetic."""
    e = 828_576 // 2016
    with localcontext() as ctx:
        ctx.prec = 50
        k = Decimal(86400) * Decimal(10**12) / Decimal(2**32) * Decimal("6.25")
        d = Decimal(DIFF1_TARGET) / Decimal(0x03BA5D * 256 ** (0x17 - 3))
        expected = k / d
    value = bme_series(14, HISTORY)[e]
    assert abs(Decimal(value.fixed) - expected * Decimal(10**18)) < 1


def test_undefined_until_enough_epochs() -> None:
    series = bme_series(84, HISTORY)
    assert 4 not in series and 5 in series
    with pytest.raises(IndexUnavailable):
        bme(84, HISTORY[:5])


def test_gap_breaks_window() -> None:
    history = [h for h in HISTORY[:20] if h.epoch != 10]
    series = bme_series(28, history)
    assert 11 not in series and 12 in series and 9 in series
    with pytest.raises(IndexUnavailable, match="consecutive"):
        bme(28, [HISTORY[9], HISTORY[11]])


@pytest.mark.parametrize("n", [0, -14, 13, 15, 20])
def test_n_must_be_multiple_of_14(n: int) -> None:
    with pytest.raises(InputError, match="multiple of 14"):
        epochs_for_days(n)


def test_bme_at_time() -> None:
    e = 411
    retarget_time = HISTORY[e].time
    assert retarget_time == 1706888526
    assert bme_at(14, HISTORY, retarget_time).epoch == e
    assert bme_at(14, HISTORY, retarget_time - 1).epoch == e - 1
    with pytest.raises(IndexUnavailable):
        bme_at(14, HISTORY, HISTORY[0].time - 1)


targets = st.integers(min_value=1 << 150, max_value=0xFFFF << 208)


@given(st.lists(targets, min_size=6, max_size=6), st.integers(min_value=0, max_value=600))
def test_fixed_is_floor_of_exact(window_targets: list[int], first_epoch: int) -> None:
    window = [EpochTarget(first_epoch + i, t) for i, t in enumerate(window_targets)]
    value = bme(84, window)
    assert value.fixed == (value.value * 10**18).__floor__()
    assert value.fixed <= value.value * 10**18 < value.fixed + 1


@given(targets, st.integers(min_value=1, max_value=10**6), st.integers(min_value=0, max_value=1000))
def test_bme_falls_as_difficulty_rises(target: int, factor: int, epoch: int) -> None:
    d = Fraction(DIFF1_TARGET, target)
    harder = target_from_difficulty(d * (1 + Fraction(factor, 10**6)))
    if harder < target:
        assert (
            bme(14, [EpochTarget(epoch, harder)]).value
            < bme(14, [EpochTarget(epoch, target)]).value
        )


@given(st.lists(targets, min_size=3, max_size=12))
def test_series_equals_windowed_bme(window_targets: list[int]) -> None:
    history = [EpochTarget(100 + i, t) for i, t in enumerate(window_targets)]
    series = bme_series(42, history)
    for i in range(2, len(history)):
        assert series[history[i].epoch] == bme(42, history[i - 2 : i + 1])


def test_format_helpers() -> None:
    assert format_scientific(Fraction(39580652517445, 10**18), 4) == "3.958E-05"
    assert format_scientific(Fraction(99995, 10**5), 4) == "1.000E+00"
    assert format_decimal(Fraction(-1, 3), 3) == "-0.333"
