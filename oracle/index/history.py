"""The agreed history as arrays: BME_N for any N at any epoch in O(1), the epoch in force at a
time in O(log n).

Pure. The HTTP API keeps one ``IndexTable`` per snapshot of the agreed
history (``oracle.api.snapshot``) and answers ``/v1/index/{n}``, ``?at=`` and
``/v1/index/{n}/history`` from it instead of recomputing a window per
request. The values are those of ``oracle.index.bme`` exactly: the table keeps
prefix sums of the integer terms ``S_i x target_i``, and a window's sum goes
through the same single floor (``bme_from_sum``); ``oracle.index.lookup`` is
the per-request form of the same answers (and the tests' reference).

A window needs T consecutive agreed epochs; a gap in the history makes the
epochs behind it unavailable for the N whose windows span it, with the same
``IndexUnavailable`` messages as ``oracle.index.lookup``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction

from oracle.errors import IndexUnavailable, InputError
from oracle.index.bme import (
    BmeValue,
    EpochTarget,
    bme_from_sum,
    earnings_term,
    epochs_for_days,
)


@dataclass(frozen=True, slots=True)
class IndexTable:
    """Prefix sums, run starts and a time index over agreed epochs (ascending, unique).

    ``positions[e]`` is the index of epoch ``e`` in ``epochs``; ``prefix[i]`` the
    sum of the terms of the first ``i`` epochs; ``run_start[i]`` the index where
    the run of consecutive epochs holding ``epochs[i]`` begins. ``times_sorted``
    are the header times in ascending order and ``latest_by_time[k]`` the highest
    epoch among the ``k + 1`` earliest, so "the latest epoch whose time is <= t"
    is one bisection even if header times were not monotonic.
    """

    epochs: tuple[int, ...]
    times: tuple[int, ...]
    positions: dict[int, int]
    prefix: tuple[Fraction | int, ...]
    run_start: tuple[int, ...]
    times_sorted: tuple[int, ...]
    latest_by_time: tuple[int, ...]

    @classmethod
    def build(cls, history: Sequence[EpochTarget]) -> IndexTable:
        """The table for ``history`` (sorted by epoch, every item with its header time)."""
        epochs: list[int] = []
        times: list[int] = []
        prefix: list[Fraction | int] = [0]
        run_start: list[int] = []
        for i, item in enumerate(history):
            if item.time is None:
                raise IndexUnavailable(f"epoch {item.epoch} has no header time")
            if i and item.epoch <= epochs[-1]:
                raise InputError(f"history not sorted by epoch at epoch {item.epoch}")
            consecutive = bool(i) and item.epoch == epochs[-1] + 1
            run_start.append(run_start[-1] if consecutive else i)
            epochs.append(item.epoch)
            times.append(item.time)
            prefix.append(prefix[-1] + earnings_term(item.epoch, item.target))
        by_time = sorted(zip(times, epochs, strict=True))
        latest: list[int] = []
        for _, epoch in by_time:
            latest.append(max(epoch, latest[-1]) if latest else epoch)
        return cls(
            epochs=tuple(epochs),
            times=tuple(times),
            positions={epoch: i for i, epoch in enumerate(epochs)},
            prefix=tuple(prefix),
            run_start=tuple(run_start),
            times_sorted=tuple(t for t, _ in by_time),
            latest_by_time=tuple(latest),
        )

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def latest_epoch(self) -> int | None:
        return self.epochs[-1] if self.epochs else None

    def epoch_at(self, at: int) -> int:
        """The latest epoch whose retarget header time is <= ``at`` (DESIGN.md, BME_N at t)."""
        k = bisect.bisect_right(self.times_sorted, at)
        if k == 0:
            raise IndexUnavailable(f"no epoch has a retarget at or before time {at}")
        return self.latest_by_time[k - 1]

    def defined(self, n_days: int, position: int) -> bool:
        """Whether BME_N has its T consecutive agreed epochs at ``epochs[position]``."""
        return position - self.run_start[position] + 1 >= epochs_for_days(n_days)

    def value(self, n_days: int, epoch: int) -> BmeValue:
        """BME_N at agreed ``epoch``: O(1), equal to ``oracle.index.lookup.bme_at_epoch``."""
        epochs = epochs_for_days(n_days)
        if epochs > epoch + 1:  # checked first: N may ask for far more epochs than exist
            raise IndexUnavailable(
                f"BME{n_days} at epoch {epoch} needs {epochs} epochs; {epoch + 1} exist"
            )
        position = self.positions.get(epoch)
        if position is None or not self.defined(n_days, position):
            raise IndexUnavailable(
                f"BME{n_days} at epoch {epoch} needs agreed epochs {epoch - epochs + 1}..{epoch}"
            )
        return self._at(n_days, position, epochs)

    def _at(self, n_days: int, position: int, epochs: int) -> BmeValue:
        total = self.prefix[position + 1] - self.prefix[position + 1 - epochs]
        return bme_from_sum(n_days, self.epochs[position], total)

    def span(self, start: int | None, end: int | None) -> range:
        """Positions of the epochs in force from time ``start`` to time ``end`` (inclusive).

        The first is the epoch in force at ``start`` (or the first epoch, when
        ``start`` is None or before it); the last the one in force at ``end``.
        Empty when ``end`` is before the first retarget or before ``start``.
        """
        if not self.epochs or (start is not None and end is not None and start > end):
            return range(0)
        first = 0
        if start is not None and bisect.bisect_right(self.times_sorted, start):
            first = self.positions[self.epoch_at(start)]
        last = len(self.epochs) - 1
        if end is not None:
            if not bisect.bisect_right(self.times_sorted, end):
                return range(0)
            last = self.positions[self.epoch_at(end)]
        return range(first, last + 1)

    def series(self, n_days: int, positions: range) -> Iterator[BmeValue]:
        """BME_N at each position of ``positions`` where it is defined, in epoch order."""
        epochs = epochs_for_days(n_days)
        for position in positions:
            if position - self.run_start[position] + 1 >= epochs:
                yield self._at(n_days, position, epochs)
