"""Pure-math commands: ``index``, ``retarget``, ``token``, ``price``, ``hedge``.

They read nothing but their arguments (and a CSV file of retargets: ``index``
and ``price``, or the store for ``price --db``), so they double as a calculator
an auditor can use to recompute published values. Index values are BTC per TH/s
per day in every input and output (``mathargs``); ``price`` lives in
``pricecmd``.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from fractions import Fraction
from typing import Any

from oracle.bitcoin.difficulty import (
    DIFF1_TARGET,
    EPOCH_BLOCKS,
    calculate_next_work_required,
    core_get_difficulty,
    difficulty_from_bits,
    get_network,
    parse_bits,
)
from oracle.commands import pricecmd
from oracle.commands.mathargs import (
    INDEX_UNIT,
    days,
    decimal_arg,
    exact_text,
    index_text,
    int_arg,
    strike_text,
)
from oracle.commands.output import add_json_flag, emit
from oracle.errors import InputError
from oracle.index.bme import (
    DEFAULT_SUBSIDY_RULE,
    SUBSIDY_RULES,
    BmeValue,
    SubsidyRule,
    bme_series,
    format_decimal,
    format_scientific,
)
from oracle.index.csvfile import bundled_sample_path, read_history
from oracle.index.pricing import hedge
from oracle.index.tokens import parse_token, payout_at_btc_index

#: Settlement opens this long after expiry (the seed's rule; DESIGN.md "Position tokens").
SETTLEMENT_DELAY = timedelta(days=1)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("index", help="BME_N indices from a CSV of retargets")
    p.add_argument(
        "--input",
        metavar="FILE",
        help="CSV: height, bits|difficulty[, time] (default: the bundled mainnet retargets)",
    )
    p.add_argument("--days", default="14,28,84", help="comma-separated N values (multiples of 14)")
    p.add_argument(
        "--subsidy-rule",
        choices=SUBSIDY_RULES,
        default=DEFAULT_SUBSIDY_RULE,
        help="how an epoch holding a halving enters K_e: block-weighted mean subsidy (the "
        "oracle's, the default) or the first block's subsidy (the index authors' published "
        "history; for comparison only, never published)",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_index)

    p = subparsers.add_parser("retarget", help="next bits by Bitcoin Core's retarget rule")
    p.add_argument("--network", default="mainnet")
    p.add_argument("--prev-bits", required=True, help="bits of block 2016e-1 (hex)")
    p.add_argument(
        "--first-time",
        required=True,
        type=int_arg("--first-time"),
        help="header time of block 2016e-2016",
    )
    p.add_argument(
        "--last-time",
        required=True,
        type=int_arg("--last-time"),
        help="header time of block 2016e-1",
    )
    p.add_argument("--first-bits", help="bits of block 2016e-2016 (testnet4, BIP94)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_retarget)

    p = subparsers.add_parser("token", help="parse a position token; payouts at an index value")
    p.add_argument("name")
    p.add_argument(
        "--index",
        type=decimal_arg("--index"),
        help=f"index value in {INDEX_UNIT}, as `index` prints it (e.g. 2.8e-5)",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_token)

    pricecmd.register(subparsers)

    p = subparsers.add_parser(
        "hedge", help="tokens to hold to hedge a hashrate, the range it protects and its result"
    )
    p.add_argument(
        "--hashrate-th", required=True, type=decimal_arg("--hashrate-th"), help="TH/s to hedge"
    )
    p.add_argument("--token", required=True)
    p.add_argument("--price", required=True, type=decimal_arg("--price"), help="token price in BTC")
    add_json_flag(p)
    p.set_defaults(handler=cmd_hedge)


def _bme_json(value: BmeValue | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "value": index_text(value.value),
        "decimal": format_decimal(value.value, 18),
        "fixed": str(value.fixed),
    }


def cmd_index(args: argparse.Namespace) -> int:
    n_values = days(args.days)
    rule: SubsidyRule = args.subsidy_rule
    path = args.input or bundled_sample_path()
    history = read_history(path)
    series = {n: bme_series(n, history, rule) for n in n_values}
    rows = []
    lines = []
    if rule != DEFAULT_SUBSIDY_RULE:
        lines.append(
            f"# subsidy rule {rule}: the index authors' convention, for comparison; the "
            "oracle publishes block-weighted"
        )
    lines.append(
        "epoch  height   difficulty"
        + "".join(f"  BME{n} ({INDEX_UNIT} / 1e18 fixed)" for n in n_values)
    )
    for item in history:
        difficulty = Fraction(DIFF1_TARGET) / item.target
        values = {n: series[n].get(item.epoch) for n in n_values}
        rows.append(
            {
                "epoch": item.epoch,
                "height": item.epoch * EPOCH_BLOCKS,
                "time": item.time,
                "difficulty": format_decimal(difficulty, 8),
                "bme": {str(n): _bme_json(v) for n, v in values.items()},
            }
        )
        cells = "".join(
            f"  {format_scientific(v.value, 4)} / {v.fixed}" if v else "  -"
            for v in values.values()
        )
        lines.append(
            f"{item.epoch:5d}  {item.epoch * EPOCH_BLOCKS:7d}  {float(difficulty):.6e}{cells}"
        )
    payload = {
        "input": str(path),
        "days": n_values,
        "unit": INDEX_UNIT,
        "subsidy_rule": rule,
        "epochs": rows,
    }
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_retarget(args: argparse.Namespace) -> int:
    network = get_network(args.network)
    prev_bits = parse_bits(args.prev_bits)
    first_bits = parse_bits(args.first_bits) if args.first_bits else None
    if network.enforce_bip94 and first_bits is None:
        raise InputError(f"--first-bits is required on {network.name} (BIP94)")
    bits = calculate_next_work_required(
        network,
        last_bits=prev_bits,
        first_time=args.first_time,
        last_time=args.last_time,
        first_bits=first_bits,
    )
    difficulty = difficulty_from_bits(bits)
    payload = {
        "network": network.name,
        "bits": f"{bits:08x}",
        "difficulty": format_decimal(difficulty, 8),
        "difficulty_display": core_get_difficulty(bits),
        "actual_timespan_s": args.last_time - args.first_time,
    }
    emit(args, payload, f"bits {bits:08x}\ndifficulty {format_decimal(difficulty, 8)}")
    return 0


def _iso(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


def cmd_token(args: argparse.Namespace) -> int:
    token = parse_token(args.name)
    series = token.series
    payload: dict[str, Any] = {
        "name": token.name,
        "side": "long" if token.is_long else "short",
        "series": series.name,
        "n_days": token.n_days,
        "epochs": token.epochs,
        "unit": INDEX_UNIT,
        "floor": exact_text(token.floor_btc),
        "cap": exact_text(token.cap_btc),
        "floor_units": exact_text(token.floor),
        "cap_units": exact_text(token.cap),
        "name_unit_btc": "0.0000001",
        "floor_fixed": str(token.floor_fixed),
        "cap_fixed": str(token.cap_fixed),
        "multiplier": 10**6,
        "expiry": _iso(token.expiry),
        "expiry_ts": token.expiry_ts,
        "settlement_opens": _iso(token.expiry + SETTLEMENT_DELAY),
        "collateral_per_pair_btc": format_decimal(token.collateral_btc, 8),
        "collateral_per_pair_sat": token.pair_collateral_sat,
    }
    lines = [
        f"name: {token.name} ({payload['side']}; series {series.name})",
        f"index: BME{token.n_days} (mean of {token.epochs} epochs), in {INDEX_UNIT}",
        f"floor: {strike_text(token.floor_btc)} {INDEX_UNIT} "
        f"({payload['floor_units']} x 1E-7 in the name)",
        f"cap: {strike_text(token.cap_btc)} {INDEX_UNIT} "
        f"({payload['cap_units']} x 1E-7 in the name)",
        "multiplier: 1000000",
        f"expiry: {payload['expiry']}; settlement opens {payload['settlement_opens']}",
        f"collateral per pair: {payload['collateral_per_pair_btc']} BTC "
        f"({token.pair_collateral_sat} sat)",
    ]
    if args.index is not None:
        long_token, short_token = series.token("L"), series.token("S")
        long_btc = payout_at_btc_index(long_token, args.index)
        short_btc = payout_at_btc_index(short_token, args.index)
        payload["index"] = exact_text(args.index)
        payload["payout_long_btc"] = format_decimal(long_btc, 8)
        payload["payout_short_btc"] = format_decimal(short_btc, 8)
        clamped = ""
        if not token.floor_btc <= args.index <= token.cap_btc:
            clamped = " (outside [floor, cap]: settles at the nearer bound)"
        lines.append(
            f"payout at index {strike_text(args.index)} {INDEX_UNIT}{clamped}: "
            f"long {payload['payout_long_btc']} BTC, short {payload['payout_short_btc']} BTC"
        )
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_hedge(args: argparse.Namespace) -> int:
    token = parse_token(args.token)
    result = hedge(token, hashrate_th=args.hashrate_th, price_btc=args.price)
    verb = "cost" if token.is_long else "income"
    # Typed decimals in, so these are finite decimals: printed exactly.
    th_days = exact_text(result.th_days)
    index = f"BME{token.n_days}"
    if token.is_long:
        below = (
            f"{index} below Floor: the longs pay nothing, so the cost falls below the locked "
            f"amount by (Floor - {index}) x {th_days} TH/s-days"
        )
        above = (
            f"{index} above Cap: the longs pay at most Cap - Floor, so the cost exceeds the "
            f"locked amount by ({index} - Cap) x {th_days} TH/s-days"
        )
    else:
        below = (
            f"{index} below Floor: the shorts pay at most Cap - Floor, so the income falls "
            f"short of the locked amount by (Floor - {index}) x {th_days} TH/s-days"
        )
        above = (
            f"{index} above Cap: the shorts pay nothing, so the income exceeds the locked "
            f"amount by ({index} - Cap) x {th_days} TH/s-days"
        )
    payload = {
        "token": token.name,
        "unit": INDEX_UNIT,
        "tokens": format_decimal(result.tokens, 6),
        "tokens_exact": exact_text(result.tokens),
        "cost_btc": format_decimal(result.tokens * args.price, 8),
        "protected_range": {
            "floor": exact_text(token.floor_btc),
            "cap": exact_text(token.cap_btc),
        },
        "locked": verb,
        "locked_earnings": exact_text(result.earnings_btc),
        "locked_earnings_units": format_decimal(result.earnings_units, 8),
        "locked_earnings_btc_per_th_day": format_decimal(result.earnings_btc, 18),
        "locked_total_btc": format_decimal(result.total_btc, 8),
        "below_floor": below,
        "above_cap": above,
    }
    text = "\n".join(
        [
            f"hold {payload['tokens']} x {token.name} (cost {payload['cost_btc']} BTC)",
            f"protected range: BME{token.n_days} at expiry in [{strike_text(token.floor_btc)}, "
            f"{strike_text(token.cap_btc)}] {INDEX_UNIT}",
            f"inside it, locked-in {verb}: {payload['locked_total_btc']} BTC over "
            f"{token.n_days} days ({strike_text(result.earnings_btc)} {INDEX_UNIT})",
            below,
            above,
        ]
    )
    emit(args, payload, text)
    return 0
