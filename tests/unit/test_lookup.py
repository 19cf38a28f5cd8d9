"""``oracle.index.lookup``: BME_N at an epoch of an agreed history, as ``/v1/index`` computes it.

Expected values come from ``bme_series`` over the real mainnet epoch history
(tests/data), an independent O(n) prefix-sum path; the error messages are the
404 bodies the API returns.
"""

from __future__ import annotations

import csv

import pytest

from oracle.errors import IndexUnavailable
from oracle.index.bme import EpochTarget, bme_series
from oracle.index.lookup import bme_at_epoch, epoch_in_force
from tests.conftest import DATA


def _mainnet_history() -> list[EpochTarget]:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as f:
        return [
            EpochTarget.from_bits(int(r["epoch"]), int(r["bits"], 16), int(r["time"]))
            for r in csv.DictReader(f)
            if r["role"] == "first"
        ]


HISTORY = _mainnet_history()


@pytest.mark.parametrize("n_days", [14, 28, 84, 364])
@pytest.mark.parametrize("epoch", [25, 209, 312, 411])
def test_matches_the_series(n_days: int, epoch: int) -> None:
    assert bme_at_epoch(n_days, epoch, HISTORY) == bme_series(n_days, HISTORY)[epoch]


def test_too_many_epochs_is_checked_before_the_window() -> None:
    with pytest.raises(
        IndexUnavailable, match=r"^BME140000 at epoch 3 needs 10000 epochs; 4 exist$"
    ):
        bme_at_epoch(140_000, 3, HISTORY)


def test_a_gap_in_the_window_is_unavailable() -> None:
    gappy = [t for t in HISTORY if t.epoch != 300]
    assert bme_at_epoch(28, 299, gappy) == bme_series(28, HISTORY)[299]
    with pytest.raises(
        IndexUnavailable, match=r"^BME28 at epoch 301 needs agreed epochs 300\.\.301$"
    ):
        bme_at_epoch(28, 301, gappy)


def test_epoch_in_force() -> None:
    assert epoch_in_force(HISTORY, None) == HISTORY[-1].epoch
    t_300 = HISTORY[300].time
    assert t_300 is not None
    assert epoch_in_force(HISTORY, t_300) == 300
    assert epoch_in_force(HISTORY, t_300 - 1) == 299
    with pytest.raises(IndexUnavailable):
        epoch_in_force(HISTORY, -5)
