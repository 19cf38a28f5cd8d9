"""The epochs a position token settles on, found from real retarget times.

Pure. A token with N days settles on BME_N in force at its expiry (DESIGN.md,
"BME_N at time t"): the value for the latest epoch whose retarget header time
is <= expiry. That epoch and the T - 1 = N/14 - 1 epochs before it are the
token's *window*; each carries its own K_i (the index's block-weighted subsidy
rule, so a window across a halving is priced right), and the *D0* of the
pricing formulas is the difficulty of the epoch just before the window.

Which epoch is in force at the expiry comes from the retarget header times of
a history (the bundled mainnet retargets, a CSV, or the oracle's store):

* where the history holds the times, the real ones: the latest epoch whose
  retarget time is <= expiry (bisection over the times);
* beyond the latest epoch with a known time (the *anchor*), each later epoch
  is assumed to start 2016 x 600 s after the one before, so epoch
  ``anchor + j`` is estimated at ``time(anchor) + j x 1,209,600`` and the epoch
  in force at the expiry is ``anchor + (expiry - time(anchor)) // 1,209,600``.
  Blocks have come faster than 600 s on average while hashrate grew, so an
  estimate far ahead may name a window an epoch late; ``--height`` overrides it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from oracle.bitcoin.difficulty import DIFF1_TARGET, EPOCH_BLOCKS
from oracle.errors import InputError
from oracle.index.bme import EpochTarget, epochs_for_days, k_factor

TARGET_BLOCK_SPACING_S = 600
#: An epoch at the target block spacing: 2016 x 600 s, two weeks.
TARGET_EPOCH_S = EPOCH_BLOCKS * TARGET_BLOCK_SPACING_S


@dataclass(frozen=True, slots=True)
class WindowEpoch:
    """One epoch of a token's window (or its D0 epoch)."""

    epoch: int
    #: retarget header time, unix seconds; estimated past the history's last known time,
    #: None for an epoch before it whose time the history lacks
    time: int | None
    time_estimated: bool
    #: K_i: BTC per TH/s per day at difficulty 1 (block-weighted subsidy)
    k: Fraction
    #: the epoch's difficulty, when the history holds it (None for a future epoch)
    difficulty: Fraction | None

    @property
    def height(self) -> int:
        """Height of the epoch's retarget block, 2016e."""
        return self.epoch * EPOCH_BLOCKS


@dataclass(frozen=True, slots=True)
class TokenWindow:
    """The T epochs whose BME_N a token settles on, oldest first, and its D0."""

    n_days: int
    expiry_ts: int
    epochs: tuple[WindowEpoch, ...]
    #: the epoch just before the window; its difficulty is D0
    before: WindowEpoch
    #: latest epoch whose retarget time the history holds (estimates start after it)
    anchor_epoch: int
    #: True when the caller named the last epoch (``--height``) instead of the expiry
    last_epoch_given: bool

    @property
    def first_epoch(self) -> int:
        return self.epochs[0].epoch

    @property
    def last_epoch(self) -> int:
        return self.epochs[-1].epoch

    @property
    def ks(self) -> tuple[Fraction, ...]:
        return tuple(item.k for item in self.epochs)

    @property
    def d0(self) -> Fraction | None:
        return self.before.difficulty


def difficulty_of(target: int | Fraction) -> Fraction:
    """D = DIFF1_TARGET / target, exactly."""
    return Fraction(DIFF1_TARGET) / Fraction(target)


def token_window(
    n_days: int,
    expiry_ts: int,
    history: Sequence[EpochTarget],
    *,
    last_epoch: int | None = None,
) -> TokenWindow:
    """The window of a token expiring at ``expiry_ts`` (``history`` sorted by epoch).

    ``last_epoch`` names the epoch in force at the expiry when the caller knows
    better than the times (a token priced against a hypothetical schedule);
    otherwise it is found from the history's retarget times as the module says.
    """
    epochs = epochs_for_days(n_days)
    timed = [(item.epoch, item.time) for item in history if item.time is not None]
    if not timed:
        raise InputError(
            "the history holds no retarget times, so the epoch in force at the expiry is "
            "unknown; give it with --height"
        )
    anchor_epoch, anchor_time = timed[-1]
    given = last_epoch is not None
    if last_epoch is None:
        last_epoch = _epoch_in_force(timed, expiry_ts)
    first_epoch = last_epoch - epochs + 1
    if first_epoch < 1:
        raise InputError(
            f"a BME{n_days} window ending at epoch {last_epoch} would start at epoch "
            f"{first_epoch}; it needs an epoch before it (D0), so it must end at epoch "
            f"{epochs} or later"
        )
    times = dict(timed)
    targets = {item.epoch: item.target for item in history}

    def describe(epoch: int) -> WindowEpoch:
        time: int | None = times.get(epoch)
        estimated = False
        if time is None and epoch > anchor_epoch:
            time, estimated = anchor_time + (epoch - anchor_epoch) * TARGET_EPOCH_S, True
        target = targets.get(epoch)
        return WindowEpoch(
            epoch=epoch,
            time=time,
            time_estimated=estimated,
            k=k_factor(epoch),
            difficulty=None if target is None else difficulty_of(target),
        )

    return TokenWindow(
        n_days=n_days,
        expiry_ts=expiry_ts,
        epochs=tuple(describe(e) for e in range(first_epoch, last_epoch + 1)),
        before=describe(first_epoch - 1),
        anchor_epoch=anchor_epoch,
        last_epoch_given=given,
    )


def _epoch_in_force(timed: Sequence[tuple[int, int]], at: int) -> int:
    """The latest epoch whose (known or estimated) retarget time is <= ``at``."""
    anchor_epoch, anchor_time = timed[-1]
    if at >= anchor_time:
        return anchor_epoch + (at - anchor_time) // TARGET_EPOCH_S
    # Retarget times two weeks apart are increasing on mainnet; keep the latest epoch among
    # those at or before ``at`` even if a history were not.
    by_time = sorted((time, epoch) for epoch, time in timed)
    position = bisect.bisect_right([time for time, _ in by_time], at)
    if position == 0:
        raise InputError(
            f"the expiry ({at}) is before the first retarget time in the history "
            f"({by_time[0][0]}, epoch {by_time[0][1]})"
        )
    return max(epoch for _, epoch in by_time[:position])
