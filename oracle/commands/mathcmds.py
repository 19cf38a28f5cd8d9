"""Pure-math commands: ``index``, ``retarget``, ``token``, ``price``, ``hedge``.

They read nothing but their arguments (and, for ``index``, one CSV file), so
they double as a calculator an auditor can use to recompute published values.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any

from oracle.bitcoin.difficulty import (
    EPOCH_BLOCKS,
    calculate_next_work_required,
    core_get_difficulty,
    difficulty_from_bits,
    get_network,
    parse_bits,
)
from oracle.commands.output import add_json_flag, emit
from oracle.errors import InputError
from oracle.index.bme import (
    BmeValue,
    bme_series,
    epochs_for_days,
    format_decimal,
    format_scientific,
    k_factor,
)
from oracle.index.csvfile import bundled_sample_path, read_history
from oracle.index.pricing import hedge, price_from_market, value_from_path
from oracle.index.tokens import parse_token, payout_btc, units_to_btc
from oracle.sources.checkpoints import last_checkpoint


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("index", help="BME_N indices from a CSV of retargets")
    p.add_argument(
        "--input",
        metavar="FILE",
        help="CSV: height, bits|difficulty[, time] (default: the bundled mainnet retargets)",
    )
    p.add_argument("--days", default="14,28,84", help="comma-separated N values (multiples of 14)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_index)

    p = subparsers.add_parser("retarget", help="next bits by Bitcoin Core's retarget rule")
    p.add_argument("--network", default="mainnet")
    p.add_argument("--prev-bits", required=True, help="bits of block 2016e-1 (hex)")
    p.add_argument(
        "--first-time",
        required=True,
        type=_int_arg("--first-time"),
        help="header time of block 2016e-2016",
    )
    p.add_argument(
        "--last-time",
        required=True,
        type=_int_arg("--last-time"),
        help="header time of block 2016e-1",
    )
    p.add_argument("--first-bits", help="bits of block 2016e-2016 (testnet4, BIP94)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_retarget)

    p = subparsers.add_parser("token", help="parse a position token; payouts at an index value")
    p.add_argument("name")
    p.add_argument(
        "--index",
        type=_fraction_arg("--index"),
        help="index value in 1E-7 BTC per TH/s per day (the unit of Floor and Cap)",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_token)

    p = subparsers.add_parser("price", help="what a token price or a difficulty path implies")
    p.add_argument("name")
    p.add_argument("--price", type=_fraction_arg("--price"), help="token price in BTC")
    p.add_argument("--difficulty", type=_fraction_arg("--difficulty"), help="current difficulty D0")
    p.add_argument("--path", help="comma-separated predicted difficulties, one per epoch (N/14)")
    _add_height_arg(p)
    add_json_flag(p)
    p.set_defaults(handler=cmd_price)

    p = subparsers.add_parser(
        "hedge", help="tokens to hold to hedge a hashrate, and the income locked in"
    )
    p.add_argument("--hashrate-th", required=True, type=_fraction_arg("--hashrate-th"))
    p.add_argument("--token", required=True)
    p.add_argument(
        "--price", required=True, type=_fraction_arg("--price"), help="token price in BTC"
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_hedge)


def _add_height_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--height",
        type=_int_arg("--height"),
        help="height whose subsidy sets K (default: estimated at the token's expiry)",
    )


def _int_arg(flag: str) -> Any:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} must be a whole number, got {text!r}"
            ) from None

    return parse


def _fraction_arg(flag: str) -> Any:
    def parse(text: str) -> Fraction:
        try:
            return Fraction(text.strip())
        except (ValueError, ZeroDivisionError):
            raise argparse.ArgumentTypeError(
                f"{flag} must be a decimal number, got {text!r}"
            ) from None

    return parse


def _difficulties(text: str) -> list[Fraction]:
    """``--path D1,D2,...``: decimal numbers; an empty item (``1,2,``) is named, not guessed."""
    if not text.strip():
        raise InputError("--path: no difficulties given (comma-separated, e.g. 1.1e14,1.2e14)")
    values = []
    for i, part in enumerate(text.split(","), 1):
        if not part.strip():
            raise InputError(f"--path: difficulty #{i} is empty in {text!r}")
        try:
            values.append(Fraction(part.strip()))
        except (ValueError, ZeroDivisionError):
            raise InputError(
                f"--path: difficulty #{i} is not a decimal number: {part.strip()!r}"
            ) from None
    return values


def _days(text: str) -> list[int]:
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


def _bme_json(value: BmeValue | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"decimal": format_decimal(value.value, 18), "fixed": str(value.fixed)}


def cmd_index(args: argparse.Namespace) -> int:
    days = _days(args.days)
    path = args.input or bundled_sample_path()
    history = read_history(path)
    series = {n: bme_series(n, history) for n in days}
    rows = []
    lines = [
        "epoch  height   difficulty" + "".join(f"  BME{n} (decimal / 1e18 fixed)" for n in days)
    ]
    for item in history:
        difficulty = Fraction(0xFFFF << 208) / item.target
        values = {n: series[n].get(item.epoch) for n in days}
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
    emit(args, {"input": str(path), "days": days, "epochs": rows}, "\n".join(lines))
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


def cmd_token(args: argparse.Namespace) -> int:
    token = parse_token(args.name)
    payload: dict[str, Any] = {
        "name": token.name,
        "side": "long" if token.is_long else "short",
        "n_days": token.n_days,
        "epochs": epochs_for_days(token.n_days),
        "floor": token.floor,
        "cap": token.cap,
        "unit_btc": "0.0000001",
        "multiplier": 10**6,
        "expiry": token.expiry.isoformat().replace("+00:00", "Z"),
        "collateral_per_pair_btc": format_decimal(token.collateral_btc, 8),
    }
    lines = [f"{k}: {v}" for k, v in payload.items()]
    if args.index is not None:
        long_token = parse_token("L" + token.name[1:])
        short_token = parse_token("S" + token.name[1:])
        payload["index"] = format_decimal(args.index, 8)
        payload["payout_long_btc"] = format_decimal(payout_btc(long_token, args.index), 8)
        payload["payout_short_btc"] = format_decimal(payout_btc(short_token, args.index), 8)
        lines += [
            f"payout at index {payload['index']}: long {payload['payout_long_btc']} BTC, "
            f"short {payload['payout_short_btc']} BTC"
        ]
    emit(args, payload, "\n".join(lines))
    return 0


def _k_for(token_expiry_ts: int, height: int | None) -> tuple[int, Fraction]:
    if height is None:
        # anchored at the last bundled header: one block per 600 s before or after it
        anchor_height, anchor = last_checkpoint()
        height = max(0, anchor_height + (token_expiry_ts - anchor.time) // 600)
    return height, k_factor(height // EPOCH_BLOCKS)


def cmd_price(args: argparse.Namespace) -> int:
    token = parse_token(args.name)
    k_height, k = _k_for(int(token.expiry.timestamp()), args.height)
    base = {"name": token.name, "k_height": k_height, "k": format_decimal(k, 6)}
    if args.path is not None:
        if args.price is not None or args.difficulty is not None:
            raise InputError("give either --path, or --price with --difficulty")
        path = _difficulties(args.path)
        result = value_from_path(token, path=path, k=k)
        payload = base | {
            "index_btc": format_decimal(result.index_btc, 18),
            "index_units": format_decimal(result.index_units, 8),
            "value_btc": format_decimal(result.value_btc, 8),
        }
        text = (
            f"index {format_scientific(result.index_btc, 6)} BTC/TH/day "
            f"({format_decimal(result.index_units, 4)} x 1E-7)\n"
            f"token value {format_decimal(result.value_btc, 8)} BTC"
        )
        emit(args, payload, text)
        return 0
    if args.price is None or args.difficulty is None:
        raise InputError("give --price and --difficulty (or --path)")
    implied = price_from_market(token, price_btc=args.price, d0=args.difficulty, k=k)
    payload = base | {
        "implied_earnings_units": format_decimal(implied.earnings_units, 8),
        "implied_earnings_btc": format_decimal(implied.earnings_btc, 18),
        "implied_difficulty": format_decimal(implied.difficulty, 4),
        "implied_growth_rate": format(implied.growth_rate.quantize(_Q12), "f"),
    }
    text = (
        f"implied earnings {format_scientific(implied.earnings_btc, 6)} BTC per TH/s per day\n"
        f"implied difficulty {float(implied.difficulty):.6e}\n"
        f"implied difficulty growth rate {float(implied.growth_rate) * 100:.4f}% per epoch"
    )
    emit(args, payload, text)
    return 0


def cmd_hedge(args: argparse.Namespace) -> int:
    token = parse_token(args.token)
    result = hedge(token, hashrate_th=args.hashrate_th, price_btc=args.price)
    payload = {
        "token": token.name,
        "tokens": format_decimal(result.tokens, 6),
        "locked_earnings_units": format_decimal(result.earnings_units, 8),
        "locked_earnings_btc_per_th_day": format_decimal(units_to_btc(result.earnings_units), 18),
        "locked_total_btc": format_decimal(result.total_btc, 8),
        "cost_btc": format_decimal(result.tokens * args.price, 8),
    }
    verb = "income" if not token.is_long else "cost"
    text = (
        f"hold {payload['tokens']} x {token.name} (cost {payload['cost_btc']} BTC)\n"
        f"locked-in {verb}: {payload['locked_total_btc']} BTC over {token.n_days} days "
        f"({format_scientific(units_to_btc(result.earnings_units), 6)} BTC per TH/s per day)"
    )
    emit(args, payload, text)
    return 0


from decimal import Decimal  # noqa: E402  (used only for quantize)

_Q12 = Decimal("1e-12")
