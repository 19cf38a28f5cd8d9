"""How a market series is shown: one JSON shape for ``bme-oracle market`` and ``/v1/markets``.

Pure. Exact throughout: on-chain integers are decimal strings (JSON numbers lose
precision above 2^53), amounts of tokens and collateral are exact decimals of their
base units (``format_units``), the index and the strikes are BTC per TH/s per day
in scientific notation (``4.85E-07``; the settlement value with 4 significant digits as
``index`` prints it, the strikes exactly), each with its 10^18 integer alongside.
``parse_amount`` is the one parser of the amounts a user types (``--amount 0.0084``):
digits and one decimal point, never a float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Protocol

from oracle.errors import InputError
from oracle.index.bme import format_scientific

#: ``BmeMarket.SeriesInfo.state``.
STATE_OPEN = 1
STATE_SETTLED = 2
STATE_FALLBACK = 3
STATE_NAMES = {STATE_OPEN: "open", STATE_SETTLED: "settled", STATE_FALLBACK: "fallback"}
#: Position tokens (``BmePositionToken``) have 18 decimals: 10^18 base units are one token.
TOKEN_DECIMALS = 18
FIXED_POINT = 10**18
MULTIPLIER = 10**6
#: ``BmeMarket.SETTLEMENT_DELAY`` and ``FALLBACK_DELAY``.
SETTLEMENT_DELAY_S = 86_400
FALLBACK_DELAY_S = 30 * 86_400
#: uint256: the largest amount a transaction can carry.
MAX_UINT256 = 2**256 - 1
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")


class SeriesLike(Protocol):
    """What ``series_json`` reads of a series (``oracle.market.chain.SeriesInfo``)."""

    @property
    def series_id(self) -> bytes: ...
    @property
    def name(self) -> str: ...
    @property
    def n_days(self) -> int: ...
    @property
    def floor(self) -> int: ...
    @property
    def cap(self) -> int: ...
    @property
    def expiry(self) -> int: ...
    @property
    def created_at(self) -> int: ...
    @property
    def collateral(self) -> str: ...
    @property
    def long_token(self) -> str: ...
    @property
    def short_token(self) -> str: ...
    @property
    def state(self) -> int: ...
    @property
    def settlement_value(self) -> int: ...
    @property
    def settlement_epoch(self) -> int: ...
    @property
    def deposited(self) -> int: ...
    @property
    def paid_out(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CollateralToken:
    """An ERC-20 collateral: where, what it is called, its decimals."""

    address: str
    symbol: str
    decimals: int


def parse_amount(text: str, decimals: int, what: str) -> int:
    """An amount typed in whole tokens (``1``, ``0.0084``) as base units, exactly.

    ``decimals`` is the token's (18 for position tokens): ``0.0084`` is 8.4e15. Refused
    with the reason: signs, exponents, commas, more decimals than the token has, zero,
    more than uint256.
    """
    value = text.strip()
    match = _AMOUNT.fullmatch(value)
    if match is None:
        raise InputError(
            f"{what}: not an amount: {text!r} (a decimal number of tokens such as 1 or 0.0084; "
            "no sign, exponent or comma)"
        )
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > decimals:
        raise InputError(f"{what}: {text!r} has {len(fraction)} decimals; the token has {decimals}")
    base = int(whole + fraction.ljust(decimals, "0"))
    if base == 0:
        raise InputError(f"{what}: must be more than 0, got {text!r}")
    if base > MAX_UINT256:
        raise InputError(f"{what}: {text!r} is too large")
    return base


def format_units(base: int, decimals: int) -> str:
    """Base units as an exact decimal of whole tokens, without trailing zeros."""
    sign = "-" if base < 0 else ""
    whole, rest = divmod(abs(base), 10**decimals)
    if not rest:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{rest:0{decimals}d}".rstrip("0")


def index_text(fixed: int) -> str:
    """A 10^18 index value as ``index`` prints it: 4 significant digits, ``5.032E-07``."""
    return format_scientific(Fraction(fixed, FIXED_POINT))


def strike_text(fixed: int) -> str:
    """A 10^18 strike exactly, in scientific notation without trailing zeros: ``4.85E-07``."""
    if fixed == 0:
        return "0"
    text = format_scientific(Fraction(fixed, FIXED_POINT), 40)
    mantissa, _, exponent = text.partition("E")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}E{exponent}"


def iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def long_share(info: SeriesLike) -> int:
    """clamp(BME) - Floor of a settled series (half the width in fallback), 10^18 units."""
    if info.state == STATE_FALLBACK:
        return (info.cap - info.floor) // 2
    return min(max(info.settlement_value, info.floor), info.cap) - info.floor


def payouts_per_token(info: SeriesLike, collateral_decimals: int) -> tuple[int, int]:
    """What one whole long and one whole short token pay at settlement, in collateral base
    units, rounded down as the contract's ``claim`` rounds a claim of exactly one token."""
    unit = 10 ** (collateral_decimals + 6)
    share = long_share(info)
    width = info.cap - info.floor
    return share * unit // FIXED_POINT, (width - share) * unit // FIXED_POINT


def _token(name: str, where: str, supply: int) -> dict[str, Any]:
    return {
        "name": name,
        "address": where,
        "decimals": TOKEN_DECIMALS,
        "supply": format_units(supply, TOKEN_DECIMALS),
        "supply_base": str(supply),
    }


def amount_json(base: int, decimals: int) -> dict[str, str]:
    """An amount of collateral in JSON: exact base units and the decimal text."""
    return {"base": str(base), "units": format_units(base, decimals)}


def series_json(
    info: SeriesLike,
    *,
    collateral: CollateralToken,
    pair_collateral: int,
    long_supply: int,
    short_supply: int,
) -> dict[str, Any]:
    """One series as ``/v1/markets`` and ``market status --json`` show it."""
    decimals = collateral.decimals
    settlement = None
    if info.state in (STATE_SETTLED, STATE_FALLBACK):
        long_pays, short_pays = payouts_per_token(info, decimals)
        settlement = {
            "value": index_text(info.settlement_value),
            "value_fixed": str(info.settlement_value),
            "epoch": info.settlement_epoch if info.state == STATE_SETTLED else None,
            "long_payout_per_token": amount_json(long_pays, decimals),
            "short_payout_per_token": amount_json(short_pays, decimals),
        }
    return {
        "id": "0x" + bytes(info.series_id).hex(),
        "name": info.name,
        "n_days": info.n_days,
        "floor": strike_text(info.floor),
        "floor_fixed": str(info.floor),
        "cap": strike_text(info.cap),
        "cap_fixed": str(info.cap),
        "multiplier": MULTIPLIER,
        "expiry": info.expiry,
        "expiry_iso": iso(info.expiry),
        "created_at": info.created_at,
        "settlement_opens_at": info.expiry + SETTLEMENT_DELAY_S,
        "fallback_opens_at": info.expiry + FALLBACK_DELAY_S,
        "status": STATE_NAMES.get(info.state, f"unknown ({info.state})"),
        "collateral": {
            "address": collateral.address,
            "symbol": collateral.symbol,
            "decimals": decimals,
        },
        "pair_collateral": amount_json(pair_collateral, decimals),
        "long_token": _token("L" + info.name, info.long_token, long_supply),
        "short_token": _token("S" + info.name, info.short_token, short_supply),
        "ledger": {
            "deposited": amount_json(info.deposited, decimals),
            "paid_out": amount_json(info.paid_out, decimals),
            "held": amount_json(info.deposited - info.paid_out, decimals),
        },
        "settlement": settlement,
    }


def series_text(payload: dict[str, Any]) -> str:
    """The human-readable form of ``series_json`` (plus ``tx_hash`` etc. by the caller)."""
    symbol = payload["collateral"]["symbol"]
    lines = [
        f"{payload['name']}  {payload['status']}",
        f"  id          {payload['id']}",
        f"  index       BME{payload['n_days']}: floor {payload['floor']}, cap {payload['cap']} "
        "BTC per TH/s per day",
        f"  expiry      {payload['expiry_iso']}; settlement opens "
        f"{iso(payload['settlement_opens_at'])}, fallback {iso(payload['fallback_opens_at'])}",
        f"  collateral  {symbol} {payload['collateral']['address']}: "
        f"{payload['pair_collateral']['units']} per pair",
    ]
    for side in ("long_token", "short_token"):
        token = payload[side]
        lines.append(
            f"  {side.split('_')[0]:<11} {token['name']} {token['address']}  "
            f"supply {token['supply']}"
        )
    ledger = payload["ledger"]
    lines.append(
        f"  ledger      deposited {ledger['deposited']['units']}, paid out "
        f"{ledger['paid_out']['units']}, held {ledger['held']['units']} {symbol}"
    )
    settlement = payload["settlement"]
    if settlement is not None:
        at = "fallback (no final index 30 days after expiry)"
        if settlement["epoch"] is not None:
            at = f"BME{payload['n_days']} {settlement['value']} (epoch {settlement['epoch']})"
        lines.append(
            f"  settled     {at}: a long pays {settlement['long_payout_per_token']['units']}, "
            f"a short {settlement['short_payout_per_token']['units']} {symbol}"
        )
    return "\n".join(lines)
