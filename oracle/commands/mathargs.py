"""Arguments and number formats of the math commands (``index``, ``token``, ``price``, ``hedge``).

Numbers come in as text and become exact Fractions from the decimal digits,
never through a float: ``2.8e-5`` is exactly 28/10^6. Index values are BTC per
TH/s per day in and out, as ``index`` prints them (DESIGN.md "Units"); only
token names carry strikes in 1E-7 BTC.
"""

from __future__ import annotations

import argparse
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from typing import Any

from oracle.errors import InputError
from oracle.index.bme import epochs_for_days, format_exact, format_scientific, parse_decimal

#: What every index value is measured in, echoed by the commands.
INDEX_UNIT = "BTC per TH/s per day"


def decimal_arg(flag: str) -> Any:
    """An argparse ``type`` for an exact decimal (argparse reports the error, exit 2)."""

    def parse(text: str) -> Fraction:
        try:
            return parse_decimal(text, flag)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def int_arg(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a whole number, got {text!r}"
            ) from None

    return parse


def difficulties(text: str) -> list[Fraction]:
    """``--path D1,D2,...``: decimal numbers; an empty item (``1,2,``) is named, not guessed."""
    if not text.strip():
        raise InputError("--path: no difficulties given (comma-separated, e.g. 1.1e14,1.2e14)")
    values = []
    for i, part in enumerate(text.split(","), 1):
        if not part.strip():
            raise InputError(f"--path: difficulty #{i} is empty in {text!r}")
        try:
            value = parse_decimal(part, f"--path: difficulty #{i}")
        except InputError:
            raise InputError(
                f"--path: difficulty #{i} is not a decimal number: {part.strip()!r}"
            ) from None
        if value <= 0:
            raise InputError(f"--path: difficulty #{i} must be positive, got {part.strip()!r}")
        values.append(value)
    return values


def days(text: str) -> list[int]:
    """``--days 14,28,84``: positive multiples of 14."""
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise InputError(f"--days: {part!r} is not a whole number")
        epochs_for_days(int(part))
        values.append(int(part))
    if not values:
        raise InputError("--days: give at least one N")
    return values


def index_text(value_btc: Fraction, significant: int = 4) -> str:
    """An index value for people: ``5.032E-07`` (significant digits, rounded)."""
    return format_scientific(value_btc, significant)


def strike_text(value_btc: Fraction) -> str:
    """A strike (or any value with a short exact decimal form) in scientific notation,
    exactly: ``4.85E-07``, ``2.5E-05``; strikes are never rounded for display."""
    if value_btc == 0:
        return "0"
    digits = format_exact(abs(value_btc)).replace(".", "").lstrip("0").rstrip("0")
    return format_scientific(value_btc, max(len(digits), 1))


def exact_text(value: Fraction) -> str:
    """The exact decimal string (``0.000028``) of a value typed or derived as a decimal."""
    return format_exact(value)


def units_text(value_units: Fraction, significant: int = 4) -> str:
    """A value in the names' 1E-7 unit, rounded half-up to ``significant`` digits, plain:
    ``10.73``, ``385.5``."""
    if value_units == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = significant
        ctx.rounding = ROUND_HALF_UP
        rounded = +(Decimal(value_units.numerator) / Decimal(value_units.denominator))
    return format(rounded, "f")
