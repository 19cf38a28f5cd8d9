"""Position tokens of the hashrate-yield contracts: ``<L|S>BME<N>-<Floor>-<Cap>-<YYMMDD>``.

Pure. Floor and Cap are written in units of 1E-7 BTC per TH/s per day, as
integers (the seed's ``SBME84-250-300-190718``) or with at most 7 decimals
(``LBME84-4.85-5.4-261215`` for today's index levels), parsed exactly, never
through a float. The canonical name writes strikes without trailing zeros;
``5.40`` is accepted and echoed as ``5.4``. Everywhere else (CLI, API, chain)
the index and the strikes are BTC per TH/s per day; on chain they are 10^18
fixed point, so a strike of at most 7 decimals in 1E-7 units is an integer
multiple of 10^4 there.

The Multiplier is 10^6 and a token expires at 02:00 UTC on its date. A long
pays ``(BME - Floor) x Multiplier``, a short ``(Cap - BME) x Multiplier``, the
index clamped to [Floor, Cap], so a long/short pair is always worth exactly the
collateral ``(Cap - Floor) x Multiplier``; in satoshis that is
``(Cap - Floor) x 10^7`` for Floor and Cap in 1E-7 units, an integer because of
the 7-decimal limit. All amounts here are exact Fractions.

A *series* (``BME84-4.85-5.4-261215``) is the pair: the same N, strikes and
expiry without a side. ``parse_series`` reads a series name or either token's
name; ``Series`` and ``Token`` share the strike and expiry properties the
market (``oracle.market``) needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from fractions import Fraction

from oracle.errors import InputError
from oracle.index.bme import FIXED_POINT, SAT_PER_BTC, epochs_for_days

MULTIPLIER = 10**6
#: One strike unit (of the token names) in BTC per TH/s per day.
UNIT_BTC = Fraction(1, 10**7)
#: Strikes carry at most this many decimals in 1E-7 units (1E-14 BTC: 10^4 on chain).
MAX_STRIKE_DECIMALS = 7
#: Digits allowed before the decimal point of a strike (far beyond any index level; keeps
#: the 10^18 fixed point and the collateral inside uint256).
MAX_STRIKE_INTEGER_DIGITS = 30
#: 10^18 fixed point per strike unit: 10^18 x 1E-7.
FIXED_PER_UNIT = FIXED_POINT // 10**7
#: Satoshis of collateral per strike unit of (Cap - Floor), per whole pair: 10^6 x 1E-7 x 10^8.
SAT_PER_UNIT_OF_WIDTH = MULTIPLIER * SAT_PER_BTC // 10**7
#: Digits of N in a name: 9 allow windows far longer than the chain (and keep int() cheap).
MAX_DAYS_DIGITS = 9
EXPIRY_TIME_UTC = time(2, 0, tzinfo=UTC)
_STRIKE = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")
_DIGITS = re.compile(r"^[0-9]+$")


class _SeriesTerms:
    """What a token and its series share: N, strikes (1E-7 units) and expiry, and what
    follows from them. Subclasses are frozen dataclasses holding these four fields."""

    __slots__ = ()
    n_days: int
    floor: Fraction
    cap: Fraction
    expiry_date: date

    @property
    def series_name(self) -> str:
        """``BME<N>-<Floor>-<Cap>-<YYMMDD>``, strikes canonical (no trailing zeros)."""
        return (
            f"BME{self.n_days}-{format_strike(self.floor)}-{format_strike(self.cap)}-"
            f"{self.expiry_date:%y%m%d}"
        )

    @property
    def long_name(self) -> str:
        return "L" + self.series_name

    @property
    def short_name(self) -> str:
        return "S" + self.series_name

    @property
    def epochs(self) -> int:
        """T = N / 14: the epochs the settlement index averages."""
        return epochs_for_days(self.n_days)

    @property
    def expiry(self) -> datetime:
        """Expiry instant: 02:00 UTC on the token's date."""
        return datetime.combine(self.expiry_date, EXPIRY_TIME_UTC)

    @property
    def expiry_ts(self) -> int:
        """Expiry as unix seconds (what the market contract stores)."""
        return int(self.expiry.timestamp())

    @property
    def floor_btc(self) -> Fraction:
        """Floor in BTC per TH/s per day."""
        return self.floor * UNIT_BTC

    @property
    def cap_btc(self) -> Fraction:
        return self.cap * UNIT_BTC

    @property
    def floor_fixed(self) -> int:
        """Floor as the contract holds it: 10^18 fixed point of BTC per TH/s per day."""
        return _exact_int(self.floor * FIXED_PER_UNIT)

    @property
    def cap_fixed(self) -> int:
        return _exact_int(self.cap * FIXED_PER_UNIT)

    @property
    def collateral_units(self) -> Fraction:
        """Collateral locked per long/short pair, in 1E-7 BTC units: (Cap - Floor) x 10^6."""
        return (self.cap - self.floor) * MULTIPLIER

    @property
    def collateral_btc(self) -> Fraction:
        return self.collateral_units * UNIT_BTC

    @property
    def pair_collateral_sat(self) -> int:
        """Collateral of one whole pair in satoshis: (Cap - Floor) x 10^7 (Cap, Floor in
        1E-7 units); an integer because strikes have at most 7 decimals."""
        return _exact_int((self.cap - self.floor) * SAT_PER_UNIT_OF_WIDTH)


@dataclass(frozen=True, slots=True)
class Series(_SeriesTerms):
    """A long/short pair: ``BME<N>-<Floor>-<Cap>-<YYMMDD>`` (strikes in 1E-7 units)."""

    n_days: int
    floor: Fraction
    cap: Fraction
    expiry_date: date

    def __post_init__(self) -> None:
        _normalise_strikes(self)

    @property
    def name(self) -> str:
        return self.series_name

    def token(self, side: str) -> Token:
        """The long (``"L"``) or short (``"S"``) token of this series."""
        if side not in ("L", "S"):
            raise InputError(f"side must be L (long) or S (short), got {side!r}")
        return Token(
            side=side,
            n_days=self.n_days,
            floor=self.floor,
            cap=self.cap,
            expiry_date=self.expiry_date,
        )


@dataclass(frozen=True, slots=True)
class Token(_SeriesTerms):
    """A parsed position token (strikes in 1E-7 units, as in the name)."""

    side: str  # "L" (long) or "S" (short)
    n_days: int
    floor: Fraction
    cap: Fraction
    expiry_date: date

    def __post_init__(self) -> None:
        _normalise_strikes(self)

    @property
    def name(self) -> str:
        return format_token(self)

    @property
    def is_long(self) -> bool:
        return self.side == "L"

    @property
    def series(self) -> Series:
        return Series(
            n_days=self.n_days, floor=self.floor, cap=self.cap, expiry_date=self.expiry_date
        )


def _normalise_strikes(terms: Series | Token) -> None:
    """Strikes are Fractions whatever the caller passed (``Token(floor=250, ...)`` works)."""
    object.__setattr__(terms, "floor", Fraction(terms.floor))
    object.__setattr__(terms, "cap", Fraction(terms.cap))


def _exact_int(value: Fraction) -> int:
    if value.denominator != 1:
        raise InputError(f"{value} is not a whole number (a strike with more than 7 decimals?)")
    return value.numerator


def parse_token(name: str) -> Token:
    """Parse a token name; a malformed one gets an error naming the part that is wrong.

    Strikes with trailing zeros (``5.40``) are accepted; ``Token.name`` is canonical.
    """
    side, series = _parse(name, sided=True)
    return series.token(side)


def parse_series(name: str) -> Series:
    """Parse a series name (``BME84-4.85-5.4-261215``) or either of its tokens' names.

    Returns the ``Series`` (no side): ``n_days``, ``floor``/``cap`` (Fractions in
    1E-7 units), ``expiry_date``, and the derived ``series_name``, ``long_name``,
    ``short_name``, ``expiry_ts``, ``floor_fixed``/``cap_fixed`` (10^18 fixed
    point, as on chain) and ``pair_collateral_sat``.
    """
    _, series = _parse(name, sided=False)
    return series


def _parse(name: str, *, sided: bool) -> tuple[str, Series]:
    text = name.strip()
    form = "<L|S>BME<N>-<Floor>-<Cap>-<YYMMDD>" if sided else "[L|S]BME<N>-<Floor>-<Cap>-<YYMMDD>"
    what = "token" if sided else "series"
    parts = text.split("-")
    if len(parts) != 4:
        if len(parts) > 4 and "" in parts[1:3]:
            raise InputError(
                f"{what} {name!r}: Floor and Cap cannot be negative (or empty); expected {form}"
            )
        raise InputError(
            f"{what} {name!r}: expected {form} (4 parts separated by '-'), got {len(parts)} part(s)"
        )
    head, floor_text, cap_text, date_text = parts
    side = ""
    if head[:1] in ("L", "S"):
        side, head = head[0], head[1:]
    elif sided:
        raise InputError(f"{what} {name!r}: side must be L (long) or S (short), got {head[:1]!r}")
    if head[:3] != "BME":
        expected = "'BME' after the side" if sided else "'BME' (after an optional L or S)"
        raise InputError(f"{what} {name!r}: expected {expected}, got {head[:3]!r}")
    n_days = _parse_days(name, what, head[3:])
    floor = parse_strike(floor_text, f"{what} {name!r}: floor")
    cap = parse_strike(cap_text, f"{what} {name!r}: cap")
    if cap <= floor:
        raise InputError(
            f"{what} {name!r}: cap ({cap_text}) must be greater than floor ({floor_text})"
        )
    expiry_date = _parse_date(name, what, date_text)
    return side, Series(n_days=n_days, floor=floor, cap=cap, expiry_date=expiry_date)


def _parse_days(name: str, what: str, text: str) -> int:
    if not _DIGITS.match(text):
        raise InputError(f"{what} {name!r}: N must be a whole number of days, got {text!r}")
    if text.startswith("0"):
        raise InputError(f"{what} {name!r}: N has a leading zero ({text!r})")
    if len(text) > MAX_DAYS_DIGITS:
        raise InputError(f"{what} {name!r}: N is too large ({len(text)} digits)")
    n_days = int(text)
    try:
        epochs_for_days(n_days)
    except InputError:
        raise InputError(
            f"{what} {name!r}: N must be a positive multiple of 14, got {n_days}"
        ) from None
    return n_days


def _parse_date(name: str, what: str, text: str) -> date:
    if len(text) != 6 or not _DIGITS.match(text):
        raise InputError(f"{what} {name!r}: expiry must be YYMMDD, got {text!r}")
    try:
        return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError as exc:
        raise InputError(f"{what} {name!r}: expiry {text!r} is not a date ({exc})") from None


def parse_strike(text: str, part: str = "strike") -> Fraction:
    """A strike in 1E-7 units from its name text, exactly: ``250``, ``4.85``, ``5.40``.

    Refused, with ``part`` and the reason in the message: signs, exponents,
    leading zeros, a bare or trailing decimal point, a comma, more than 7 decimals.
    """
    match = _STRIKE.match(text)
    if match is None:
        raise InputError(f"{part} {text!r}: {_strike_problem(text)}")
    whole, decimals = match.group(1), match.group(2) or ""
    if len(whole) > MAX_STRIKE_INTEGER_DIGITS:
        raise InputError(
            f"{part} {text!r}: too large (more than {MAX_STRIKE_INTEGER_DIGITS} digits)"
        )
    if len(decimals) > MAX_STRIKE_DECIMALS:
        raise InputError(
            f"{part} {text!r}: {len(decimals)} decimals, at most {MAX_STRIKE_DECIMALS} "
            "(the name's unit is 1E-7 BTC per TH/s per day; 7 decimals are 1E-14)"
        )
    return Fraction(int(whole + decimals), 10 ** len(decimals))


def _strike_problem(text: str) -> str:
    if not text:
        return "empty"
    if text[0] in "+-":
        return "a sign is not allowed (strikes are positive numbers of 1E-7 BTC)"
    if "e" in text.lower():
        return "exponent forms are not accepted; write a plain decimal such as 4.85"
    if "," in text:
        return "use '.' as the decimal point"
    if re.match(r"^[0-9]+(\.[0-9]+)?$", text) and text[0] == "0":
        return f"leading zeros are not allowed (write {format_strike(_plain(text))})"
    if text.startswith("."):
        return f"needs a digit before the decimal point (write 0{text})"
    if text.endswith("."):
        return f"needs digits after the decimal point (write {text[:-1]})"
    return "must be a decimal number of 1E-7 BTC per TH/s per day, such as 250 or 4.85"


def _plain(text: str) -> Fraction:
    whole, _, decimals = text.partition(".")
    return Fraction(int(whole + decimals), 10 ** len(decimals))


def format_strike(units: Fraction) -> str:
    """A strike in 1E-7 units as the canonical name writes it: ``250``, ``4.85``, ``0.0000001``.

    No trailing zeros, no exponent; refuses negative values and more than 7 decimals.
    """
    units = Fraction(units)
    if units < 0:
        raise InputError(f"strike {units} is negative")
    scaled = units * 10**MAX_STRIKE_DECIMALS
    if scaled.denominator != 1:
        raise InputError(f"strike {units} has more than {MAX_STRIKE_DECIMALS} decimals")
    whole, decimals = divmod(scaled.numerator, 10**MAX_STRIKE_DECIMALS)
    if not decimals:
        return str(whole)
    return f"{whole}.{decimals:0{MAX_STRIKE_DECIMALS}d}".rstrip("0")


def format_token(token: Token) -> str:
    """The canonical name of a token."""
    return token.side + token.series_name


def clamp_index(token: Token | Series, index_units: Fraction) -> Fraction:
    """The index clamped to [Floor, Cap] (in 1E-7 BTC units)."""
    return min(max(Fraction(index_units), token.floor), token.cap)


def payout_units(token: Token, index_units: Fraction) -> Fraction:
    """What one token pays at settlement, in 1E-7 BTC units (index in 1E-7 units)."""
    settled = clamp_index(token, index_units)
    if token.is_long:
        return (settled - token.floor) * MULTIPLIER
    return (token.cap - settled) * MULTIPLIER


def payout_btc(token: Token, index_units: Fraction) -> Fraction:
    """What one token pays at settlement, in BTC (index in 1E-7 units)."""
    return payout_units(token, index_units) * UNIT_BTC


def payout_at_btc_index(token: Token, index_btc: Fraction) -> Fraction:
    """What one token pays in BTC at an index given in BTC per TH/s per day."""
    return payout_btc(token, btc_to_units(index_btc))


def btc_to_units(value_btc: Fraction) -> Fraction:
    """BTC -> 1E-7 BTC units."""
    return Fraction(value_btc) / UNIT_BTC


def units_to_btc(value_units: Fraction) -> Fraction:
    return Fraction(value_units) * UNIT_BTC


def check_days(n_days: int) -> int:
    """Validate N for callers outside token parsing."""
    epochs_for_days(n_days)
    return n_days
