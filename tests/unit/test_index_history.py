"""``IndexTable`` (the API's arrays) against the per-request computations of ``oracle.index``.

Every answer of the table must equal what ``bme_at_epoch``, ``bme_series`` and
``epoch_at_time`` compute from the same history: on the real mainnet retargets,
and on generated histories with gaps and with header times out of order.
"""

from __future__ import annotations

import csv
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.errors import IndexUnavailable, InputError
from oracle.index.bme import EpochTarget, bme_series, epoch_at_time
from oracle.index.csvfile import bundled_sample_path, read_history
from oracle.index.history import IndexTable
from oracle.index.lookup import bme_at_epoch


def _mainnet() -> list[EpochTarget]:
    """The bundled retargets that carry a header time: epochs 0..436 (437..473 are bits only)."""
    path = resources.files("oracle") / "data" / "mainnet_retargets.csv"
    with path.open(encoding="utf-8") as handle:
        return [
            EpochTarget.from_bits(int(r["height"]) // 2016, int(r["bits"], 16), int(r["time"]))
            for r in csv.DictReader(handle)
            if r["time"]
        ]


MAINNET = _mainnet()
TABLE = IndexTable.build(MAINNET)


@pytest.mark.parametrize("n_days", [14, 28, 56, 84, 168, 364, 2016])
def test_every_value_equals_the_series(n_days: int) -> None:
    series = bme_series(n_days, MAINNET)
    assert series  # the whole history has windows for these N
    for epoch, value in series.items():
        assert TABLE.value(n_days, epoch) == value
    positions = range(len(TABLE))
    assert list(TABLE.series(n_days, positions)) == list(series.values())


def test_unavailable_values_say_why_like_the_lookup() -> None:
    for n_days, epoch in ((28, 0), (84, 4), (140000, 413)):
        with pytest.raises(IndexUnavailable) as table_error:
            TABLE.value(n_days, epoch)
        with pytest.raises(IndexUnavailable) as lookup_error:
            bme_at_epoch(n_days, epoch, MAINNET)
        assert str(table_error.value) == str(lookup_error.value)


def test_epoch_at_time_bisects_like_the_scan() -> None:
    times = [t.time for t in MAINNET]
    assert all(t is not None for t in times)
    probes = [0, times[0] - 1, times[0], times[-1], times[-1] + 1]  # type: ignore[operator]
    probes += [t + d for t in times for d in (-1, 0, 1)]  # type: ignore[operator]
    for at in probes:
        try:
            expected: int | str = epoch_at_time(MAINNET, at)
        except IndexUnavailable as exc:
            expected = str(exc)
        try:
            got: int | str = TABLE.epoch_at(at)
        except IndexUnavailable as exc:
            got = str(exc)
        assert got == expected, at


def test_span_is_the_epochs_in_force_between_two_times() -> None:
    t = [item.time or 0 for item in MAINNET]
    assert TABLE.span(None, None) == range(437)
    assert TABLE.span(t[10], t[20]) == range(10, 21)
    assert TABLE.span(t[10] + 1, t[20] - 1) == range(10, 20)  # 10 is in force at t10 + 1
    assert TABLE.span(None, t[0] - 1) == range(0)
    assert TABLE.span(t[0] - 100, t[2]) == range(0, 3)
    assert TABLE.span(t[20], t[10]) == range(0)


def test_epochs_without_a_header_time_are_refused() -> None:
    """The bundled file's bits-only epochs (437..473) have no time: no table over them."""
    whole = read_history(bundled_sample_path())
    assert [item.epoch for item in whole] == list(range(474))
    assert [item.epoch for item in whole if item.time is None] == list(range(437, 474))
    assert whole[:437] == MAINNET
    with pytest.raises(IndexUnavailable, match="epoch 437 has no header time"):
        IndexTable.build(whole)


def test_unsorted_history_is_refused() -> None:
    with pytest.raises(InputError):
        IndexTable.build([MAINNET[5], MAINNET[4]])


@st.composite
def histories(draw: st.DrawFn) -> list[EpochTarget]:
    """Sorted, unique epochs with gaps; times roughly increasing but sometimes out of order."""
    epochs = sorted(draw(st.sets(st.integers(0, 60), min_size=1, max_size=40)))
    return [
        EpochTarget(
            epoch=e,
            target=draw(st.integers(1, 2**224)),
            time=1_231_006_505 + e * 1_209_600 + draw(st.integers(-2_000_000, 2_000_000)),
        )
        for e in epochs
    ]


@settings(max_examples=150, deadline=None)
@given(history=histories(), n_days=st.sampled_from([14, 28, 42, 84]), at=st.integers(0, 2**31))
def test_generated_histories_agree_with_the_per_request_path(
    history: list[EpochTarget], n_days: int, at: int
) -> None:
    table = IndexTable.build(history)
    series = bme_series(n_days, history)
    for item in history:
        try:
            expected = bme_at_epoch(n_days, item.epoch, history)
        except IndexUnavailable:
            assert item.epoch not in series
            with pytest.raises(IndexUnavailable):
                table.value(n_days, item.epoch)
            continue
        assert table.value(n_days, item.epoch) == expected == series[item.epoch]
    try:
        in_force: int | None = epoch_at_time(history, at)
    except IndexUnavailable:
        in_force = None
    if in_force is None:
        with pytest.raises(IndexUnavailable):
            table.epoch_at(at)
    else:
        assert table.epoch_at(at) == in_force
