"""``bme-oracle market create|mint|redeem|settle|claim|status``: position tokens on a BmeMarket.

The user's side of the seed's contract stack. Settings come from ``--config FILE``
(``[market] address``, ``collateral``; ``[publisher] rpc_url``, ``chain_id``,
``sender_keystore_file``, ``keystore_password_file``) and ``ORACLE_*`` variables;
``--market``, ``--rpc-url`` and ``--sender-keystore`` override them. Transactions are
signed with the sender keystore, as ``contract`` and ``publish`` do
(``oracle.commands.chain``).

Inputs are checked before anything is sent, and a refusal names what is wrong (exit
2): a series is named as the tokens are (``BME14-4.85-5.4-261215``, or either token's
name; ``5.40`` is read as ``5.4``), amounts are exact decimals of tokens (18 decimals:
``--amount 0.0084`` is 8.4e15 base units, never a float), the collateral must be on
the market's allowlist, and what the contract would refuse (a settled series, a
settlement before it opens, too little collateral or too few tokens) is explained in
words before a transaction could revert. Index values are shown in BTC per TH/s per
day with significant digits (``5.032E-07``), collateral in the token's own units.

The chain calls are ``oracle.market.chain``; the shapes shown (text and ``--json``)
are ``oracle.market.present``, which the API's ``/v1/markets`` shares.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from oracle.commands.chain import address, chain_config, evm, fees, load_sender, when
from oracle.commands.output import add_json_flag, emit
from oracle.config import Config
from oracle.errors import ConfigError, InputError
from oracle.market.present import (
    STATE_NAMES,
    STATE_OPEN,
    TOKEN_DECIMALS,
    format_units,
    parse_amount,
    series_text,
)
from oracle.market.reads import Erc20, balances, balances_text, describe

ALL = "all"


def register(subparsers: Any) -> None:
    market = subparsers.add_parser(
        "market",
        help="position tokens on a BmeMarket: create, mint, redeem, settle, claim, status",
        description="Long/short position tokens on BME_N, fully collateralised, settled "
        "from the oracle's final index (docs/consumers.md).",
    )
    commands = market.add_subparsers(dest="market_command", metavar="SUBCOMMAND")
    commands.required = True

    p = commands.add_parser("create", help="create a series (deploys its long and short tokens)")
    _series_arg(p)
    _common(p, sender=True)
    p.set_defaults(handler=cmd_create)

    p = commands.add_parser("mint", help="lock collateral, receive long + short tokens")
    _series_arg(p)
    p.add_argument(
        "--amount", required=True, metavar="TOKENS", help="pairs to mint, e.g. 1 or 0.0084"
    )
    _common(p, sender=True)
    p.set_defaults(handler=cmd_mint)

    p = commands.add_parser("redeem", help="return long + short tokens for their collateral")
    _series_arg(p)
    p.add_argument(
        "--amount", required=True, metavar="TOKENS|all", help="pairs to redeem, or all you hold"
    )
    _common(p, sender=True)
    p.set_defaults(handler=cmd_redeem)

    p = commands.add_parser(
        "settle", help="settle a series (after expiry + 1 day, or early at Floor/Cap)"
    )
    _series_arg(p)
    p.add_argument(
        "--epoch",
        type=int,
        metavar="E",
        help="settle early at this epoch (default: settle at expiry when it is open, else "
        "the latest final epoch at or beyond Floor or Cap)",
    )
    _common(p, sender=True)
    p.set_defaults(handler=cmd_settle)

    p = commands.add_parser("claim", help="burn settled tokens for their payout")
    _series_arg(p)
    p.add_argument("--long", default=ALL, metavar="TOKENS|all", help="longs (default: all)")
    p.add_argument("--short", default=ALL, metavar="TOKENS|all", help="shorts (default: all)")
    _common(p, sender=True)
    p.set_defaults(handler=cmd_claim)

    p = commands.add_parser("status", help="the market's series, or one series and balances")
    p.add_argument("series", nargs="?", metavar="SERIES", help="one series (default: all)")
    p.add_argument("--account", metavar="ADDRESS", help="show this account's balances")
    _common(p, sender=False)
    p.set_defaults(handler=cmd_status)


def _series_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "series",
        metavar="SERIES",
        help="series or token name: BME<N>-<Floor>-<Cap>-<YYMMDD>, strikes in 1E-7 BTC per "
        "TH/s per day (e.g. BME14-4.85-5.4-261215 or LBME14-4.85-5.4-261215)",
    )


def _common(parser: argparse.ArgumentParser, *, sender: bool) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--rpc-url", metavar="URL", help="EVM JSON-RPC URL (default: config)")
    parser.add_argument("--market", metavar="ADDRESS", help="market (default: market.address)")
    parser.add_argument(
        "--collateral",
        metavar="ADDRESS",
        help="collateral token (create: default market.collateral; others: pick among "
        "series of the same name)",
    )
    if sender:
        parser.add_argument(
            "--sender-keystore", metavar="FILE", help="keystore that signs (default: config)"
        )
    add_json_flag(parser)


@dataclasses.dataclass(frozen=True)
class _Setup:
    config: Config
    market: str
    collateral: str | None
    series: Any  # oracle.index.tokens.Series


def _setup(args: argparse.Namespace) -> _Setup:
    """Everything checked before any I/O: names, addresses, settings."""
    from oracle.index.tokens import parse_series

    series = parse_series(args.series) if getattr(args, "series", None) else None
    collateral = address(args.collateral, "--collateral") if args.collateral else None
    market = address(args.market, "--market") if args.market else None
    config = chain_config(args)
    market = market or config.market.address
    if not market:
        raise ConfigError("no market: --market or market.address ([market] in the config)")
    return _Setup(config, market, collateral, series)


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# ------------------------------------------------------------------------------ commands


def cmd_create(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract

    setup = _setup(args)
    series = setup.series
    collateral = setup.collateral or setup.config.market.collateral
    if not collateral:
        raise ConfigError("no collateral: --collateral or market.collateral")
    collateral = address(collateral, "--collateral")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            await _check_market(market)
            if not await market.is_allowed_collateral(collateral):
                raise InputError(
                    f"--collateral {collateral} is not on the allowlist of the market "
                    f"{market.address} (collateral tokens are fixed at its deployment)"
                )
            series_id = await market.series_id(
                series.n_days, series.floor_fixed, series.cap_fixed, series.expiry_ts, collateral
            )
            existing = await market.series_info(series_id)
            if existing is not None:
                raise InputError(
                    f"series {series.series_name} with collateral {collateral} exists already "
                    f"(id 0x{series_id.hex()})"
                )
            now = await _chain_time(w3)
            if series.expiry_ts <= now:
                raise InputError(
                    f"series {series.series_name}: its expiry {when(series.expiry_ts)} is not "
                    f"after the chain's time {when(now)}"
                )
            receipt = await market.create_series(
                sender,
                series.n_days,
                series.floor_fixed,
                series.cap_fixed,
                series.expiry_ts,
                collateral,
                **fees(setup.config),
            )
            info = await market.series_info(series_id)
            assert info is not None
            return await _described(w3, market, info, tx_hash=_tx(receipt))

    payload = _run(run())
    emit(
        args,
        payload,
        f"created {payload['name']} (id {payload['id']}) in tx {payload['tx_hash']}\n"
        + series_text(payload),
    )
    return 0


def cmd_mint(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract

    setup = _setup(args)
    amount = parse_amount(args.amount, TOKEN_DECIMALS, "--amount")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            info = await _find(market, setup)
            _require_open(info, "mint")
            token = Erc20(w3, info.collateral)
            meta = await token.describe()
            pair = await market.pair_collateral(info.id)
            needed = -(-pair * amount // 10**TOKEN_DECIMALS)  # the contract rounds up
            held = await token.balance_of(sender.address)
            if held < needed:
                raise InputError(
                    f"--amount {args.amount}: minting needs "
                    f"{format_units(needed, meta.decimals)} {meta.symbol} of collateral; "
                    f"{sender.address} holds {format_units(held, meta.decimals)}"
                )
            receipt = await market.mint(sender, info.id, amount, **fees(setup.config))
            paid = held - await token.balance_of(sender.address)
            payload = await _described(w3, market, info, tx_hash=_tx(receipt))
            payload["minted"] = format_units(amount, TOKEN_DECIMALS)
            payload["collateral_in"] = str(paid)
            payload["collateral_in_units"] = format_units(paid, meta.decimals)
            payload["balances"] = await balances(w3, info, sender.address)
            return payload

    payload = _run(run())
    emit(
        args,
        payload,
        f"minted {payload['minted']} {payload['long_token']['name']} + "
        f"{payload['minted']} {payload['short_token']['name']} for "
        f"{payload['collateral_in_units']} {payload['collateral']['symbol']} in tx "
        f"{payload['tx_hash']}\n" + balances_text(payload["balances"]),
    )
    return 0


def cmd_redeem(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract

    setup = _setup(args)
    amount = None if args.amount.strip() == ALL else parse_amount(args.amount, 18, "--amount")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            info = await _find(market, setup)
            _require_open(info, "redeem")
            longs, shorts = await _held(w3, info, sender.address)
            pairs = min(longs, shorts)
            chosen = pairs if amount is None else amount
            if chosen == 0 or chosen > pairs:
                raise InputError(
                    f"--amount {args.amount}: {sender.address} holds "
                    f"{format_units(longs, 18)} long and {format_units(shorts, 18)} short "
                    f"tokens, so at most {format_units(pairs, 18)} pairs can be redeemed"
                )
            token = Erc20(w3, info.collateral)
            meta = await token.describe()
            before = await token.balance_of(sender.address)
            receipt = await market.redeem(sender, info.id, chosen, **fees(setup.config))
            out = await token.balance_of(sender.address) - before
            payload = await _described(w3, market, info, tx_hash=_tx(receipt))
            payload["redeemed"] = format_units(chosen, TOKEN_DECIMALS)
            payload["collateral_out"] = str(out)
            payload["collateral_out_units"] = format_units(out, meta.decimals)
            payload["balances"] = await balances(w3, info, sender.address)
            return payload

    payload = _run(run())
    emit(
        args,
        payload,
        f"redeemed {payload['redeemed']} pairs of {payload['name']} for "
        f"{payload['collateral_out_units']} {payload['collateral']['symbol']} in tx "
        f"{payload['tx_hash']}\n" + balances_text(payload["balances"]),
    )
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract
    from oracle.market.reads import plan_settlement

    setup = _setup(args)
    if args.epoch is not None and args.epoch < 0:
        raise InputError(f"--epoch must be an epoch number >= 0, got {args.epoch}")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            info = await _find(market, setup)
            _require_open(info, "settle")
            plan = await plan_settlement(
                w3, await market.oracle(), info, now=await _chain_time(w3), epoch=args.epoch
            )
            if plan.epoch is None:
                receipt = await market.settle(sender, info.id, **fees(setup.config))
            else:
                receipt = await market.settle_early(
                    sender, info.id, plan.epoch, **fees(setup.config)
                )
            settled = await market.series_info(info.id)
            assert settled is not None
            payload = await _described(w3, market, settled, tx_hash=_tx(receipt))
            payload["settled_by"] = plan.kind
            return payload

    payload = _run(run())
    how = {
        "final": "at its expiry (bmeAtFinal)",
        "early": "early, at a barrier (bmeFinal)",
        "fallback": "in fallback: no final index 30 days after expiry",
    }[payload["settled_by"]]
    emit(args, payload, f"settled {how} in tx {payload['tx_hash']}\n" + series_text(payload))
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract

    setup = _setup(args)
    wanted = {
        side: None if text.strip() == ALL else parse_amount(text, TOKEN_DECIMALS, f"--{side}")
        for side, text in (("long", args.long), ("short", args.short))
    }
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            info = await _find(market, setup)
            if info.state == STATE_OPEN:
                raise InputError(
                    f"series {info.name} is not settled yet: claims open after "
                    f"`bme-oracle market settle {info.name}`"
                )
            held = dict(zip(("long", "short"), await _held(w3, info, sender.address), strict=True))
            amounts = {}
            for side, amount in wanted.items():
                chosen = held[side] if amount is None else amount
                if chosen > held[side]:
                    raise InputError(
                        f"--{side} {getattr(args, side)}: {sender.address} holds only "
                        f"{format_units(held[side], TOKEN_DECIMALS)} {side} tokens of {info.name}"
                    )
                amounts[side] = chosen
            if not amounts["long"] and not amounts["short"]:
                raise InputError(f"{sender.address} holds no tokens of {info.name} to claim")
            token = Erc20(w3, info.collateral)
            meta = await token.describe()
            before = await token.balance_of(sender.address)
            receipt = await market.claim(
                sender, info.id, amounts["long"], amounts["short"], **fees(setup.config)
            )
            paid = await token.balance_of(sender.address) - before
            settled = await market.series_info(info.id)
            assert settled is not None
            payload = await _described(w3, market, settled, tx_hash=_tx(receipt))
            payload["claimed_long"] = format_units(amounts["long"], TOKEN_DECIMALS)
            payload["claimed_short"] = format_units(amounts["short"], TOKEN_DECIMALS)
            payload["paid"] = str(paid)
            payload["paid_units"] = format_units(paid, meta.decimals)
            payload["balances"] = await balances(w3, settled, sender.address)
            return payload

    payload = _run(run())
    emit(
        args,
        payload,
        f"claimed {payload['claimed_long']} long + {payload['claimed_short']} short of "
        f"{payload['name']}: paid {payload['paid_units']} {payload['collateral']['symbol']} in "
        f"tx {payload['tx_hash']}\n" + balances_text(payload["balances"]),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from oracle.market.chain import MarketContract

    setup = _setup(args)
    account = address(args.account, "--account") if args.account else None

    async def run() -> dict[str, Any]:
        async with evm(setup.config) as w3:
            market = MarketContract(w3, setup.market)
            await _check_market(market)
            if setup.series is not None:
                info = await _find(market, setup)
                payload = await _described(w3, market, info)
                if account:
                    payload["balances"] = await balances(w3, info, account)
                return payload
            series = [await _described(w3, market, info) for info in await market.list_series()]
            return {
                "market": market.address,
                "oracle": await market.oracle(),
                "chain_time": await _chain_time(w3),
                "series": series,
            }

    payload = _run(run())
    if setup.series is not None:
        text = series_text(payload)
        if "balances" in payload:
            text += "\n" + balances_text(payload["balances"])
    elif payload["series"]:
        text = f"market {payload['market']} (oracle {payload['oracle']})\n\n" + "\n\n".join(
            series_text(s) for s in payload["series"]
        )
    else:
        text = f"market {payload['market']}: no series yet (`bme-oracle market create`)"
    emit(args, payload, text)
    return 0


# ------------------------------------------------------------------------------ helpers


async def _chain_time(w3: Any) -> int:
    """The time the next transaction sees (``evm`` reads the pending block on dev chains)."""
    return int((await w3.eth.get_block(w3.eth.default_block))["timestamp"])


async def _check_market(market: Any) -> None:
    if not await market.w3.eth.get_code(market.address):
        raise InputError(f"no contract at the market address {market.address}")


async def _find(market: Any, setup: _Setup) -> Any:
    """The series named by the user (among those of ``--collateral``, when given)."""
    await _check_market(market)
    name = setup.series.series_name
    every = await market.list_series()
    found = [
        info
        for info in every
        if info.name == name and (setup.collateral is None or info.collateral == setup.collateral)
    ]
    if not found:
        known = ", ".join(sorted({info.name for info in every})[:10]) or "none yet"
        with_collateral = f" with collateral {setup.collateral}" if setup.collateral else ""
        raise InputError(
            f"unknown series {name}{with_collateral} on the market {market.address} "
            f"(its series: {known}); create it with `bme-oracle market create {name}`"
        )
    if len(found) > 1:
        raise InputError(
            f"several series are named {name} (collaterals "
            f"{', '.join(info.collateral for info in found)}): choose one with --collateral"
        )
    return found[0]


def _require_open(info: Any, what: str) -> None:
    if info.state != STATE_OPEN:
        raise InputError(
            f"series {info.name} is {STATE_NAMES.get(info.state, info.state)}: {what} is only "
            "possible before settlement (claim the tokens instead)"
        )


async def _held(w3: Any, info: Any, account: str) -> tuple[int, int]:
    longs, shorts = await asyncio.gather(
        Erc20(w3, info.long_token).balance_of(account),
        Erc20(w3, info.short_token).balance_of(account),
    )
    return longs, shorts


async def _described(
    w3: Any, market: Any, info: Any, *, tx_hash: str | None = None
) -> dict[str, Any]:
    payload = await describe(w3, market, info)
    if tx_hash is not None:
        payload["tx_hash"] = tx_hash
    return payload


def _tx(receipt: Any) -> str:
    tx_hash = receipt["transactionHash"]
    return tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
