"""Hypothesis invariants of BmeMarket against one deployment on a real anvil.

Each example creates a series with random strikes around the (constant) regtest index, runs
random mints, redeems and transfers among three holders, settles (final, or fallback with
the oracle paused) and claims everything in two random slices per holder, all inside one
anvil snapshot that is reverted afterwards. Checked against a Python model in exact integers
and fractions (never the contract's own arithmetic):

* mint takes ceil(amount x pair / 10^18), redeem returns floor(amount x pair / 10^18);
* the ledger equals the model, paidOut <= deposited after every step, and the market holds
  exactly deposited - paidOut;
* every claim pays floor(long x (clamp - Floor) x 10^6 BTC) + floor(short x (Cap - clamp) x
  10^6 BTC) in satoshi, from the settlement value;
* a claim of equal long and short amounts pays its pair's collateral minus at most 2 units,
  and what stays in the market at the end is only that rounding dust.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.market.chain import erc20
from oracle.publish.contract import send_and_wait
from tests.fixtures.anvil import ChainAccounts, OnChain
from tests.integration.market_world import (
    DAY,
    GENESIS,
    ONE,
    STEP,
    MarketWorld,
    at_2am,
    build_world,
    expected_payout,
    regtest_bme,
    send_erc20,
    start_node,
)

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(600)]

EXPIRY = at_2am(2019, 1, 20)
INDEX = regtest_bme(84, GENESIS)
BASE = INDEX // STEP * STEP
HOLDERS = 3


@pytest.fixture(scope="module")
async def world(test_accounts: ChainAccounts) -> AsyncIterator[MarketWorld]:
    """A market whose settlement value at EXPIRY is final from the start: epochs with
    retarget times just after EXPIRY are stored (one on top of the other) while the clock
    is an hour before it, so series created now settle as soon as the clock passes
    EXPIRY + 1 day. Holders hold WBTC and approved the market once."""
    node = start_node()
    try:
        built = await build_world(node, test_accounts)
        built.warp_to(EXPIRY - 3600)
        await built.submit_epoch(EXPIRY + 60)
        await built.submit_epoch(EXPIRY + 120)
        token = erc20(built.w3, built.wbtc)
        for holder in built.holders[1 : 1 + HOLDERS]:
            await built.fund_wbtc(holder, 10**15)
            await send_and_wait(
                built.w3,
                holder,
                {
                    "to": token.address,
                    "data": token.encode_abi("approve", args=[built.market.address, 2**256 - 1]),
                },
                max_fee_wei=OnChain.MAX_FEE_WEI,
                priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
            )
        yield built
        await built.w3.provider.disconnect()
    finally:
        node.stop()


@dataclass
class Model:
    """What the market should hold, from the examples' own arithmetic."""

    pair: int  # satoshi per 10^18 pairs
    longs: list[int] = field(default_factory=lambda: [0] * HOLDERS)
    shorts: list[int] = field(default_factory=lambda: [0] * HOLDERS)
    deposited: int = 0
    paid_out: int = 0
    roundings: int = 0  # operations that may leave one unit of dust each


amounts = st.integers(1, 5 * ONE)
holder = st.integers(0, HOLDERS - 1)
percent = st.integers(0, 100)
operation = st.one_of(
    st.tuples(st.just("mint"), holder, amounts),
    st.tuples(st.just("redeem"), holder, percent),
    st.tuples(st.just("transfer"), holder, holder, st.booleans(), percent),
)


async def check_ledger(world: MarketWorld, sid: bytes, model: Model) -> None:
    info = await world.market.series_info(sid)
    assert (info.deposited, info.paid_out) == (model.deposited, model.paid_out)
    assert info.paid_out <= info.deposited
    held = await erc20(world.w3, world.wbtc).functions.balanceOf(world.market.address).call()
    assert held == info.deposited - info.paid_out


async def run(world: MarketWorld, sid: bytes, model: Model, steps: list[Any]) -> None:
    market, holders = world.market, world.holders[1 : 1 + HOLDERS]
    info = await market.series_info(sid)
    for step in steps:
        if step[0] == "mint":
            _, who, amount = step
            paid_in = await market.mint(sid, amount, sender=holders[who])
            assert paid_in == -(-amount * model.pair // ONE)
            model.longs[who] += amount
            model.shorts[who] += amount
            model.deposited += paid_in
            model.roundings += 1
        elif step[0] == "redeem":
            _, who, pct = step
            amount = min(model.longs[who], model.shorts[who]) * pct // 100
            if amount == 0:
                continue
            paid = await market.redeem(sid, amount, sender=holders[who])
            assert paid == amount * model.pair // ONE
            model.longs[who] -= amount
            model.shorts[who] -= amount
            model.paid_out += paid
            model.roundings += 1
        else:
            _, source, target, is_long, pct = step
            book = model.longs if is_long else model.shorts
            amount = book[source] * pct // 100
            if amount == 0 or source == target:
                continue
            token = info.long_token if is_long else info.short_token
            await send_erc20(world, token, holders[target].address, amount, sender=holders[source])
            book[source] -= amount
            book[target] += amount
        await check_ledger(world, sid, model)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    floor_steps=st.integers(-2 * 10**6, 2 * 10**6),
    width_steps=st.integers(1, 2 * 10**6),
    steps=st.lists(operation, min_size=1, max_size=6),
    fallback=st.booleans(),
    first_slice=st.lists(st.tuples(percent, percent), min_size=HOLDERS, max_size=HOLDERS),
)
async def test_the_ledger_never_pays_more_than_it_holds(
    world: MarketWorld,
    floor_steps: int,
    width_steps: int,
    steps: list[Any],
    fallback: bool,
    first_slice: list[tuple[int, int]],
) -> None:
    floor = BASE + floor_steps * STEP
    cap = floor + width_steps * STEP
    snapshot = world.onchain.snapshot()
    try:
        sid = await world.market.create_series(
            n_days=84, floor=floor, cap=cap, expiry=EXPIRY, collateral=world.wbtc,
            sender=world.holders[0],
        )  # fmt: skip
        model = Model(pair=width_steps)  # (Cap - Floor) / 10^4 satoshi per whole pair
        await run(world, sid, model, [("mint", 0, ONE), *steps])

        if fallback:
            await world.onchain.transact(world.oracle, "pause")
            world.warp_to(EXPIRY + 30 * DAY)
            long_share = (cap - floor) // 2
        else:
            world.warp_to(EXPIRY + DAY)
            long_share = min(max(INDEX, floor), cap) - floor
        _value, _epoch, kind = await world.market.settle(sid, sender=world.holders[0])
        assert kind == ("fallback" if fallback else "final")
        short_share = cap - floor - long_share

        for who, slices in enumerate(first_slice):
            account = world.holders[1 + who]
            first = (model.longs[who] * slices[0] // 100, model.shorts[who] * slices[1] // 100)
            rest = (model.longs[who] - first[0], model.shorts[who] - first[1])
            for longs, shorts in (first, rest):
                if longs == 0 and shorts == 0:
                    continue
                paid = await world.market.claim(sid, longs, shorts, sender=account)
                assert paid == expected_payout(longs, long_share) + expected_payout(
                    shorts, short_share
                )
                if longs == shorts:
                    pair_cost = -(-longs * model.pair // ONE)
                    assert pair_cost - 2 <= paid <= pair_cost
                model.paid_out += paid
                model.roundings += 2
                await check_ledger(world, sid, model)
        dust = model.deposited - model.paid_out
        assert 0 <= dust <= model.roundings
    finally:
        world.onchain.revert(snapshot)
