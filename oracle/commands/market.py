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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from oracle.commands.chain import address, chain_config, evm, fees, load_sender
from oracle.commands.output import add_json_flag, emit
from oracle.config import Config
from oracle.errors import ConfigError, InputError
from oracle.index.tokens import Series, parse_series
from oracle.market.present import (
    STATE_NAMES,
    STATE_OPEN,
    TOKEN_DECIMALS,
    amount_json,
    format_units,
    iso,
    parse_amount,
    series_text,
)
from oracle.market.reads import (
    Erc20,
    balances,
    balances_text,
    creation_collateral,
    describe,
    find_series,
    held_tokens,
    plan_settlement,
    series_exists,
)

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
    series: Series | None

    @property
    def named(self) -> Series:
        """The series the command names (every command but ``status`` requires one)."""
        assert self.series is not None  # argparse requires SERIES for them
        return self.series

    async def find(self, market: Any) -> Any:
        """The named series on the market (``--collateral`` picks among same-named ones)."""
        return await find_series(market, self.named.series_name, self.collateral)


def _setup(args: argparse.Namespace) -> _Setup:
    """Everything checked before any I/O: names, addresses, settings."""
    series = parse_series(args.series) if getattr(args, "series", None) else None
    collateral = address(args.collateral, "--collateral") if args.collateral else None
    market = address(args.market, "--market") if args.market else None
    config = chain_config(args)
    market = market or config.market.address
    if not market:
        raise ConfigError("no market: --market or market.address ([market] in the config)")
    return _Setup(config, market, collateral, series)


# ------------------------------------------------------------------------------ commands


def cmd_create(args: argparse.Namespace) -> int:
    setup = _setup(args)
    series = setup.named
    chosen = setup.collateral or setup.config.market.collateral or None
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        from oracle.market.chain import series_id

        async with _market(setup) as (w3, market):
            collateral = await creation_collateral(market, chosen)
            identifier = series_id(
                n_days=series.n_days,
                floor=series.floor_fixed,
                cap=series.cap_fixed,
                expiry=series.expiry_ts,
                collateral=collateral,
            )
            if await series_exists(market, identifier):
                raise InputError(
                    f"series {series.series_name} with collateral {collateral} exists already "
                    f"(id 0x{identifier.hex()})"
                )
            now = await _chain_time(w3)
            if series.expiry_ts <= now:
                raise InputError(
                    f"series {series.series_name}: its expiry {iso(series.expiry_ts)} is not "
                    f"after the chain's time {iso(now)}"
                )
            created = await market.create_series(
                n_days=series.n_days,
                floor=series.floor_fixed,
                cap=series.cap_fixed,
                expiry=series.expiry_ts,
                collateral=collateral,
                sender=sender,
            )
            return await _after_sending(w3, market, created)

    payload = asyncio.run(run())
    _emit_sent(args, payload, f"created {payload['name']}\n" + series_text(payload))
    return 0


def cmd_mint(args: argparse.Namespace) -> int:
    setup = _setup(args)
    amount = parse_amount(args.amount, TOKEN_DECIMALS, "--amount")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with _market(setup) as (w3, market):
            info = await setup.find(market)
            _require_open(info, "mint")
            token = Erc20(w3, info.collateral)
            meta = await token.describe()
            needed = await market.collateral_for(info.series_id, amount)
            held = await token.balance_of(sender.address)
            if held < needed:
                raise InputError(
                    f"--amount {args.amount}: minting needs "
                    f"{format_units(needed, meta.decimals)} {meta.symbol} of collateral; "
                    f"{sender.address} holds {format_units(held, meta.decimals)}"
                )
            paid = await market.mint(info.series_id, amount, sender=sender)
            payload = await _after_sending(w3, market, info.series_id, sender.address)
            payload["minted"] = format_units(amount, TOKEN_DECIMALS)
            payload["collateral_in"] = amount_json(paid, meta.decimals)
            return payload

    payload = asyncio.run(run())
    _emit_sent(
        args,
        payload,
        f"minted {payload['minted']} {payload['long_token']['name']} + {payload['minted']} "
        f"{payload['short_token']['name']} for {payload['collateral_in']['units']} "
        f"{payload['collateral']['symbol']}\n" + balances_text(payload["balances"]),
    )
    return 0


def cmd_redeem(args: argparse.Namespace) -> int:
    setup = _setup(args)
    every = args.amount.strip() == ALL
    amount = None if every else parse_amount(args.amount, TOKEN_DECIMALS, "--amount")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with _market(setup) as (w3, market):
            info = await setup.find(market)
            _require_open(info, "redeem")
            longs, shorts = await held_tokens(w3, info, sender.address)
            pairs = min(longs, shorts)
            chosen = pairs if amount is None else amount
            if chosen == 0 or chosen > pairs:
                raise InputError(
                    f"--amount {args.amount}: {sender.address} holds "
                    f"{format_units(longs, TOKEN_DECIMALS)} long and "
                    f"{format_units(shorts, TOKEN_DECIMALS)} short tokens of {info.name}, so "
                    f"at most {format_units(pairs, TOKEN_DECIMALS)} pairs can be redeemed"
                )
            out = await market.redeem(info.series_id, chosen, sender=sender)
            payload = await _after_sending(w3, market, info.series_id, sender.address)
            payload["redeemed"] = format_units(chosen, TOKEN_DECIMALS)
            payload["collateral_out"] = amount_json(out, payload["collateral"]["decimals"])
            return payload

    payload = asyncio.run(run())
    _emit_sent(
        args,
        payload,
        f"redeemed {payload['redeemed']} pairs of {payload['name']} for "
        f"{payload['collateral_out']['units']} {payload['collateral']['symbol']}\n"
        + balances_text(payload["balances"]),
    )
    return 0


def cmd_settle(args: argparse.Namespace) -> int:
    setup = _setup(args)
    if args.epoch is not None and args.epoch < 0:
        raise InputError(f"--epoch must be an epoch number >= 0, got {args.epoch}")
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with _market(setup) as (w3, market):
            info = await setup.find(market)
            _require_open(info, "settle")
            plan = await plan_settlement(
                w3, await market.oracle(), info, now=await _chain_time(w3), epoch=args.epoch
            )
            if plan.epoch is None:
                _value, _epoch, kind = await market.settle(info.series_id, sender=sender)
            else:
                _value, _epoch, kind = await market.settle_early(
                    info.series_id, plan.epoch, sender=sender
                )
            payload = await _after_sending(w3, market, info.series_id)
            payload["settled_by"] = kind
            return payload

    payload = asyncio.run(run())
    how = {
        "final": "at its expiry (the oracle's bmeAtFinal)",
        "early": "early, at a barrier (the oracle's bmeFinal)",
        "fallback": "in fallback: no final index 30 days after expiry",
    }.get(payload["settled_by"], payload["settled_by"])
    _emit_sent(args, payload, f"settled {how}\n" + series_text(payload))
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    setup = _setup(args)
    wanted = {
        side: None if text.strip() == ALL else parse_amount(text, TOKEN_DECIMALS, f"--{side}")
        for side, text in (("long", args.long), ("short", args.short))
    }
    sender = load_sender(setup.config)

    async def run() -> dict[str, Any]:
        async with _market(setup) as (w3, market):
            info = await setup.find(market)
            if info.state == STATE_OPEN:
                raise InputError(
                    f"series {info.name} is not settled yet: claims open after "
                    f"`bme-oracle market settle {info.name}`"
                )
            held = dict(
                zip(("long", "short"), await held_tokens(w3, info, sender.address), strict=True)
            )
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
            paid = await market.claim(
                info.series_id, amounts["long"], amounts["short"], sender=sender
            )
            payload = await _after_sending(w3, market, info.series_id, sender.address)
            payload["claimed"] = {
                side: format_units(amount, TOKEN_DECIMALS) for side, amount in amounts.items()
            }
            payload["paid"] = amount_json(paid, payload["collateral"]["decimals"])
            return payload

    payload = asyncio.run(run())
    _emit_sent(
        args,
        payload,
        f"claimed {payload['claimed']['long']} long + {payload['claimed']['short']} short of "
        f"{payload['name']}: paid {payload['paid']['units']} {payload['collateral']['symbol']}\n"
        + balances_text(payload["balances"]),
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    setup = _setup(args)
    account = address(args.account, "--account") if args.account else None

    async def run() -> dict[str, Any]:
        async with _market(setup) as (w3, market):
            if setup.series is not None:
                info = await setup.find(market)
                payload = await describe(w3, market, info)
                if account:
                    payload["balances"] = await balances(w3, info, account)
                return payload
            every = await market.list_series()
            return {
                "market": market.address,
                "oracle": await market.oracle(),
                "collaterals": await market.collateral_allowlist(),
                "chain_time": await _chain_time(w3),
                "series": [await describe(w3, market, info) for info in every],
            }

    payload = asyncio.run(run())
    if setup.series is not None:
        text = series_text(payload)
        if "balances" in payload:
            text += "\n" + balances_text(payload["balances"])
    else:
        head = (
            f"market {payload['market']} (oracle {payload['oracle']}), chain time "
            f"{iso(payload['chain_time'])}"
        )
        body = [series_text(s) for s in payload["series"]] or [
            "no series yet (`bme-oracle market create SERIES`)"
        ]
        text = "\n\n".join([head, *body])
    emit(args, payload, text)
    return 0


async def _after_sending(
    w3: Any, market: Any, series_id: bytes, account: str | None = None
) -> dict[str, Any]:
    """The series as the chain holds it after this command's transactions (re-read: the
    state, ledger and supplies moved), ``account``'s holdings if given, and the hashes of
    the transactions sent."""
    info = await market.series_info(series_id)
    payload = await describe(w3, market, info)
    if account is not None:
        payload["balances"] = await balances(w3, info, account)
    payload["transactions"] = list(market.sent)
    return payload


def _emit_sent(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    """``emit`` for a command that sent transactions: their hashes close the text (JSON has
    them under ``transactions``), so every change on chain can be looked up afterwards."""
    sent = payload.get("transactions") or []
    emit(args, payload, text + "".join(f"\ntransaction {tx_hash}" for tx_hash in sent))


# ------------------------------------------------------------------------------ helpers


@asynccontextmanager
async def _market(setup: _Setup) -> AsyncIterator[tuple[Any, Any]]:
    """The EVM connection (checked to be ``publisher.chain_id``) and the market on it."""
    from oracle.market.chain import MarketContract

    async with evm(setup.config) as w3:
        market = MarketContract(w3, setup.market, **fees(setup.config))
        if not await w3.eth.get_code(market.address):
            raise InputError(f"no contract at the market address {market.address}")
        yield w3, market


async def _chain_time(w3: Any) -> int:
    """The time the next transaction sees (``evm`` reads the pending block on dev chains)."""
    return int((await w3.eth.get_block(w3.eth.default_block))["timestamp"])


def _require_open(info: Any, what: str) -> None:
    if info.state != STATE_OPEN:
        raise InputError(
            f"series {info.name} is {STATE_NAMES.get(info.state, info.state)}: {what} is only "
            "possible before settlement (claim the tokens instead)"
        )
