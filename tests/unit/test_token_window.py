"""A token's window (the epochs it settles on), per-epoch K across a halving, and D0.

Why: the issue's case. ``LBME84-10-30-240601`` settles on BME84 in force at
2024-06-01 02:00 UTC, the mean over epochs 414..419, and the 2024 halving
(height 840,000) lies in epoch 416. One K for the whole window priced it at
7.41 (x1E-7) and worth 0 BTC; the index those difficulties give is 10.73 and
the long is worth 0.0729 BTC. The expected figures here are computed in the
test from the spec (compact bits -> target -> difficulty, subsidies summed
block by block), not by the code under test.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from fractions import Fraction

import pytest

from oracle.errors import InputError
from oracle.index.bme import EpochTarget
from oracle.index.csvfile import bundled_sample_path, read_history
from oracle.index.pricing import price_from_market, value_from_path
from oracle.index.tokens import parse_token
from oracle.index.window import TARGET_EPOCH_S, token_window
from tests.conftest import ROOT

DIFF1 = 0xFFFF << 208


def _bits_by_epoch() -> dict[int, int]:
    """The bits of every mainnet epoch 1..473 (Electrum's checkpoints, bundled)."""
    path = ROOT / "oracle" / "data" / "epoch_bits_1_473.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return {int(row["epoch"]): int(row["bits"], 16) for row in csv.DictReader(f)}


def _difficulty(bits: int) -> Fraction:
    """Compact bits -> target -> difficulty, by hand (valid mainnet bits: no sign, no overflow)."""
    exponent, mantissa = bits >> 24, bits & 0x7FFFFF
    target = mantissa << (8 * (exponent - 3))
    return Fraction(DIFF1, target)


def _k(epoch: int) -> Fraction:
    """K_e = 86400 x 10^12 / 2^32 x the mean subsidy (BTC) of the epoch's 2016 blocks."""
    total_sat = sum(
        5_000_000_000 >> (h // 210_000) for h in range(2016 * epoch, 2016 * epoch + 2016)
    )
    return Fraction(86400 * 10**12, 2**32) * Fraction(total_sat, 2016 * 10**8)


@pytest.fixture(scope="module")
def bundled() -> list[EpochTarget]:
    return read_history(bundled_sample_path())


def test_the_issue_example_window_and_value(bundled: list[EpochTarget]) -> None:
    token = parse_token("LBME84-10-30-240601")
    window = token_window(token.n_days, token.expiry_ts, bundled)
    assert (window.first_epoch, window.last_epoch) == (414, 419)
    # Epoch 419's retarget (height 844,704) was at 2024-05-23 06:18:50 UTC, 420's after expiry.
    times = {item.epoch: item.time for item in bundled}
    assert times[419] is not None and times[419] <= token.expiry_ts < (times[420] or 0)
    assert not any(item.time_estimated for item in window.epochs)

    bits = _bits_by_epoch()
    difficulties = [_difficulty(bits[e]) for e in range(414, 420)]
    ks = [_k(e) for e in range(414, 420)]
    assert ks[2] == _k(414) * Fraction(
        1344 + 672 // 2, 2016
    )  # 416: 1344 blocks at 6.25, 672 at 3.125
    index_btc = sum((k / d for k, d in zip(ks, difficulties, strict=True)), Fraction(0)) / 6
    assert [item.k for item in window.epochs] == ks
    assert [item.difficulty for item in window.epochs] == difficulties
    assert window.d0 == _difficulty(bits[413])

    value = value_from_path(token, path=difficulties, ks=window.ks)
    assert value.index_btc == index_btc
    assert round(value.index_units, 2) == Fraction(1073, 100)  # 10.73 x 1E-7 = 1.073E-06
    assert value.value_btc == (index_btc - Fraction(10, 10**7)) * 10**6
    assert round(value.value_btc, 4) == Fraction(729, 10**4)  # 0.0729 BTC
    # The defect the issue reports: one K (the post-halving 3.125 BTC) for all six epochs.
    flat = sum((ks[-1] / d for d in difficulties), Fraction(0)) / 6
    assert round(flat * 10**7, 2) == Fraction(741, 100)


def test_market_price_uses_the_window_and_its_d0(bundled: list[EpochTarget]) -> None:
    token = parse_token("LBME84-10-30-240601")
    window = token_window(token.n_days, token.expiry_ts, bundled)
    assert window.before.epoch == 413 and window.d0 is not None
    # Priced at the value the real difficulties give, the market implies the real index.
    bits = _bits_by_epoch()
    ks = [_k(e) for e in range(414, 420)]
    index_btc = (
        sum(
            (k / _difficulty(bits[e]) for k, e in zip(ks, range(414, 420), strict=True)),
            Fraction(0),
        )
        / 6
    )
    price = (index_btc - Fraction(10, 10**7)) * 10**6
    implied = price_from_market(token, price_btc=price, d0=window.d0, ks=window.ks)
    assert implied.earnings_btc == index_btc
    assert implied.difficulty == sum(ks, Fraction(0)) / 6 / index_btc


def test_beyond_the_known_times_epochs_are_estimated_at_600_s_per_block(
    bundled: list[EpochTarget],
) -> None:
    token = parse_token("SBME84-4.85-5.4-261215")
    window = token_window(token.n_days, token.expiry_ts, bundled)
    anchor = max(item.epoch for item in bundled if item.time is not None)
    anchor_time = next(item.time for item in bundled if item.epoch == anchor)
    assert anchor == 436 and anchor_time == 1736712111  # 2025-01-12 20:01:51 UTC
    expiry = int(datetime(2026, 12, 15, 2, tzinfo=UTC).timestamp())
    last = 436 + (expiry - 1736712111) // (2016 * 600)
    assert window.last_epoch == last == 486
    assert window.epochs[0].time == 1736712111 + (481 - 436) * 1_209_600
    assert all(item.time_estimated for item in window.epochs)
    assert all(item.difficulty is None for item in window.epochs)  # bits known to 473 only
    assert window.d0 is None and window.before.epoch == 480
    assert all(item.k == _k(486) for item in window.epochs)  # 3.125 BTC until 1,050,000


def test_height_names_the_last_epoch(bundled: list[EpochTarget]) -> None:
    token = parse_token("LBME84-10-30-240601")
    window = token_window(token.n_days, token.expiry_ts, bundled, last_epoch=473)
    assert (window.first_epoch, window.last_epoch, window.last_epoch_given) == (468, 473, True)
    assert window.d0 == _difficulty(_bits_by_epoch()[467])


def test_window_errors() -> None:
    timed = [
        EpochTarget(epoch=e, target=DIFF1, time=1_000_000 + e * TARGET_EPOCH_S) for e in range(3)
    ]
    with pytest.raises(InputError, match="before the first retarget time"):
        token_window(14, 999_999, timed)
    with pytest.raises(InputError, match="needs an epoch before it"):
        token_window(28, 1_000_000 + TARGET_EPOCH_S, timed)  # window 0..1: no D0 epoch
    untimed = [EpochTarget(epoch=e, target=DIFF1) for e in range(3)]
    with pytest.raises(InputError, match="no retarget times"):
        token_window(14, 2_000_000, untimed)
    # Not sorted by time (a made-up history): the latest epoch at or before the time wins.
    shuffled = [
        EpochTarget(epoch=1, target=DIFF1, time=100),
        EpochTarget(epoch=2, target=DIFF1, time=90),
        EpochTarget(epoch=3, target=DIFF1, time=500),
    ]
    assert token_window(14, 95, shuffled).last_epoch == 2
    assert token_window(14, 120, shuffled).last_epoch == 2
