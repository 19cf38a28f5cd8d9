"""Reads around a market series that the CLI and the API share: ERC-20 facts, the full
description of a series, and which settlement call would succeed now.

Why here and not in ``oracle.market.chain``: these combine several contracts (the
market, its tokens, the collateral and the oracle) into what a user asks ("what is
this series, what do I hold, can it settle and how"); the chain module binds one
contract each. Everything is read, nothing is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle.errors import InputError, PublishError
from oracle.market.present import (
    FALLBACK_DELAY_S,
    SETTLEMENT_DELAY_S,
    CollateralToken,
    SeriesLike,
    format_units,
    index_text,
    iso,
    series_json,
    strike_text,
)
from oracle.publish.contract import ContractReverted, OracleContract, revert_from_exception

#: The ERC-20 reads used here (every token involved is an OpenZeppelin ERC-20).
ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": [{"name": "account", "type": "address"}] if name == "balanceOf" else [],
        "outputs": [{"name": "", "type": kind}],
    }
    for name, kind in (
        ("balanceOf", "uint256"),
        ("totalSupply", "uint256"),
        ("decimals", "uint8"),
        ("symbol", "string"),
    )
]
#: How far back ``plan_settlement`` looks for an early-settlement epoch (about 10 years).
MAX_EARLY_SCAN = 260
#: The oracle's refusals that mean "no final value (yet)", with what they mean.
_NOT_FINAL = {
    "NoEpochAfter": "no retarget after that time is on the oracle yet",
    "EpochNotFinal": "the epoch after it is still in its challenge window",
    "EnforcedPause": "the oracle is paused",
    "NoEpochAtTime": "the oracle has no epoch at that time",
    "EpochMissing": "the oracle lacks an epoch of the index window",
}


class Erc20:
    """Reads of one ERC-20 token."""

    def __init__(self, w3: Any, where: str) -> None:
        self.address = to_checksum_address(where)
        self.contract = w3.eth.contract(address=self.address, abi=ERC20_ABI)

    async def _call(self, function: str, *args: Any) -> Any:
        try:
            return await getattr(self.contract.functions, function)(*args).call()
        except (ContractLogicError, Web3RPCError) as exc:
            reverted = revert_from_exception(exc)
            raise (reverted or PublishError(f"{function} on {self.address} failed")) from exc

    async def balance_of(self, account: str) -> int:
        return int(await self._call("balanceOf", to_checksum_address(account)))

    async def total_supply(self) -> int:
        return int(await self._call("totalSupply"))

    async def describe(self) -> CollateralToken:
        symbol, decimals = await asyncio.gather(self._call("symbol"), self._call("decimals"))
        return CollateralToken(self.address, str(symbol), int(decimals))


async def describe(w3: Any, market: Any, info: SeriesLike) -> dict[str, Any]:
    """``series_json`` of ``info``: with its collateral, pair collateral and supplies."""
    collateral, pair, long_supply, short_supply = await asyncio.gather(
        Erc20(w3, info.collateral).describe(),
        market.pair_collateral(info.series_id),
        Erc20(w3, info.long_token).total_supply(),
        Erc20(w3, info.short_token).total_supply(),
    )
    return series_json(
        info,
        collateral=collateral,
        pair_collateral=int(pair),
        long_supply=long_supply,
        short_supply=short_supply,
    )


async def balances(w3: Any, info: SeriesLike, account: str) -> dict[str, Any]:
    """What ``account`` holds of the series' tokens and collateral (exact decimals)."""
    longs, shorts, collateral, meta = await asyncio.gather(
        Erc20(w3, info.long_token).balance_of(account),
        Erc20(w3, info.short_token).balance_of(account),
        Erc20(w3, info.collateral).balance_of(account),
        Erc20(w3, info.collateral).describe(),
    )
    return {
        "account": to_checksum_address(account),
        "long": format_units(longs, 18),
        "short": format_units(shorts, 18),
        "collateral": format_units(collateral, meta.decimals),
        "collateral_symbol": meta.symbol,
    }


async def held_tokens(w3: Any, info: SeriesLike, account: str) -> tuple[int, int]:
    """``account``'s long and short tokens of the series (base units)."""
    longs, shorts = await asyncio.gather(
        Erc20(w3, info.long_token).balance_of(account),
        Erc20(w3, info.short_token).balance_of(account),
    )
    return longs, shorts


async def find_series(market: Any, name: str, collateral: str | None) -> Any:
    """The series of the market with canonical ``name`` (and ``collateral``, if given);
    ``InputError`` naming the market's series when there is none, or asking for
    ``--collateral`` when several share the name."""
    every = await market.list_series()
    found = [
        info
        for info in every
        if info.name == name and (collateral is None or info.collateral == collateral)
    ]
    if not found:
        known = ", ".join(sorted({info.name for info in every})[:10]) or "none yet"
        with_collateral = f" with collateral {collateral}" if collateral else ""
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


async def creation_collateral(market: Any, chosen: str | None) -> str:
    """The collateral of a new series: ``chosen`` checked against the allowlist, or,
    without a choice, the market's only collateral (several: ``InputError`` asking)."""
    allowed = await market.collateral_allowlist()
    if chosen is None:
        if len(allowed) != 1:
            raise InputError(
                f"the market accepts {len(allowed)} collateral tokens ({', '.join(allowed)}): "
                "choose one with --collateral"
            )
        return str(allowed[0])
    chosen = to_checksum_address(chosen)
    if not await market.is_allowed_collateral(chosen):
        raise InputError(
            f"--collateral {chosen} is not on the allowlist of the market {market.address} "
            f"(fixed at its deployment: {', '.join(allowed)})"
        )
    return chosen


async def series_exists(market: Any, series_id: bytes) -> bool:
    try:
        await market.series_info(series_id)
    except ContractReverted as exc:
        if exc.name == "UnknownSeries":
            return False
        raise
    return True


def balances_text(held: dict[str, Any]) -> str:
    return (
        f"{held['account']} holds {held['long']} long, {held['short']} short, "
        f"{held['collateral']} {held['collateral_symbol']}"
    )


def not_final_reason(exc: ContractReverted) -> str:
    """Why the oracle has no final value, in words (the error's name if it is another)."""
    if exc.name == "EpochNotFinal":
        final_at = int(exc.args_by_name.get("finalAt", 0))
        return f"epoch {exc.args_by_name.get('epoch')} is final only at {iso(final_at)}"
    return _NOT_FINAL.get(exc.name, str(exc))


@dataclass(frozen=True, slots=True)
class SettlementPlan:
    """Which call settles the series now: ``settle`` (``epoch`` None) or ``settleEarly``."""

    kind: str  # "final", "early" or "fallback"
    epoch: int | None = None
    value: int | None = None


async def plan_settlement(
    w3: Any, oracle_address: str, info: SeriesLike, *, now: int, epoch: int | None = None
) -> SettlementPlan:
    """The settlement the contract would accept at ``now``, or an ``InputError`` saying why
    none would (and when one will): checked with the oracle's own views first, so a user
    reads a reason rather than a revert."""
    oracle = OracleContract(w3, oracle_address)
    opens = info.expiry + SETTLEMENT_DELAY_S
    if epoch is not None:
        return await _early_at(oracle, info, epoch)
    if now >= opens:
        try:
            value, _epoch = await oracle.bme_at_final(info.n_days, info.expiry)
        except ContractReverted as exc:
            if exc.name in _NOT_FINAL and now >= info.expiry + FALLBACK_DELAY_S:
                return SettlementPlan("fallback")
            if exc.name not in _NOT_FINAL:
                raise
            raise InputError(
                f"series {info.name} cannot settle yet: its index at expiry is not final "
                f"({not_final_reason(exc)}); settlement reads the oracle's bmeAtFinal, which "
                f"answers after the next retarget after {iso(info.expiry)} plus the challenge "
                f"window; without it the fallback opens at {iso(info.expiry + FALLBACK_DELAY_S)}"
            ) from None
        return SettlementPlan("final", None, value)
    found, pending = await _barrier(oracle, info)
    if found is not None:
        return found
    raise InputError(
        f"series {info.name} cannot settle yet: settlement opens at {iso(opens)} (expiry + 1 "
        f"day); before that it settles early only when a final BME{info.n_days} since its "
        f"creation is at or beyond Floor {strike_text(info.floor)} or Cap "
        f"{strike_text(info.cap)}, and " + (pending or "none is")
    )


async def _early_at(oracle: OracleContract, info: SeriesLike, epoch: int) -> SettlementPlan:
    stored = await oracle.retarget(epoch)
    if stored is None:
        raise InputError(f"--epoch {epoch}: the oracle has not stored that epoch")
    if not info.created_at < stored.time < info.expiry:
        raise InputError(
            f"--epoch {epoch}: its retarget time {iso(stored.time)} is not between the series' "
            f"creation {iso(info.created_at)} and its expiry {iso(info.expiry)}"
        )
    try:
        value = await oracle.bme_final(info.n_days, epoch)
    except ContractReverted as exc:
        if exc.name not in _NOT_FINAL:
            raise
        raise InputError(f"--epoch {epoch}: no final value ({not_final_reason(exc)})") from None
    if info.floor < value < info.cap:
        raise InputError(
            f"--epoch {epoch}: BME{info.n_days} {index_text(value)} is inside "
            f"[{strike_text(info.floor)}, {strike_text(info.cap)}]: no barrier reached"
        )
    return SettlementPlan("early", epoch, value)


async def _barrier(
    oracle: OracleContract, info: SeriesLike
) -> tuple[SettlementPlan | None, str | None]:
    """The latest final epoch since creation (before expiry) at or beyond a barrier; else
    None and, when an epoch is at a barrier but not final (yet), why, in words."""
    epoch = await oracle.latest_epoch()
    first = await oracle.first_epoch()
    pending = None
    for candidate in range(epoch, max(first, epoch - MAX_EARLY_SCAN) - 1, -1):
        stored = await oracle.retarget(candidate)
        if stored is None or stored.time <= info.created_at:
            break
        if stored.time >= info.expiry:
            continue
        try:
            value = await oracle.bme_final(info.n_days, candidate)
        except ContractReverted as exc:
            if exc.name not in _NOT_FINAL or pending is not None:
                continue
            try:
                known = await oracle.bme(info.n_days, candidate)
            except ContractReverted:
                continue  # the window's epochs are not all stored
            if known <= info.floor or known >= info.cap:
                pending = (
                    f"epoch {candidate} is at BME{info.n_days} {index_text(known)} but "
                    f"not final: {not_final_reason(exc)}"
                )
            continue
        if value <= info.floor or value >= info.cap:
            return SettlementPlan("early", candidate, value), None
    return None, pending
