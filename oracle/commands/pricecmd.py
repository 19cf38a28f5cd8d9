"""``bme-oracle price``: what a token's market price, or a path of difficulties, implies.

The token settles on BME_N in force at its expiry, so it is priced over that
window (``oracle.index.window``): the T epochs ending with the one in force at
the expiry, each with its own K_i, and D0 the difficulty just before them. The
epochs are found from the retarget times of a history: the bundled mainnet
retargets by default, ``--input FILE`` (the CSV ``index`` reads) or ``--db URL``
(the oracle's stored agreed epochs). ``--height`` names the window's last
epoch instead (any height in it).

``--path D1,...,Dk`` gives the difficulties of the window's last k epochs,
oldest first (k <= T); the T - k before them come from the history, so a
token whose window has begun is priced from what is known plus a prediction
of the rest (the seed's "decomposition pricing").
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.commands.mathargs import (
    INDEX_UNIT,
    decimal_arg,
    difficulties,
    index_text,
    int_arg,
    units_text,
)
from oracle.commands.output import add_json_flag, emit
from oracle.errors import InputError
from oracle.index.bme import EpochTarget, format_decimal, format_scientific
from oracle.index.csvfile import bundled_sample_path, read_history
from oracle.index.pricing import price_from_market, value_from_path
from oracle.index.tokens import Token, parse_token
from oracle.index.window import TokenWindow, WindowEpoch, token_window

_Q12 = Decimal("1e-12")
_Q4 = Decimal("1e-4")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("price", help="what a token price or a difficulty path implies")
    p.add_argument("name")
    p.add_argument("--price", type=decimal_arg("--price"), help="token price in BTC")
    p.add_argument(
        "--difficulty",
        type=decimal_arg("--difficulty"),
        help="D0, the difficulty of the epoch just before the token's window "
        "(default: looked up in the history)",
    )
    p.add_argument(
        "--path",
        help="predicted difficulties of the window's last epochs, oldest first, comma-separated "
        "(N/14 of them, or fewer: the earlier epochs come from the history)",
    )
    p.add_argument(
        "--height",
        type=int_arg("--height"),
        help="a height in the window's last epoch (default: the epoch in force at the expiry)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--input", metavar="FILE", help="retarget history CSV, as for `index` (default: bundled)"
    )
    source.add_argument("--db", metavar="URL", help="read the oracle's stored agreed history")
    add_json_flag(p)
    p.set_defaults(handler=cmd_price)


def load_history(args: argparse.Namespace) -> tuple[list[EpochTarget], str]:
    """The history the window and D0 come from, and a name for it."""
    if args.db:
        return _stored_history(args.db)
    path = args.input or bundled_sample_path()
    return read_history(path), ("bundled mainnet retargets" if not args.input else str(path))


def _stored_history(url: str) -> tuple[list[EpochTarget], str]:
    """Agreed mainnet epochs from the store (imported here: the other math commands never
    load asyncio or SQLAlchemy)."""
    import asyncio

    from oracle.config import redact_url
    from oracle.store.repository import open_repository
    from oracle.store.session import validate_url

    async def read() -> list[EpochTarget]:
        repository = await open_repository(validate_url(url))
        try:
            agreed = await repository.agreed_history("mainnet")
        finally:
            await repository.close()
        return [EpochTarget.from_bits(item.epoch, item.bits, item.time) for item in agreed]

    history = asyncio.run(read())
    if not history:
        raise InputError(f"the store at {redact_url(url)} holds no agreed mainnet epochs")
    return history, f"store {redact_url(url)}"


def cmd_price(args: argparse.Namespace) -> int:
    token = parse_token(args.name)
    if args.path is not None and (args.price is not None or args.difficulty is not None):
        raise InputError("give either --path, or --price (with an optional --difficulty)")
    if args.path is None and args.price is None:
        raise InputError("give --price P (the token's price in BTC) or --path D1,D2,...")
    history, source = load_history(args)
    last_epoch = None if args.height is None else args.height // EPOCH_BLOCKS
    window = token_window(token.n_days, token.expiry_ts, history, last_epoch=last_epoch)
    if args.path is not None:
        return _price_path(args, token, window, source)
    return _price_market(args, token, window, source)


def _price_path(args: argparse.Namespace, token: Token, window: TokenWindow, source: str) -> int:
    predicted = difficulties(args.path)
    epochs = window.epochs
    if len(predicted) > len(epochs):
        raise InputError(
            f"{token.name} averages {len(epochs)} epoch(s) ({_span(window)}); "
            f"the path has {len(predicted)} difficulties"
        )
    known = epochs[: len(epochs) - len(predicted)]
    path: list[Fraction] = []
    missing = []
    for item in known:
        if item.difficulty is None:
            missing.append(item.epoch)
        else:
            path.append(item.difficulty)
    if missing:
        raise InputError(
            f"the path gives the last {len(predicted)} of the {len(epochs)} epochs "
            f"{_span(window)}; epochs {missing[0]}..{missing[-1]} are not in the history "
            f"({source}): give all {len(epochs)} difficulties"
        )
    path += predicted
    result = value_from_path(token, path=path, ks=window.ks)
    origins = ["history"] * len(known) + ["path"] * len(predicted)
    side = "long" if token.is_long else "short"
    payload = _window_json(token, window, source) | {
        "epochs": [
            _epoch_json(item) | {"difficulty": format_decimal(d, 4), "difficulty_from": origin}
            for item, d, origin in zip(epochs, path, origins, strict=True)
        ],
        "index": index_text(result.index_btc),
        "index_btc": format_decimal(result.index_btc, 18),
        "index_units": format_decimal(result.index_units, 8),
        "value_btc": format_decimal(result.value_btc, 8),
    }
    rows = [
        _epoch_line(item) + f"  {format_scientific(d, 6)} ({origin})"
        for item, d, origin in zip(epochs, path, origins, strict=True)
    ]
    text = "\n".join(
        [
            *_window_lines(token, window, source),
            "epoch  height   retarget time (UTC)     K_i          difficulty",
            *rows,
            f"index {index_text(result.index_btc)} {INDEX_UNIT} "
            f"({units_text(result.index_units)} x 1E-7, the unit of the name)",
            f"{side} value {format_decimal(result.value_btc, 8)} BTC per token",
        ]
    )
    emit(args, payload, text)
    return 0


def _price_market(args: argparse.Namespace, token: Token, window: TokenWindow, source: str) -> int:
    d0 = args.difficulty
    d0_from = "--difficulty"
    if d0 is None:
        d0, d0_from = window.d0, source
        if d0 is None:
            raise InputError(
                f"D0 is unknown: epoch {window.before.epoch}, the one before the window "
                f"{_span(window)}, is not in the history ({source}); give --difficulty"
            )
    elif d0 <= 0:
        raise InputError(f"--difficulty must be positive, got {d0}")
    implied = price_from_market(token, price_btc=args.price, d0=d0, ks=window.ks)
    percent = (implied.growth_rate * 100).quantize(_Q4)
    payload = _window_json(token, window, source) | {
        "epochs": [_epoch_json(item) for item in window.epochs],
        "d0": {
            "epoch": window.before.epoch,
            "difficulty": format_decimal(d0, 4),
            "from": d0_from,
        },
        "implied_earnings": index_text(implied.earnings_btc),
        "implied_earnings_btc": format_decimal(implied.earnings_btc, 18),
        "implied_earnings_units": format_decimal(implied.earnings_units, 8),
        "implied_difficulty": format_decimal(implied.difficulty, 4),
        "implied_growth_rate": format(implied.growth_rate.quantize(_Q12), "f"),
    }
    text = "\n".join(
        [
            *_window_lines(token, window, source),
            f"implied earnings {index_text(implied.earnings_btc)} {INDEX_UNIT} "
            f"({units_text(implied.earnings_units)} x 1E-7)",
            f"implied difficulty {format_scientific(implied.difficulty, 6)} "
            f"(constant over epochs {_span(window)})",
            f"implied difficulty growth rate {percent}% per epoch from D0 "
            f"{format_scientific(d0, 6)} (epoch {window.before.epoch}, {d0_from})",
        ]
    )
    emit(args, payload, text)
    return 0


def _span(window: TokenWindow) -> str:
    return f"{window.first_epoch}..{window.last_epoch}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _window_json(token: Token, window: TokenWindow, source: str) -> dict[str, Any]:
    return {
        "name": token.name,
        "unit": INDEX_UNIT,
        "expiry": _iso(token.expiry_ts),
        "history": source,
        "window": {
            "first_epoch": window.first_epoch,
            "last_epoch": window.last_epoch,
            "last_epoch_from": "--height" if window.last_epoch_given else "expiry",
            "times_known_to_epoch": window.anchor_epoch,
        },
    }


def _epoch_json(item: WindowEpoch) -> dict[str, Any]:
    return {
        "epoch": item.epoch,
        "height": item.height,
        "time": item.time,
        "time_estimated": item.time_estimated,
        "k": format_decimal(item.k, 6),
    }


def _epoch_line(item: WindowEpoch) -> str:
    when = "unknown" if item.time is None else _iso(item.time)
    mark = " (est.)" if item.time_estimated else "       "
    return f"{item.epoch:5d}  {item.height:7d}  {when}{mark}  {format_scientific(item.k, 6)}"


def _window_lines(token: Token, window: TokenWindow, source: str) -> list[str]:
    last = window.epochs[-1]
    how = (
        "given by --height"
        if window.last_epoch_given
        else f"in force at the expiry {_iso(token.expiry_ts)}"
    )
    estimate = ""
    if last.time_estimated:
        estimate = (
            f"; retarget times after epoch {window.anchor_epoch} estimated at 600 s per block"
        )
    return [
        f"{token.name}: BME{token.n_days} over epochs {_span(window)} "
        f"(epoch {last.epoch} {how}; history: {source}{estimate})"
    ]
