"""Pricing of position tokens from market prices or predicted difficulty paths.

Pure. Implied earnings and implied difficulty are exact Fractions. The implied
difficulty growth rate solves ``mean_{i=1..T} K / (D0 (1+g)^i) = E`` for g with
Newton's method in 60-digit ``Decimal`` arithmetic (deterministic, no floats):
the left side is convex and strictly decreasing in g > -1 and runs from
+infinity to 0, so a root exists exactly when E > 0, and Newton, kept inside
g > -1, converges to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from oracle.errors import InputError, NoSolution
from oracle.index.bme import epochs_for_days
from oracle.index.tokens import MULTIPLIER, Token, btc_to_units, payout_btc, units_to_btc

_PRECISION = 60
_TOLERANCE = Decimal(10) ** -40
_MAX_ITERATIONS = 200


def implied_earnings_units(token: Token, price_btc: Fraction) -> Fraction:
    """Earnings per TH/s per day (1E-7 BTC units) a token price implies.

    Long: ``price/Multiplier + Floor``; short: ``Cap - price/Multiplier``, with
    the price converted to 1E-7 BTC units. The price must lie in
    [0, collateral], the only range a fully collateralised token can trade in.
    """
    price_btc = Fraction(price_btc)
    if price_btc < 0 or price_btc > token.collateral_btc:
        raise InputError(
            f"price {float(price_btc):.8f} BTC of {token.name} is outside "
            f"[0, {float(token.collateral_btc):.8f}] BTC (the collateral)"
        )
    per_unit = btc_to_units(price_btc) / MULTIPLIER
    return per_unit + token.floor if token.is_long else token.cap - per_unit


def implied_difficulty(k: Fraction, earnings_btc: Fraction) -> Fraction:
    """Difficulty at which one TH/s earns ``earnings_btc`` a day: K / E."""
    if earnings_btc <= 0:
        raise NoSolution(
            f"no implied difficulty: implied earnings {earnings_btc} BTC are not positive"
        )
    return Fraction(k) / Fraction(earnings_btc)


def implied_growth_rate(
    *, k: Fraction, d0: Fraction, earnings_btc: Fraction, epochs: int
) -> Decimal:
    """Per-epoch difficulty growth g with ``mean_{i=1..T} K/(D0 (1+g)^i) = E`` (Newton)."""
    if epochs <= 0:
        raise InputError(f"epochs must be positive, got {epochs}")
    if d0 <= 0:
        raise InputError(f"current difficulty must be positive, got {d0}")
    if earnings_btc <= 0:
        raise NoSolution(
            f"no growth rate: implied earnings {earnings_btc} BTC are not positive, and "
            "mean K/D over the path is positive for every g > -1"
        )
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        scale = (
            Decimal(k.numerator)
            / Decimal(k.denominator)
            / (Decimal(d0.numerator) / Decimal(d0.denominator))
        )
        target = Decimal(earnings_btc.numerator) / Decimal(earnings_btc.denominator)
        g = Decimal(0)
        for _ in range(_MAX_ITERATIONS):
            x = 1 / (1 + g)
            value = Decimal(0)
            slope = Decimal(0)
            power = Decimal(1)
            for i in range(1, epochs + 1):
                power *= x
                value += power
                slope -= i * power * x
            value = scale * value / epochs - target
            slope = scale * slope / epochs
            if slope == 0:
                break
            step = value / slope
            next_g = g - step
            if next_g <= -1:  # stay in the domain; halve the distance to the pole
                next_g = (g - 1) / 2
            if abs(next_g - g) <= _TOLERANCE * (1 + abs(g)):
                return +next_g
            g = next_g
    raise NoSolution(f"Newton's method did not converge for E={float(earnings_btc):.3e} BTC")


@dataclass(frozen=True, slots=True)
class MarketImplied:
    earnings_units: Fraction
    earnings_btc: Fraction
    difficulty: Fraction
    growth_rate: Decimal


def price_from_market(
    token: Token, *, price_btc: Fraction, d0: Fraction, k: Fraction
) -> MarketImplied:
    """Everything a market price implies: earnings, difficulty and growth rate."""
    earnings_units = implied_earnings_units(token, price_btc)
    earnings_btc = units_to_btc(earnings_units)
    return MarketImplied(
        earnings_units=earnings_units,
        earnings_btc=earnings_btc,
        difficulty=implied_difficulty(k, earnings_btc),
        growth_rate=implied_growth_rate(
            k=k, d0=d0, earnings_btc=earnings_btc, epochs=epochs_for_days(token.n_days)
        ),
    )


@dataclass(frozen=True, slots=True)
class PathValue:
    index_btc: Fraction
    index_units: Fraction
    value_btc: Fraction


def value_from_path(token: Token, *, path: Sequence[Fraction], k: Fraction) -> PathValue:
    """Index and token value if difficulty follows ``path`` over the token's T epochs."""
    epochs = epochs_for_days(token.n_days)
    if len(path) != epochs:
        raise InputError(
            f"{token.name} averages {epochs} epoch(s); the path has {len(path)} difficulties"
        )
    for position, difficulty in enumerate(path, start=1):
        if difficulty <= 0:
            raise InputError(f"path difficulty #{position} must be positive, got {difficulty}")
    index_btc = sum((Fraction(k) / d for d in path), Fraction(0)) / epochs
    index_units = btc_to_units(index_btc)
    return PathValue(
        index_btc=index_btc, index_units=index_units, value_btc=payout_btc(token, index_units)
    )


@dataclass(frozen=True, slots=True)
class Hedge:
    """A hedge of ``hashrate_th`` TH/s over the token's N days."""

    tokens: Fraction
    earnings_units: Fraction  # locked-in earnings per TH/s per day, 1E-7 BTC units
    total_btc: Fraction  # locked-in total over N days for the whole hashrate


def hedge(token: Token, *, hashrate_th: Fraction, price_btc: Fraction) -> Hedge:
    """Tokens to hold (TH/s x N days / Multiplier) and the earnings the hedge locks in.

    A miner holding shorts earns ``H x N x BME`` from mining plus ``Cap - BME``
    per unit from the shorts, minus their price: ``Cap - price/Multiplier`` per
    TH/s-day whatever the index does. A long holder locks in ``Floor +
    price/Multiplier`` as a cost instead (e.g. someone who sold hashrate).
    """
    if hashrate_th <= 0:
        raise InputError(f"hashrate must be positive, got {hashrate_th} TH/s")
    tokens = Fraction(hashrate_th) * token.n_days / MULTIPLIER
    earnings = implied_earnings_units(token, price_btc)
    total = units_to_btc(earnings) * Fraction(hashrate_th) * token.n_days
    return Hedge(tokens=tokens, earnings_units=earnings, total_btc=total)
