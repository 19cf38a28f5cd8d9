"""Position tokens of the hashrate-yield contracts: ``<L|S>BME<N>-<Floor>-<Cap>-<YYMMDD>``.

Pure. Floor and Cap are in units of 1E-7 BTC (per TH/s per day), the
Multiplier is 10^6, and a token expires at 02:00 UTC on its date. A long pays
``(BME - Floor) x Multiplier`` units, a short ``(Cap - BME) x Multiplier``, the
index clamped to [Floor, Cap], so a long/short pair is always worth exactly the
collateral ``(Cap - Floor) x Multiplier``. All amounts are exact Fractions; one
unit is 1E-7 BTC = 10 satoshis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from fractions import Fraction

from oracle.errors import InputError
from oracle.index.bme import epochs_for_days

MULTIPLIER = 10**6
#: One index unit in BTC (Floor, Cap and the index are quoted in 1E-7 BTC).
UNIT_BTC = Fraction(1, 10**7)
EXPIRY_TIME_UTC = time(2, 0, tzinfo=UTC)
_NAME = re.compile(r"^(?P<side>[LS])BME(?P<n>\d+)-(?P<floor>\d+)-(?P<cap>\d+)-(?P<date>\d{6})$")


@dataclass(frozen=True, slots=True)
class Token:
    """A parsed position token."""

    side: str  # "L" (long) or "S" (short)
    n_days: int
    floor: int  # 1E-7 BTC units
    cap: int
    expiry_date: date

    @property
    def name(self) -> str:
        return format_token(self)

    @property
    def is_long(self) -> bool:
        return self.side == "L"

    @property
    def expiry(self) -> datetime:
        """Expiry instant: 02:00 UTC on the token's date."""
        return datetime.combine(self.expiry_date, EXPIRY_TIME_UTC)

    @property
    def collateral_units(self) -> int:
        """Collateral locked per long/short pair, in 1E-7 BTC units."""
        return (self.cap - self.floor) * MULTIPLIER

    @property
    def collateral_btc(self) -> Fraction:
        return self.collateral_units * UNIT_BTC


def parse_token(name: str) -> Token:
    """Parse a token name; a malformed one gets an error naming the part that is wrong."""
    text = name.strip()
    parts = text.split("-")
    if len(parts) != 4:
        raise InputError(
            f"token {name!r}: expected <L|S>BME<N>-<Floor>-<Cap>-<YYMMDD> (4 parts separated "
            f"by '-'), got {len(parts)} part(s)"
        )
    head, floor_text, cap_text, date_text = parts
    if not head or head[0] not in "LS":
        raise InputError(f"token {name!r}: side must be L (long) or S (short), got {head[:1]!r}")
    if head[1:4] != "BME":
        raise InputError(f"token {name!r}: expected 'BME' after the side, got {head[1:4]!r}")
    n_text = head[4:]
    if not n_text.isdigit():
        raise InputError(f"token {name!r}: N must be a whole number of days, got {n_text!r}")
    n_days = int(n_text)
    try:
        epochs_for_days(n_days)
    except InputError:
        raise InputError(
            f"token {name!r}: N must be a positive multiple of 14, got {n_days}"
        ) from None
    floor = _parse_units(name, "floor", floor_text)
    cap = _parse_units(name, "cap", cap_text)
    if cap <= floor:
        raise InputError(f"token {name!r}: cap ({cap}) must be greater than floor ({floor})")
    if len(date_text) != 6 or not date_text.isdigit():
        raise InputError(f"token {name!r}: expiry must be YYMMDD, got {date_text!r}")
    try:
        expiry_date = date(2000 + int(date_text[:2]), int(date_text[2:4]), int(date_text[4:]))
    except ValueError as exc:
        raise InputError(f"token {name!r}: expiry {date_text!r} is not a date ({exc})") from None
    token = Token(side=head[0], n_days=n_days, floor=floor, cap=cap, expiry_date=expiry_date)
    if format_token(token) != text:
        raise InputError(
            f"token {name!r}: not in canonical form (expected {format_token(token)!r})"
        )
    assert _NAME.match(text)
    return token


def _parse_units(name: str, part: str, text: str) -> int:
    if not text.isdigit():
        raise InputError(f"token {name!r}: {part} must be a whole number of 1E-7 BTC, got {text!r}")
    return int(text)


def format_token(token: Token) -> str:
    """The canonical name of a token."""
    return f"{token.side}BME{token.n_days}-{token.floor}-{token.cap}-{token.expiry_date:%y%m%d}"


def clamp_index(token: Token, index_units: Fraction) -> Fraction:
    """The index clamped to [Floor, Cap] (in 1E-7 BTC units)."""
    return min(max(Fraction(index_units), Fraction(token.floor)), Fraction(token.cap))


def payout_units(token: Token, index_units: Fraction) -> Fraction:
    """What one token pays at settlement, in 1E-7 BTC units."""
    settled = clamp_index(token, index_units)
    if token.is_long:
        return (settled - token.floor) * MULTIPLIER
    return (token.cap - settled) * MULTIPLIER


def payout_btc(token: Token, index_units: Fraction) -> Fraction:
    return payout_units(token, index_units) * UNIT_BTC


def btc_to_units(value_btc: Fraction) -> Fraction:
    """BTC -> 1E-7 BTC units."""
    return Fraction(value_btc) / UNIT_BTC


def units_to_btc(value_units: Fraction) -> Fraction:
    return Fraction(value_units) * UNIT_BTC


def check_days(n_days: int) -> int:
    """Validate N for callers outside token parsing."""
    epochs_for_days(n_days)
    return n_days
