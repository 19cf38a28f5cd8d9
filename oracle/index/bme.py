"""The BME mining-earnings index: subsidy, K_e and BME_N, exact and in 10^18 fixed point.

Pure. DESIGN.md "Definitions" is normative:

* ``K_e = 86400 x 10^12 / 2^32 x mean subsidy of epoch e (BTC)``: BTC per day
  per TH/s at difficulty 1. The mean is block-weighted: an epoch holding a
  halving (104, 208, 312, 416, ...) counts each of its 2016 blocks at its own
  subsidy. The index authors' published history used the subsidy of each
  epoch's first block instead (``SubsidyRule`` "first-block"); that rule is
  here only to reproduce their figures (``bme-oracle index --subsidy-rule``),
  never to publish.
* ``BME_N(e) = mean over the T = N/14 epochs e-T+1..e of K_i / D_i``.
* Fixed point: ``floor(sum S_i x target_i x 86400 x 10^22 / (T x 2016 x 2^32 x DIFF1_TARGET))``
  with ``S_i`` the total subsidy of epoch i in satoshis. One floor at the end,
  so Python and the contract agree to the last unit.

Because ``K_i / D_i = S_i x target_i x const``, the index is a sum of integer
terms (for bits-derived targets) divided by a constant; prefix sums make a whole
history O(n).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, get_args

from oracle.bitcoin.difficulty import DIFF1_TARGET, EPOCH_BLOCKS, bits_to_target
from oracle.errors import IndexUnavailable, InputError

HALVING_INTERVAL = 210_000
INITIAL_SUBSIDY_SAT = 5_000_000_000
SAT_PER_BTC = 100_000_000
FIXED_POINT = 10**18
SECONDS_PER_DAY = 86_400
DAYS_PER_EPOCH = 14
#: Denominator of K_i/D_i per satoshi-target unit: 2016 x 2^32 x DIFF1_TARGET.
_TERM_DENOMINATOR = EPOCH_BLOCKS * (1 << 32) * DIFF1_TARGET
#: Numerator constant: 86400 x 10^12 (TH) / 10^8 (sat per BTC) = 86400 x 10^4.
_TERM_NUMERATOR = SECONDS_PER_DAY * 10**4
#: The same with 10^18 scaling folded in, as in DESIGN.md: 86400 x 10^22.
_FIXED_NUMERATOR = SECONDS_PER_DAY * 10**22

#: How an epoch's subsidy enters K_e. "block-weighted" (the oracle's, DESIGN.md): the
#: total of its 2016 blocks' subsidies. "first-block": 2016 x the subsidy of block 2016e,
#: the convention of the index authors' published history; the two differ only for
#: epochs that contain a halving, by up to 42% in BME14 (e.g. epoch 104: 336 blocks at
#: 50 BTC and 1,680 at 25 average 29.17 BTC, not 50).
SubsidyRule = Literal["block-weighted", "first-block"]
SUBSIDY_RULES: tuple[str, ...] = get_args(SubsidyRule)
DEFAULT_SUBSIDY_RULE: SubsidyRule = "block-weighted"


def block_subsidy_sat(height: int) -> int:
    """Block subsidy at ``height`` in satoshis (Core ``GetBlockSubsidy``)."""
    if height < 0:
        raise InputError(f"height should be >= 0, got {height}")
    halvings = height // HALVING_INTERVAL
    return 0 if halvings >= 64 else INITIAL_SUBSIDY_SAT >> halvings


def epoch_subsidy_sat(epoch: int, rule: SubsidyRule = DEFAULT_SUBSIDY_RULE) -> int:
    """Total subsidy S_e of the 2016 blocks of epoch ``e``, in satoshis.

    Summed per halving segment, so an epoch containing a halving (e.g. 312,
    holding 630,000) gets the block-weighted total, known in advance. With
    ``rule="first-block"``: 2016 x the subsidy of the epoch's first block.
    """
    if epoch < 0:
        raise InputError(f"epoch should be >= 0, got {epoch}")
    start = epoch * EPOCH_BLOCKS
    if rule == "first-block":
        return EPOCH_BLOCKS * block_subsidy_sat(start)
    if rule != "block-weighted":
        raise InputError(f"subsidy rule must be one of {', '.join(SUBSIDY_RULES)}, got {rule!r}")
    end = start + EPOCH_BLOCKS  # exclusive
    total = 0
    height = start
    while height < end:
        segment_end = min(end, (height // HALVING_INTERVAL + 1) * HALVING_INTERVAL)
        total += (segment_end - height) * block_subsidy_sat(height)
        height = segment_end
    return total


def k_factor(epoch: int, rule: SubsidyRule = DEFAULT_SUBSIDY_RULE) -> Fraction:
    """K_e in BTC per TH/s per day at difficulty 1: 86400 x 10^12 / 2^32 x mean subsidy."""
    mean_subsidy_btc = Fraction(epoch_subsidy_sat(epoch, rule), EPOCH_BLOCKS * SAT_PER_BTC)
    return Fraction(SECONDS_PER_DAY * 10**12, 1 << 32) * mean_subsidy_btc


def epochs_for_days(n_days: int) -> int:
    """T = N / 14, validating that N is a positive multiple of 14."""
    if isinstance(n_days, bool) or not isinstance(n_days, int) or n_days <= 0 or n_days % 14:
        raise InputError(f"N should be a positive multiple of 14, got {n_days!r}")
    return n_days // DAYS_PER_EPOCH


def earnings_term(
    epoch: int, target: int | Fraction, rule: SubsidyRule = DEFAULT_SUBSIDY_RULE
) -> Fraction | int:
    """S_e x target_e: the numerator K_e / D_e is proportional to (integer for bits)."""
    return epoch_subsidy_sat(epoch, rule) * target


def earnings_per_th_day(epoch: int, target: int | Fraction) -> Fraction:
    """K_e / D_e exactly: BTC one TH/s earned per day in epoch e (subsidy only)."""
    return Fraction(earnings_term(epoch, target) * _TERM_NUMERATOR) / _TERM_DENOMINATOR


@dataclass(frozen=True, slots=True)
class EpochTarget:
    """One epoch's retarget: its number, target and (optionally) header time."""

    epoch: int
    target: int | Fraction
    time: int | None = None

    @classmethod
    def from_bits(cls, epoch: int, bits: int, time: int | None = None) -> EpochTarget:
        return cls(epoch=epoch, target=bits_to_target(bits), time=time)


@dataclass(frozen=True, slots=True)
class BmeValue:
    """BME_N at one epoch, exact and as the on-chain 10^18 integer."""

    n_days: int
    epoch: int
    value: Fraction
    fixed: int


def _value_from_sum(term_sum: Fraction | int, epochs: int) -> tuple[Fraction, int]:
    exact = Fraction(term_sum * _TERM_NUMERATOR) / (epochs * _TERM_DENOMINATOR)
    fixed_fraction = Fraction(term_sum * _FIXED_NUMERATOR) / (epochs * _TERM_DENOMINATOR)
    return exact, fixed_fraction.numerator // fixed_fraction.denominator


def bme_from_sum(n_days: int, epoch: int, term_sum: Fraction | int) -> BmeValue:
    """BME_N at ``epoch`` from the sum of ``earnings_term`` over its T-epoch window.

    For callers that keep prefix sums of the terms (``oracle.index.history``): the
    same single floor at the end as ``bme``, so the values are identical.
    """
    exact, fixed = _value_from_sum(term_sum, epochs_for_days(n_days))
    return BmeValue(n_days=n_days, epoch=epoch, value=exact, fixed=fixed)


def bme(n_days: int, window: Sequence[EpochTarget]) -> BmeValue:
    """BME_N at the last epoch of ``window``: the T consecutive epochs ending there."""
    epochs = epochs_for_days(n_days)
    if len(window) != epochs:
        raise IndexUnavailable(f"BME{n_days} needs {epochs} epochs, got {len(window)}")
    _require_consecutive(window)
    term_sum = sum(earnings_term(item.epoch, item.target) for item in window)
    exact, fixed = _value_from_sum(term_sum, epochs)
    return BmeValue(n_days=n_days, epoch=window[-1].epoch, value=exact, fixed=fixed)


def _require_consecutive(window: Sequence[EpochTarget]) -> None:
    for before, after in itertools.pairwise(window):
        if after.epoch != before.epoch + 1:
            raise IndexUnavailable(
                f"epochs {before.epoch} and {after.epoch} are not consecutive; "
                "BME needs every epoch"
            )


def bme_series(
    n_days: int, history: Sequence[EpochTarget], rule: SubsidyRule = DEFAULT_SUBSIDY_RULE
) -> dict[int, BmeValue]:
    """BME_N for every epoch of ``history`` (sorted) with T consecutive epochs behind it.

    O(n) with prefix sums; epochs whose window has a gap are left out. ``rule`` is
    the oracle's block-weighted subsidy unless reproducing the first-block convention.
    """
    epochs = epochs_for_days(n_days)
    prefix: list[Fraction | int] = [0]
    run_start = 0  # index where the current run of consecutive epochs began
    result: dict[int, BmeValue] = {}
    for i, item in enumerate(history):
        if i and item.epoch != history[i - 1].epoch + 1:
            if item.epoch <= history[i - 1].epoch:
                raise InputError(f"history not sorted by epoch at epoch {item.epoch}")
            run_start = i
        prefix.append(prefix[-1] + earnings_term(item.epoch, item.target, rule))
        if i - run_start + 1 >= epochs:
            exact, fixed = _value_from_sum(prefix[i + 1] - prefix[i + 1 - epochs], epochs)
            result[item.epoch] = BmeValue(n_days=n_days, epoch=item.epoch, value=exact, fixed=fixed)
    return result


def epoch_at_time(history: Sequence[EpochTarget], at_time: int) -> int:
    """The latest epoch whose retarget header time is <= ``at_time`` (history sorted by epoch).

    Header times are not monotonic block to block, but retarget blocks two weeks
    apart are; we still search by scanning times defensively when they are not.
    """
    times = [item.time for item in history]
    if any(t is None for t in times):
        raise IndexUnavailable("BME at a time needs the header time of every epoch")
    sorted_times: list[int] = times  # type: ignore[assignment]
    if all(a <= b for a, b in itertools.pairwise(sorted_times)):
        position = bisect.bisect_right(sorted_times, at_time)
        if position == 0:
            raise IndexUnavailable(f"no epoch has a retarget at or before time {at_time}")
        return history[position - 1].epoch
    candidates = [item.epoch for item in history if item.time is not None and item.time <= at_time]
    if not candidates:
        raise IndexUnavailable(f"no epoch has a retarget at or before time {at_time}")
    return max(candidates)


def bme_at(n_days: int, history: Sequence[EpochTarget], at_time: int) -> BmeValue:
    """BME_N at time t: the value for the latest epoch whose retarget header time is <= t."""
    epoch = epoch_at_time(history, at_time)
    epochs = epochs_for_days(n_days)
    by_epoch = {item.epoch: item for item in history}
    window = [by_epoch.get(e) for e in range(epoch - epochs + 1, epoch + 1)]
    if any(item is None for item in window):
        raise IndexUnavailable(
            f"BME{n_days} at epoch {epoch} needs epochs {epoch - epochs + 1}..{epoch}"
        )
    return bme(n_days, window)  # type: ignore[arg-type]


def format_decimal(value: Fraction, digits: int = 18) -> str:
    """An exact fraction as a decimal string, truncated (not rounded) to ``digits`` places."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    scaled = value.numerator * 10**digits // value.denominator
    whole, frac = divmod(scaled, 10**digits)
    return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"


def format_scientific(value: Fraction, significant: int = 4) -> str:
    """Scientific notation like DESIGN.md's ``3.958E-05``, rounded half-up, exact."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    exponent = len(str(value.numerator // value.denominator)) - 1 if value >= 1 else 0
    if value < 1:
        exponent = -1
        while value * Fraction(10) ** (-exponent) < 1:
            exponent -= 1
    mantissa = value / Fraction(10) ** exponent
    scaled = mantissa * 10 ** (significant - 1)
    rounded = (scaled.numerator * 2 + scaled.denominator) // (2 * scaled.denominator)
    if rounded >= 10**significant:
        rounded //= 10
        exponent += 1
    digits = str(rounded)
    point = "." if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{point}{digits[1:]}E{exponent:+03d}"


def format_exact(value: Fraction) -> str:
    """A fraction with a finite decimal expansion written exactly, without trailing zeros.

    For values that are decimal by construction (strikes, an index typed as a
    decimal): ``Fraction(1, 40000)`` -> ``0.000025``. Raises ``ValueError`` for a
    fraction whose expansion does not terminate (callers use ``format_decimal``).
    """
    value = Fraction(value)
    denominator = value.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator //= 2
        twos += 1
    while denominator % 5 == 0:
        denominator //= 5
        fives += 1
    if denominator != 1:
        raise ValueError(f"{value} has no finite decimal expansion")
    digits = max(twos, fives)
    text = format_decimal(value, digits)
    return text.rstrip("0").rstrip(".") if digits else text


_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
#: Bounds on typed numbers: far beyond any real value, small enough that 10^exponent and
#: the digits stay cheap (a 10^(10^9) from "1e1000000000" would stall the command).
MAX_EXPONENT = 100
MAX_NUMBER_CHARS = 200


def parse_decimal(text: str, what: str, *, allow_negative: bool = False) -> Fraction:
    """``text`` (``0.000028``, ``2.8e-5``, ``6353030562983``) as an exact Fraction.

    ``what`` names the input in the error (``--index``, ``--path difficulty #2``).
    """
    stripped = text.strip()
    if len(stripped) > MAX_NUMBER_CHARS or not _DECIMAL.match(stripped):
        raise InputError(
            f"{what} must be a decimal number such as 0.000028 or 2.8e-5, got {text!r}"
        )
    mantissa, _, exponent = stripped.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        raise InputError(f"{what}: exponent {exponent} is out of range (at most ±{MAX_EXPONENT})")
    value = Fraction(mantissa) * Fraction(10) ** int(exponent or 0)
    if value < 0 and not allow_negative:
        raise InputError(f"{what} must not be negative, got {text!r}")
    return value
