"""Position tokens and pricing: names with decimal strikes, payouts, the seed's worked examples.

Why: a token name is the contract a trader signs, and its strikes must mean exactly
what the name says (no float, no silent rounding); the payouts and the pricing
formulas are the seed's, and its worked examples must come out exactly.
The seed is the index authors' "Tokenized Synthetic PoW Mining Contract" paper
(carboclan/pm, research/hashrate-derivative-en.md): the expected figures below are
its printed numbers or computed here by hand from its formulas.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.errors import InputError, NoSolution
from oracle.index.pricing import (
    hedge,
    hedge_outcome,
    implied_difficulty,
    implied_earnings_units,
    implied_growth_rate,
    price_from_market,
    value_from_path,
)
from oracle.index.tokens import (
    Series,
    Token,
    format_strike,
    format_token,
    parse_series,
    parse_strike,
    parse_token,
    payout_at_btc_index,
    payout_btc,
    payout_units,
)

#: The seed's K at 12.5 BTC per block: 86400 x 10^12 / 2^32 x 12.5 (its "251457095").
K = Fraction(86400 * 10**12, 2**32) * Fraction(25, 2)
E = Fraction(1, 10**5)  # the seed writes index values as multiples of 1E-5


def test_parse_example_token() -> None:
    token = parse_token("SBME84-250-300-190718")
    assert token == Token(side="S", n_days=84, floor=250, cap=300, expiry_date=date(2019, 7, 18))
    assert token.expiry == datetime(2019, 7, 18, 2, 0, tzinfo=UTC)
    assert token.expiry_ts == 1563415200
    assert token.collateral_units == 50_000_000
    assert token.collateral_btc == 5
    assert token.pair_collateral_sat == 500_000_000  # 5 BTC per whole pair
    assert token.floor_btc == Fraction(25, 10**6) and token.cap_btc == Fraction(3, 10**5)
    assert token.floor_fixed == 25 * 10**12 and token.cap_fixed == 30 * 10**12  # 10^18 fixed


def test_decimal_strikes_are_exact_and_echoed_canonically() -> None:
    token = parse_token("LBME84-4.85-5.40-261215")
    assert token.name == "LBME84-4.85-5.4-261215"
    assert token.series_name == "BME84-4.85-5.4-261215"
    assert token.short_name == "SBME84-4.85-5.4-261215"
    assert token.floor == Fraction(485, 100) and token.cap == Fraction(54, 10)
    assert token.floor_btc == Fraction(485, 10**9)  # 4.85E-07 BTC per TH/s per day
    assert token.floor_fixed == 485 * 10**9 and token.cap_fixed == 540 * 10**9
    assert token.floor_fixed % 10**4 == 0  # a 7-decimal strike is a multiple of 10^4 on chain
    assert token.pair_collateral_sat == 5_500_000  # 0.055 BTC
    assert token.expiry_ts == int(datetime(2026, 12, 15, 2, tzinfo=UTC).timestamp())
    smallest = parse_token("SBME14-0.0000001-0.0000002-300101")
    assert smallest.floor_fixed == 10**4 and smallest.pair_collateral_sat == 1


@pytest.mark.parametrize(
    "name", ["BME84-4.85-5.40-261215", "LBME84-4.85-5.4-261215", "SBME84-4.850-5.4000000-261215"]
)
def test_parse_series_takes_a_series_or_either_token(name: str) -> None:
    series = parse_series(name)
    assert isinstance(series, Series)
    assert series.name == series.series_name == "BME84-4.85-5.4-261215"
    assert (series.long_name, series.short_name) == (
        "LBME84-4.85-5.4-261215",
        "SBME84-4.85-5.4-261215",
    )
    assert series.floor_fixed == 485 * 10**9 and series.pair_collateral_sat == 5_500_000
    assert series.token("S") == parse_token("SBME84-4.85-5.4-261215")


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("XBME84-250-300-190718", "side"),
        ("SBMX84-250-300-190718", "'BME'"),
        ("SBME8x-250-300-190718", "N must be a whole number"),
        ("SBME85-250-300-190718", "multiple of 14"),
        ("SBME084-250-300-190718", "N has a leading zero"),
        ("SBME84-2a0-300-190718", "floor '2a0'"),
        ("SBME84-300-250-190718", r"cap \(250\) must be greater than floor \(300\)"),
        ("SBME84-4.85-4.850-190718", "must be greater"),
        ("SBME84-250-300-191318", "not a date"),
        ("SBME84-250-300-1907", "YYMMDD"),
        ("SBME84-250-300", "4 parts"),
        ("SBME84-0250-300-190718", "floor '0250': leading zeros are not allowed"),
        ("SBME84-4.85-5.123456789-190718", "cap '5.123456789': 9 decimals, at most 7"),
        ("SBME84-4.85000000-5.4-190718", "floor '4.85000000': 8 decimals"),
        ("SBME84--5-10-190718", "cannot be negative"),
        ("SBME84-2.5e2-300-190718", "exponent forms are not accepted"),
        ("SBME84-+250-300-190718", "a sign is not allowed"),
        ("SBME84-.5-300-190718", r"write 0\.5"),
        ("SBME84-5.-300-190718", "digits after the decimal point"),
        ("SBME84-4,85-300-190718", "use '.' as the decimal point"),
        ("SBME84-250-" + "9" * 31 + "-190718", "too large"),
        ("BME84-250-300-190718", "side must be L"),  # a series name is not a token
        ("SBME" + "14" * 3000 + "-250-300-190718", "N is too large"),  # no int() of 6000 digits
    ],
)
def test_malformed_token_names_say_which_part(name: str, part: str) -> None:
    with pytest.raises(InputError, match=part):
        parse_token(name)


def test_parse_series_refuses_a_bad_head() -> None:
    with pytest.raises(InputError, match="series 'XBME84-1-2-190718': expected 'BME'"):
        parse_series("XBME84-1-2-190718")


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("250", Fraction(250)),
        ("0", Fraction(0)),
        ("4.85", Fraction(485, 100)),
        ("5.40", Fraction(54, 10)),
        ("0.0000001", Fraction(1, 10**7)),
    ],
)
def test_parse_strike(text: str, units: Fraction) -> None:
    assert parse_strike(text) == units


@pytest.mark.parametrize(
    ("units", "text"),
    [
        (Fraction(250), "250"),
        (Fraction(0), "0"),
        (Fraction(54, 10), "5.4"),
        (Fraction(1, 10**7), "0.0000001"),
        (Fraction(123456789, 10**7), "12.3456789"),
    ],
)
def test_format_strike_is_canonical(units: Fraction, text: str) -> None:
    assert format_strike(units) == text


@pytest.mark.parametrize("units", [Fraction(1, 10**8), Fraction(1, 3), Fraction(-1)])
def test_format_strike_refuses_what_no_name_can_carry(units: Fraction) -> None:
    with pytest.raises(InputError):
        format_strike(units)


_STRIKES = st.integers(min_value=0, max_value=10**13).map(lambda n: Fraction(n, 10**7))


@given(
    st.sampled_from("LS"),
    st.integers(min_value=1, max_value=100).map(lambda t: 14 * t),
    _STRIKES,
    st.integers(min_value=1, max_value=10**13).map(lambda n: Fraction(n, 10**7)),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
)
def test_token_round_trip(side: str, n: int, floor: Fraction, width: Fraction, day: date) -> None:
    token = Token(side=side, n_days=n, floor=floor, cap=floor + width, expiry_date=day)
    assert parse_token(format_token(token)) == token
    assert parse_series(token.series_name) == token.series
    # The on-chain integers are exact: strike x 10^11 and width x 10^7 satoshis.
    assert Fraction(token.floor_fixed) == floor * 10**11
    assert Fraction(token.pair_collateral_sat) == width * 10**7


def test_seed_example_1_payouts() -> None:
    # Seed 3.1, Example 1: Floor 4.50E-5, Cap 6.00E-5; 15 WBTC collateral per pair.
    long = parse_token("LBME84-450-600-190511")
    short = parse_token("SBME84-450-600-190511")
    assert long.collateral_btc == 15
    for index, long_btc, short_btc in [
        (Fraction(552, 100) * E, Fraction(102, 10), Fraction(48, 10)),  # 5.52E-5: 10.2 / 4.8
        (Fraction(550, 100) * E, Fraction(10), Fraction(5)),  # 5.50E-5: 10 / 5
        (Fraction(525, 100) * E, Fraction(75, 10), Fraction(75, 10)),  # 5.25E-5: 7.5 / 7.5
    ]:
        assert payout_at_btc_index(long, index) == long_btc
        assert payout_at_btc_index(short, index) == short_btc


def test_payouts_clamped_and_sum_to_collateral() -> None:
    long = parse_token("LBME84-250-300-190718")
    short = parse_token("SBME84-250-300-190718")
    assert payout_units(long, Fraction(275)) == 25 * 10**6
    assert payout_btc(long, Fraction(275)) == Fraction(5, 2)
    assert payout_btc(long, Fraction(100)) == 0 and payout_btc(short, Fraction(100)) == 5
    assert payout_btc(long, Fraction(1000)) == 5 and payout_btc(short, Fraction(1000)) == 0
    # The example in BTC: at 2.8E-5, long 3 and short 2.
    assert payout_at_btc_index(long, Fraction(28, 10**6)) == 3
    assert payout_at_btc_index(short, Fraction(28, 10**6)) == 2


@given(st.fractions(min_value=-100, max_value=1000))
def test_pair_always_worth_collateral(index: Fraction) -> None:
    long = parse_token("LBME28-4.85-5.4-240101")
    short = parse_token("SBME28-4.85-5.4-240101")
    assert payout_btc(long, index) + payout_btc(short, index) == long.collateral_btc


@pytest.mark.parametrize(
    ("name", "price", "earnings"),
    [  # Seed 4.1's table: market price (WBTC) -> implied mining earnings.
        ("LBME28-300-500-190526", 8, Fraction(38, 10) * E),
        ("SBME28-300-500-190526", 12, Fraction(38, 10) * E),
        ("LBME84-200-400-190716", 12, Fraction(32, 10) * E),
        ("SBME84-200-400-190716", 8, Fraction(32, 10) * E),
    ],
)
def test_seed_implied_earnings(name: str, price: int, earnings: Fraction) -> None:
    assert implied_earnings_units(parse_token(name), Fraction(price)) * Fraction(1, 10**7) == (
        earnings
    )


def test_implied_earnings_refuses_a_price_outside_the_collateral() -> None:
    with pytest.raises(InputError, match="outside"):
        implied_earnings_units(parse_token("LBME84-250-300-190718"), Fraction(6))


@pytest.mark.parametrize(
    ("earnings", "epochs", "seed_difficulty"),
    [(Fraction(38, 10) * E, 2, "6.62E12"), (Fraction(32, 10) * E, 6, "7.86E12")],
)
def test_seed_implied_difficulty(earnings: Fraction, epochs: int, seed_difficulty: str) -> None:
    # Seed 5.1: implied difficulty K / E, printed to three digits (6.62T, 7.86T).
    difficulty = implied_difficulty([K] * epochs, earnings)
    assert difficulty == K / earnings
    assert Decimal(difficulty.numerator) / Decimal(difficulty.denominator) == pytest.approx(
        Decimal(seed_difficulty), rel=Decimal("0.0008")
    )


def test_seed_decomposition_pricing() -> None:
    # Seed 5.3, first row: LBME84-200-400-190716 over 6.7, 6.7, 6.9, 7.1, 7.3, 7.9 T:
    # settlement index 3.553E-05, price 15.53 (the seed prints 3.55E-05 and 15.5).
    token = parse_token("LBME84-200-400-190716")
    path = [Fraction(d) * 10**11 for d in (67, 67, 69, 71, 73, 79)]
    value = value_from_path(token, path=path, ks=[K] * 6)
    expected_index = (2 * K / path[0] + sum(K / d for d in path[2:])) / 6
    assert value.index_btc == expected_index
    assert round(value.index_btc * 10**8) == 3553  # 3.553E-05
    assert value.value_btc == (expected_index - 2 * E) * 10**6
    assert round(value.value_btc * 100) == 1553  # 15.53 WBTC


def test_seed_hedge() -> None:
    # Seed 4.2: 100 TH/s for 84 days, shorts of SBME84-200-400-190716 bought at 8 WBTC:
    # 100 x 84 / 1E6 = 0.0084 tokens, comprehensive income 0.26880 at settlement 3.36E-5
    # and at 2.86E-5 alike (its table: -0.01344 + 0.28224 and 0.02856 + 0.24024).
    token = parse_token("SBME84-200-400-190716")
    result = hedge(token, hashrate_th=Fraction(100), price_btc=Fraction(8))
    assert result.tokens == Fraction(84, 10**4)
    assert result.total_btc == Fraction(2688, 10**4)
    assert result.earnings_btc == Fraction(32, 10) * E  # Cap - price / Multiplier
    assert (result.floor_btc, result.cap_btc) == (2 * E, 4 * E)
    for index in (Fraction(336, 100) * E, Fraction(286, 100) * E):
        outcome = hedge_outcome(
            token, hashrate_th=Fraction(100), price_btc=Fraction(8), index_btc=index
        )
        assert outcome == Fraction(2688, 10**4)


def test_hedge_outside_the_protected_range() -> None:
    token = parse_token("SBME84-200-400-190716")
    args = {"hashrate_th": Fraction(100), "price_btc": Fraction(8)}
    # Below Floor (1E-5): mining 8400 x 1E-5 = 0.084, shorts pay 0.0084 x 20 = 0.168, less
    # 0.0672 paid: 0.1848, i.e. 0.2688 - (2E-5 - 1E-5) x 8400.
    assert hedge_outcome(token, index_btc=E, **args) == Fraction(1848, 10**4)
    # Above Cap (5E-5): mining 0.42, shorts pay 0, less 0.0672: 0.3528 = 0.2688 + 1E-5 x 8400.
    assert hedge_outcome(token, index_btc=5 * E, **args) == Fraction(3528, 10**4)
    # A long holder who owes 8400 TH/s-days at the index: cost Floor + price/M inside.
    long = parse_token("LBME84-200-400-190716")
    locked = hedge(long, hashrate_th=Fraction(100), price_btc=Fraction(12))
    assert locked.total_btc == Fraction(2688, 10**4)  # (2E-5 + 12E-6) x 8400
    long_args = {"hashrate_th": Fraction(100), "price_btc": Fraction(12)}
    assert hedge_outcome(long, index_btc=3 * E, **long_args) == locked.total_btc
    assert hedge_outcome(long, index_btc=5 * E, **long_args) == Fraction(3528, 10**4)
    assert hedge_outcome(long, index_btc=E, **long_args) == Fraction(1848, 10**4)
    with pytest.raises(InputError, match="positive"):
        hedge(token, hashrate_th=Fraction(0), price_btc=Fraction(1))


def test_growth_rate_with_one_k_round_trips() -> None:
    d0 = Fraction(6_353_030_562_983)
    g = Fraction(5, 100)
    path = [d0 * (1 + g) ** i for i in range(1, 7)]
    earnings = sum((K / d for d in path), Fraction(0)) / 6
    solved = implied_growth_rate(ks=[K] * 6, d0=d0, earnings_btc=earnings)
    assert abs(solved - Decimal("0.05")) < Decimal("1e-30")


_HALVING_KS = [K, K, K * Fraction(1433, 2016), K / 2, K / 2, K / 2]  # a window across a halving


@given(st.fractions(min_value=Fraction(-9, 10), max_value=3), st.integers(min_value=1, max_value=6))
def test_growth_solver_inverts_a_path_with_per_epoch_k(g: Fraction, epochs: int) -> None:
    d0 = Fraction(10**13)
    ks = _HALVING_KS[-epochs:]
    earnings = sum((k / (d0 * (1 + g) ** i) for i, k in enumerate(ks, 1)), Fraction(0)) / epochs
    solved = implied_growth_rate(ks=ks, d0=d0, earnings_btc=earnings)
    assert abs(solved - Decimal(g.numerator) / Decimal(g.denominator)) < Decimal("1e-25")


def test_growth_without_solution() -> None:
    with pytest.raises(NoSolution, match="not positive"):
        implied_growth_rate(ks=[K] * 6, d0=Fraction(10**12), earnings_btc=Fraction(0))
    with pytest.raises(InputError, match="D0"):
        implied_growth_rate(ks=[K] * 6, d0=Fraction(0), earnings_btc=E)


def test_market_and_path_pricing_agree_across_a_halving() -> None:
    token = parse_token("LBME28-0-500-190718")
    d0 = Fraction(6_353_030_562_983)
    ks = [K, K / 2]
    path = [Fraction(6_702_169_884_349), Fraction(7_000_000_000_000)]
    value = value_from_path(token, path=path, ks=ks)
    assert value.index_btc == (K / path[0] + K / 2 / path[1]) / 2
    implied = price_from_market(token, price_btc=value.value_btc, d0=d0, ks=ks)
    assert implied.earnings_btc == value.index_btc  # inside [Floor, Cap], so no clamping
    assert implied.difficulty == (K + K / 2) / 2 / value.index_btc
    with pytest.raises(InputError, match="averages 2 epoch"):
        value_from_path(token, path=path[:1], ks=ks)
