"""How market series are shown and what users type: exact amounts, strikes and payouts.

The expected values are worked out here by hand or with Fractions from the definitions
(DESIGN.md "Position tokens"), never by the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import pytest

from oracle.errors import InputError
from oracle.market.present import (
    STATE_FALLBACK,
    STATE_OPEN,
    STATE_SETTLED,
    CollateralToken,
    format_units,
    index_text,
    parse_amount,
    payouts_per_token,
    series_json,
    series_text,
    strike_text,
)


@dataclass(frozen=True)
class Info:
    """A series as ``oracle.market.chain.SeriesInfo`` carries it (on-chain integers)."""

    series_id: bytes = b"\x11" * 32
    name: str = "BME84-4.85-5.4-261215"
    n_days: int = 84
    floor: int = 485_000_000_000  # 4.85E-07 x 10^18
    cap: int = 540_000_000_000
    expiry: int = 1_797_300_000 - 1_797_300_000 % 86_400 + 7_200
    created_at: int = 1_790_000_000
    collateral: str = "0x" + "22" * 20
    long_token: str = "0x" + "33" * 20
    short_token: str = "0x" + "44" * 20
    state: int = STATE_OPEN
    settlement_value: int = 0
    settlement_epoch: int = 0
    deposited: int = 0
    paid_out: int = 0


WBTC = CollateralToken("0x" + "22" * 20, "tWBTC", 8)


@pytest.mark.parametrize(
    ("text", "decimals", "base"),
    [
        ("1", 18, 10**18),
        ("0.0084", 18, 84 * 10**14),  # the seed's hedge: 8.4e15 base units
        ("0.000000000000000001", 18, 1),
        ("12.5", 8, 1_250_000_000),
        (" 3 ", 18, 3 * 10**18),
        ("007.50", 18, 75 * 10**17),
    ],
)
def test_amounts_are_exact_decimals(text: str, decimals: int, base: int) -> None:
    assert parse_amount(text, decimals, "--amount") == base


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1e-3", "not an amount"),
        ("-1", "not an amount"),
        ("+1", "not an amount"),
        ("1,5", "not an amount"),
        (".5", "not an amount"),
        ("5.", "not an amount"),
        ("", "not an amount"),
        ("nan", "not an amount"),
        ("0", "must be more than 0"),
        ("0.000", "must be more than 0"),
        ("0.0000000000000000001", "19 decimals; the token has 18"),
        ("1" * 80, "too large"),
    ],
)
def test_malformed_amounts_are_refused_naming_the_flag(text: str, fragment: str) -> None:
    with pytest.raises(InputError, match="--amount") as info:
        parse_amount(text, 18, "--amount")
    assert fragment in str(info.value)


def test_units_are_formatted_exactly_without_trailing_zeros() -> None:
    assert format_units(5_500_000, 8) == "0.055"
    assert format_units(84 * 10**14, 18) == "0.0084"
    assert format_units(10**18, 18) == "1"
    assert format_units(0, 8) == "0"
    assert format_units(1, 18) == "0.000000000000000001"
    assert format_units(-46_200, 8) == "-0.000462"


def test_strikes_exactly_and_index_values_with_significant_digits() -> None:
    assert strike_text(485_000_000_000) == "4.85E-07"
    assert strike_text(540_000_000_000) == "5.4E-07"
    assert strike_text(25 * 10**12) == "2.5E-05"  # the seed's 250 (1E-7 units)
    assert strike_text(10**4) == "1E-14"  # the finest strike: 7 decimals of 1E-7
    assert strike_text(0) == "0"
    assert index_text(503_200_000_000) == "5.032E-07"
    assert index_text(503_249_999_999) == "5.032E-07"
    assert index_text(503_250_000_000) == "5.033E-07"  # half up


def expected_per_token(
    value: Fraction, floor: Fraction, cap: Fraction, decimals: int
) -> tuple[int, int]:
    """Payout of one token in base units, from the definition: (clamp - Floor) x 10^6 BTC
    for a long, (Cap - clamp) x 10^6 BTC for a short, rounded down to a base unit."""
    clamped = min(max(value, floor), cap)
    per_btc = 10**decimals
    long_btc = (clamped - floor) * 10**6
    short_btc = (cap - clamped) * 10**6
    return int(long_btc * per_btc), int(short_btc * per_btc)  # int() floors a positive Fraction


@pytest.mark.parametrize(
    ("value_fixed", "expected_btc"),
    [
        (503_200_000_000, (Fraction(182, 10_000), Fraction(368, 10_000))),  # 0.0182 / 0.0368
        (450_000_000_000, (Fraction(0), Fraction(55, 1000))),  # below Floor: clamped
        (2_160_032_701_991_302_357_518_883_039_597_161_821, (Fraction(55, 1000), Fraction(0))),
        (503_212_345_678, None),  # not a whole satoshi per token: rounded down
    ],
)
def test_payouts_per_token_follow_the_definition(
    value_fixed: int, expected_btc: tuple[Fraction, Fraction] | None
) -> None:
    info = Info(state=STATE_SETTLED, settlement_value=value_fixed, settlement_epoch=9)
    floor, cap = Fraction(info.floor, 10**18), Fraction(info.cap, 10**18)
    value = Fraction(value_fixed, 10**18)
    expected = expected_per_token(value, floor, cap, 8)
    assert payouts_per_token(info, 8) == expected
    if expected_btc is not None:
        assert expected == (int(expected_btc[0] * 10**8), int(expected_btc[1] * 10**8))
    assert sum(expected) <= 5_500_000  # never more than the pair's 0.055 BTC


def test_fallback_pays_half_a_pair_to_each_side() -> None:
    info = Info(state=STATE_FALLBACK, settlement_value=512_500_000_000)
    assert payouts_per_token(info, 8) == (2_750_000, 2_750_000)


def test_series_json_of_an_open_and_a_settled_series() -> None:
    open_ = series_json(
        Info(deposited=46_200),
        collateral=WBTC,
        pair_collateral=5_500_000,
        long_supply=84 * 10**14,
        short_supply=84 * 10**14,
    )
    assert open_["id"] == "0x" + "11" * 32
    assert (open_["floor"], open_["floor_fixed"]) == ("4.85E-07", "485000000000")
    assert (open_["cap"], open_["cap_fixed"]) == ("5.4E-07", "540000000000")
    assert open_["status"] == "open" and open_["settlement"] is None
    assert open_["pair_collateral"] == {"base": "5500000", "units": "0.055"}
    assert open_["long_token"]["name"] == "LBME84-4.85-5.4-261215"
    assert open_["short_token"]["supply"] == "0.0084"
    assert open_["ledger"]["held"] == {"base": "46200", "units": "0.000462"}
    assert open_["settlement_opens_at"] == Info.expiry + 86_400
    assert open_["fallback_opens_at"] == Info.expiry + 30 * 86_400
    assert "settled" not in series_text(open_)

    settled = series_json(
        Info(state=STATE_SETTLED, settlement_value=503_200_000_000, settlement_epoch=470),
        collateral=WBTC,
        pair_collateral=5_500_000,
        long_supply=0,
        short_supply=0,
    )
    assert settled["settlement"] == {
        "value": "5.032E-07",
        "value_fixed": "503200000000",
        "epoch": 470,
        "long_payout_per_token": {"base": "1820000", "units": "0.0182"},
        "short_payout_per_token": {"base": "3680000", "units": "0.0368"},
    }
    text = series_text(settled)
    assert "BME84 5.032E-07 (epoch 470): a long pays 0.0182, a short 0.0368 tWBTC" in text
