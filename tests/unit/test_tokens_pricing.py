"""Position tokens and pricing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.errors import InputError, NoSolution
from oracle.index.bme import k_factor
from oracle.index.pricing import (
    hedge,
    implied_difficulty,
    implied_earnings_units,
    implied_growth_rate,
    price_from_market,
    value_from_path,
)
from oracle.index.tokens import Token, format_token, parse_token, payout_btc, payout_units

K = k_factor(300)  # 12.5 BTC era


def test_parse_example_token() -> None:
    token = parse_token("SBME84-250-300-190718")
    assert token == Token(side="S", n_days=84, floor=250, cap=300, expiry_date=date(2019, 7, 18))
    assert token.expiry == datetime(2019, 7, 18, 2, 0, tzinfo=UTC)
    assert token.collateral_units == 50_000_000
    assert token.collateral_btc == 5


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("XBME84-250-300-190718", "side"),
        ("SBMX84-250-300-190718", "'BME'"),
        ("SBME8x-250-300-190718", "N must be a whole number"),
        ("SBME85-250-300-190718", "multiple of 14"),
        ("SBME84-2a0-300-190718", "floor"),
        ("SBME84-250-3.0-190718", "cap"),
        ("SBME84-300-250-190718", r"cap \(250\) must be greater"),
        ("SBME84-250-300-191318", "not a date"),
        ("SBME84-250-300-1907", "YYMMDD"),
        ("SBME84-250-300", "4 parts"),
        ("SBME84-0250-300-190718", "canonical"),
    ],
)
def test_malformed_token_names_say_which_part(name: str, part: str) -> None:
    with pytest.raises(InputError, match=part):
        parse_token(name)


@given(
    st.sampled_from("LS"),
    st.integers(min_value=1, max_value=100).map(lambda t: 14 * t),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
)
def test_token_round_trip(side: str, n: int, floor: int, width: int, day: date) -> None:
    token = Token(side=side, n_days=n, floor=floor, cap=floor + width, expiry_date=day)
    assert parse_token(format_token(token)) == token


def test_payouts_clamped_and_sum_to_collateral() -> None:
    long = parse_token("LBME84-250-300-190718")
    short = parse_token("SBME84-250-300-190718")
    assert payout_units(long, Fraction(275)) == 25 * 10**6
    assert payout_btc(long, Fraction(275)) == Fraction(5, 2)
    assert payout_btc(long, Fraction(100)) == 0 and payout_btc(short, Fraction(100)) == 5
    assert payout_btc(long, Fraction(1000)) == 5 and payout_btc(short, Fraction(1000)) == 0


@given(st.fractions(min_value=-100, max_value=1000))
def test_pair_always_worth_collateral(index: Fraction) -> None:
    long = parse_token("LBME28-250-300-240101")
    short = parse_token("SBME28-250-300-240101")
    assert payout_btc(long, index) + payout_btc(short, index) == long.collateral_btc


def test_implied_earnings() -> None:
    long = parse_token("LBME84-250-300-190718")
    short = parse_token("SBME84-250-300-190718")
    # 2.5 BTC = 25,000,000 units; / 10^6 = 25 units over the floor.
    assert implied_earnings_units(long, Fraction(5, 2)) == 275
    assert implied_earnings_units(short, Fraction(2)) == 280
    with pytest.raises(InputError, match="outside"):
        implied_earnings_units(long, Fraction(6))


def test_implied_difficulty_and_growth_round_trip() -> None:
    d0 = Fraction(6_353_030_562_983)
    g = Fraction(5, 100)
    path = [d0 * (1 + g) ** i for i in range(1, 7)]
    earnings = sum((K / d for d in path), Fraction(0)) / 6
    solved = implied_growth_rate(k=K, d0=d0, earnings_btc=earnings, epochs=6)
    assert abs(solved - Decimal("0.05")) < Decimal("1e-30")
    assert implied_difficulty(K, K / d0) == d0


@given(
    st.fractions(min_value=Fraction(-9, 10), max_value=3), st.integers(min_value=1, max_value=12)
)
def test_growth_solver_inverts_path(g: Fraction, epochs: int) -> None:
    d0 = Fraction(10**13)
    earnings = sum((K / (d0 * (1 + g) ** i) for i in range(1, epochs + 1)), Fraction(0)) / epochs
    solved = implied_growth_rate(k=K, d0=d0, earnings_btc=earnings, epochs=epochs)
    assert abs(solved - Decimal(g.numerator) / Decimal(g.denominator)) < Decimal("1e-25")


def test_growth_without_solution() -> None:
    with pytest.raises(NoSolution, match="not positive"):
        implied_growth_rate(k=K, d0=Fraction(10**12), earnings_btc=Fraction(0), epochs=6)


def test_market_and_path_pricing_agree() -> None:
    token = parse_token("LBME28-250-500-190718")
    d0 = Fraction(6_353_030_562_983)
    path = [Fraction(6_702_169_884_349), Fraction(7_000_000_000_000)]
    value = value_from_path(token, path=path, k=K)
    assert value.index_btc == (K / path[0] + K / path[1]) / 2
    implied = price_from_market(token, price_btc=value.value_btc, d0=d0, k=K)
    assert implied.earnings_btc == value.index_btc  # inside [Floor, Cap], so no clamping
    with pytest.raises(InputError, match="averages 2 epoch"):
        value_from_path(token, path=path[:1], k=K)


def test_hedge_sizing_and_locked_income() -> None:
    token = parse_token("SBME84-250-300-190718")
    result = hedge(token, hashrate_th=Fraction(10**6), price_btc=Fraction(2))
    assert result.tokens == 84  # 1,000,000 TH/s x 84 days / 10^6
    # Mining H*N*BME plus shorts (Cap - BME) per unit, less price: Cap - price/M per TH-day.
    assert result.total_btc == Fraction(10**6 * 84 * 300, 10**7) - 84 * 2
    with pytest.raises(InputError, match="positive"):
        hedge(token, hashrate_th=Fraction(0), price_btc=Fraction(1))
