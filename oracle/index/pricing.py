"""Pricing of position tokens from market prices or predicted difficulty paths.

Pure. Every index value here is BTC per TH/s per day; token prices are BTC.
Each epoch i of a token's window (``oracle.index.window``) has its own K_i,
the index's block-weighted subsidy rule, so a window that spans a halving is
priced as the index will settle it:

* value from a path: ``index = mean_i K_i / D_i``, then the token's payout;
* implied earnings: long ``price/Multiplier + Floor``, short ``Cap - price/Multiplier``;
* implied difficulty: the one constant difficulty D over the window with
  ``mean_i K_i / D = E``, i.e. ``mean(K_i) / E``;
* implied difficulty growth rate: g with ``mean_{i=1..T} K_i / (D0 (1+g)^i) = E``,
  D0 the difficulty of the epoch before the window. Solved by Newton's method
  in 60-digit ``Decimal`` arithmetic (deterministic, no floats): the left side
  is convex and strictly decreasing in g > -1 (every K_i > 0) and runs from
  +infinity to 0, so a root exists exactly when E > 0, and Newton, kept inside
  g > -1, converges to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from oracle.errors import InputError, NoSolution
from oracle.index.bme import format_decimal, format_scientific
from oracle.index.tokens import (
    MULTIPLIER,
    Token,
    btc_to_units,
    payout_at_btc_index,
    units_to_btc,
)

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
            f"price {format_decimal(price_btc, 8)} BTC of {token.name} is outside "
            f"[0, {format_decimal(token.collateral_btc, 8)}] BTC (the collateral of a pair)"
        )
    per_unit = btc_to_units(price_btc) / MULTIPLIER
    return per_unit + token.floor if token.is_long else token.cap - per_unit


def implied_difficulty(ks: Sequence[Fraction], earnings_btc: Fraction) -> Fraction:
    """The constant difficulty D at which the window earns ``earnings_btc``: mean(K_i) / E."""
    if not ks:
        raise InputError("no epochs to price")
    if earnings_btc <= 0:
        raise NoSolution(
            f"no implied difficulty: implied earnings {earnings_btc} BTC are not positive"
        )
    return sum(ks, Fraction(0)) / len(ks) / Fraction(earnings_btc)


def implied_growth_rate(*, ks: Sequence[Fraction], d0: Fraction, earnings_btc: Fraction) -> Decimal:
    """Per-epoch difficulty growth g with ``mean_{i=1..T} K_i/(D0 (1+g)^i) = E`` (Newton).

    ``ks`` are the window's K_i, oldest first (T = len(ks)); D0 is the difficulty
    of the epoch before the window.
    """
    if not ks:
        raise InputError("no epochs to price")
    if any(k <= 0 for k in ks):
        raise NoSolution("no growth rate: a K_i of the window is 0 (no subsidy left)")
    if d0 <= 0:
        raise InputError(f"D0 (the difficulty before the window) must be positive, got {d0}")
    if earnings_btc <= 0:
        raise NoSolution(
            f"no growth rate: implied earnings {earnings_btc} BTC are not positive, and "
            "mean K/D over the path is positive for every g > -1"
        )
    epochs = len(ks)
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        d0_dec = _decimal(Fraction(d0))
        scaled = [_decimal(Fraction(k)) / d0_dec / epochs for k in ks]
        target = _decimal(Fraction(earnings_btc))
        g = Decimal(0)
        for _ in range(_MAX_ITERATIONS):
            x = 1 / (1 + g)
            value = -target
            slope = Decimal(0)
            power = Decimal(1)
            for i, scale in enumerate(scaled, start=1):
                power *= x
                value += scale * power
                slope -= i * scale * power * x
            if slope == 0:
                break
            next_g = g - value / slope
            if next_g <= -1:  # stay in the domain; halve the distance to the pole
                next_g = (g - 1) / 2
            if abs(next_g - g) <= _TOLERANCE * (1 + abs(g)):
                return +next_g
            g = next_g
    raise NoSolution(
        f"Newton's method did not converge for E={format_scientific(Fraction(earnings_btc))} BTC"
    )


def _decimal(value: Fraction) -> Decimal:
    return Decimal(value.numerator) / Decimal(value.denominator)


@dataclass(frozen=True, slots=True)
class MarketImplied:
    earnings_units: Fraction
    earnings_btc: Fraction
    difficulty: Fraction
    growth_rate: Decimal


def price_from_market(
    token: Token, *, price_btc: Fraction, d0: Fraction, ks: Sequence[Fraction]
) -> MarketImplied:
    """Everything a market price implies: earnings, difficulty and growth rate.

    ``ks`` are the K_i of the token's T window epochs, D0 the difficulty before them.
    """
    if len(ks) != token.epochs:
        raise InputError(f"{token.name} averages {token.epochs} epoch(s); got {len(ks)} K values")
    earnings_units = implied_earnings_units(token, price_btc)
    earnings_btc = units_to_btc(earnings_units)
    return MarketImplied(
        earnings_units=earnings_units,
        earnings_btc=earnings_btc,
        difficulty=implied_difficulty(ks, earnings_btc),
        growth_rate=implied_growth_rate(ks=ks, d0=d0, earnings_btc=earnings_btc),
    )


@dataclass(frozen=True, slots=True)
class PathValue:
    index_btc: Fraction
    index_units: Fraction
    value_btc: Fraction


def value_from_path(token: Token, *, path: Sequence[Fraction], ks: Sequence[Fraction]) -> PathValue:
    """Index and token value if the window's difficulties are ``path`` (oldest first).

    ``path[i]`` is the difficulty of the window's i-th epoch and ``ks[i]`` its K.
    """
    epochs = token.epochs
    if len(path) != epochs:
        raise InputError(
            f"{token.name} averages {epochs} epoch(s); the path has {len(path)} difficulties"
        )
    if len(ks) != epochs:
        raise InputError(f"{token.name} averages {epochs} epoch(s); got {len(ks)} K values")
    for position, difficulty in enumerate(path, start=1):
        if difficulty <= 0:
            raise InputError(f"path difficulty #{position} must be positive, got {difficulty}")
    index_btc = sum((Fraction(k) / d for k, d in zip(ks, path, strict=True)), Fraction(0)) / epochs
    return PathValue(
        index_btc=index_btc,
        index_units=btc_to_units(index_btc),
        value_btc=payout_at_btc_index(token, index_btc),
    )


@dataclass(frozen=True, slots=True)
class Hedge:
    """A hedge of ``hashrate_th`` TH/s over the token's N days with ``tokens`` tokens.

    Inside the protected range [Floor, Cap] (BTC per TH/s per day) the result is
    locked: a short holder's mining income, a long holder's cost of delivering
    the index. Outside it the tokens have paid all they can: see ``hedge_outcome``.
    """

    tokens: Fraction
    earnings_units: Fraction  # locked-in earnings per TH/s per day, 1E-7 BTC units
    earnings_btc: Fraction  # the same in BTC per TH/s per day
    total_btc: Fraction  # locked-in total over N days for the whole hashrate
    th_days: Fraction  # hashrate x N days: what one BTC per TH/s per day is worth in total
    floor_btc: Fraction
    cap_btc: Fraction


def hedge(token: Token, *, hashrate_th: Fraction, price_btc: Fraction) -> Hedge:
    """Tokens to hold (TH/s x N days / Multiplier) and the result the hedge locks in.

    A miner holding shorts earns ``H x N x BME`` from mining plus ``Cap - BME``
    per unit from the shorts, minus their price: ``Cap - price/Multiplier`` per
    TH/s-day while the index settles in [Floor, Cap]. A long holder (one who owes
    ``H x N x BME``, e.g. who sold hashrate) locks in ``Floor + price/Multiplier``
    as a cost instead.
    """
    if hashrate_th <= 0:
        raise InputError(f"hashrate must be positive, got {hashrate_th} TH/s")
    th_days = Fraction(hashrate_th) * token.n_days
    earnings = implied_earnings_units(token, price_btc)
    return Hedge(
        tokens=th_days / MULTIPLIER,
        earnings_units=earnings,
        earnings_btc=units_to_btc(earnings),
        total_btc=units_to_btc(earnings) * th_days,
        th_days=th_days,
        floor_btc=token.floor_btc,
        cap_btc=token.cap_btc,
    )


def hedge_outcome(
    token: Token, *, hashrate_th: Fraction, price_btc: Fraction, index_btc: Fraction
) -> Fraction:
    """The hedged total over N days (BTC) if the settlement index is ``index_btc``.

    Short (a miner): mining ``H x N x BME`` + the shorts' payout - their price.
    Equal to the locked income inside [Floor, Cap]; below Floor it falls by
    ``(Floor - BME) x H x N`` (the shorts pay at most Cap - Floor); above Cap it
    rises by ``(BME - Cap) x H x N`` (the shorts pay nothing). Long (one who owes
    ``H x N x BME``): that obligation - the longs' payout + their price, the cost;
    above Cap it rises by ``(BME - Cap) x H x N``, below Floor it falls.
    """
    result = hedge(token, hashrate_th=hashrate_th, price_btc=price_btc)
    exposure = Fraction(index_btc) * result.th_days
    tokens_net = result.tokens * (payout_at_btc_index(token, Fraction(index_btc)) - price_btc)
    return exposure + tokens_net if not token.is_long else exposure - tokens_net
