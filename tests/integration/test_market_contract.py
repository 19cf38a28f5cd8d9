"""BmeMarket on a real anvil, settling against a real regtest-mode DifficultyOracle.

The life of a series (create, mint, transfer, redeem, settle after the delay, claim), early
settlement at a barrier, the 30-day fallback with the oracle paused, canonical names on
chain, and every refusal as the contract's custom error, decoded by oracle.market.chain.
Expected payouts come from the seed's formula in exact fractions (``expected_payout``), the
index from oracle.index.bme; nothing expected is computed by the contract under test.

Regtest's index is a constant (every epoch at bits 0x207fffff), about 1.08E+18 BTC per TH/s
per day for BME84; strikes are placed around it. Each test runs inside an anvil snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from fractions import Fraction

import pytest
from eth_utils.address import to_checksum_address

from oracle.errors import InputError
from oracle.market.chain import (
    MARKET,
    MarketContract,
    deploy_market,
    erc20,
    series_id,
)
from oracle.publish.contract import ContractReverted, deployment_data, send_and_wait
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
    token_text,
)

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]

E1 = at_2am(2019, 1, 20)  # the expiry of most series here
HOUR = 3600
WINDOW = 12 * HOUR  # the oracle's challenge window (OnChain.deploy default)


def strike(text: str) -> int:
    """A strike written in the names' unit (1E-7 BTC per TH/s per day) -> 10^18 fixed point."""
    value = Fraction(text) * 10**11
    assert value.denominator == 1, text
    return value.numerator


@pytest.fixture(scope="module")
async def world(test_accounts: ChainAccounts) -> AsyncIterator[MarketWorld]:
    node = start_node()
    try:
        built = await build_world(node, test_accounts)
        for holder in built.holders[:4]:
            await built.fund_wbtc(holder, 10**12)
        yield built
        await built.w3.provider.disconnect()
    finally:
        node.stop()


@pytest.fixture(autouse=True)
def isolated(world: MarketWorld) -> Iterator[None]:
    snapshot = world.onchain.snapshot()
    try:
        yield
    finally:
        world.onchain.revert(snapshot)


def around_index(n_days: int = 84) -> int:
    """The regtest index rounded down to a valid strike."""
    return regtest_bme(n_days, GENESIS) // STEP * STEP


async def create(
    world: MarketWorld,
    *,
    floor: int,
    cap: int,
    expiry: int = E1,
    n_days: int = 84,
    collateral: str | None = None,
) -> bytes:
    return await world.market.create_series(
        n_days=n_days,
        floor=floor,
        cap=cap,
        expiry=expiry,
        collateral=collateral or world.wbtc,
        sender=world.holders[0],
    )


async def refused(awaitable: object) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value


async def store_epoch_after(world: MarketWorld, expiry: int) -> int:
    """Store the epoch that makes BME_N at ``expiry`` final-able (retarget time just after
    expiry); returns it."""
    world.warp_to(expiry - HOUR)
    return await world.submit_epoch(expiry + 60)


async def market_balance(world: MarketWorld, token: str | None = None) -> int:
    contract = erc20(world.w3, token or world.wbtc)
    return int(await contract.functions.balanceOf(world.market.address).call())


# ------------------------------------------------------------------ names and ids


async def test_names_on_chain_are_the_canonical_strings(world: MarketWorld) -> None:
    cases = [
        ((84, strike("4.85"), strike("5.40"), at_2am(2026, 12, 15)), "BME84-4.85-5.4-261215"),
        ((84, strike("250"), strike("300"), at_2am(2019, 7, 18)), "BME84-250-300-190718"),
        ((14, 0, strike("0.0000001"), at_2am(2099, 12, 31)), "BME14-0-0.0000001-991231"),
        (
            (3584, strike("1234.5678901"), strike("1300.05"), at_2am(2020, 2, 29)),
            "BME3584-1234.5678901-1300.05-200229",
        ),
        ((28, strike("10"), strike("30"), at_2am(2024, 6, 1)), "BME28-10-30-240601"),
    ]
    for (n_days, floor, cap, expiry), name in cases:
        sid = await create(world, n_days=n_days, floor=floor, cap=cap, expiry=expiry)
        info = await world.market.series_info(sid)
        assert info.name == name
        for token, side in ((info.long_token, "L"), (info.short_token, "S")):
            assert await token_text(world, token, "name") == side + name
            assert await token_text(world, token, "symbol") == side + name
            assert await token_text(world, token, "decimals") == 18
        assert (info.n_days, info.floor, info.cap, info.expiry) == (n_days, floor, cap, expiry)
        assert info.state_name == "open"


async def test_the_series_id_is_the_hash_of_the_five_fields(world: MarketWorld) -> None:
    fields = {"n_days": 84, "floor": strike("4.85"), "cap": strike("5.4"), "expiry": E1}
    sid = await create(world, **fields)
    assert sid == series_id(**fields, collateral=world.wbtc)
    assert bytes(await world.market.contract.functions.seriesId(
        84, fields["floor"], fields["cap"], E1, world.wbtc
    ).call()) == sid  # fmt: skip
    # 5.40 and 5.4 are the same strike: the same series.
    again = await refused(create(world, **fields))
    assert again.name == "SeriesExists"
    assert await world.market.series_count() == 1
    listed = await world.market.list_series()
    assert [s.series_id for s in listed] == [sid]
    out_of_range = await refused(world.market._call("seriesIdAt", 1))
    assert out_of_range.name == "SeriesIndexOutOfRange"


async def test_pair_collateral_is_cap_minus_floor_times_ten_to_the_six(
    world: MarketWorld,
) -> None:
    # 4.85-5.4: 0.055 BTC per whole pair; 250-300: 5 BTC (the common brief's examples).
    small = await create(world, floor=strike("4.85"), cap=strike("5.4"))
    seed = await create(world, floor=strike("250"), cap=strike("300"))
    assert await world.market.pair_collateral(small) == 5_500_000
    assert await world.market.pair_collateral(seed) == 500_000_000
    # The seed's hedge: 0.0084 tokens of 250-300 lock 0.0084 x 5 BTC = 0.042 BTC.
    assert await world.market.collateral_for(seed, 84 * 10**14) == 4_200_000


# ------------------------------------------------------------------ refusals at creation


async def test_bad_series_are_refused_with_custom_errors(world: MarketWorld) -> None:
    floor, cap = strike("4.85"), strike("5.4")
    cases = {
        "FloorNotBelowCap": {"floor": cap, "cap": cap},
        "StrikeTooPrecise": {"floor": floor + 1, "cap": cap},
        "StrikeTooLarge": {"floor": 0, "cap": 2**128 * STEP},
        "RangeTooWide": {"floor": 0, "cap": (2**96 // STEP + 1) * STEP},
        "BadExpiry": {"floor": floor, "cap": cap, "expiry": E1 + HOUR},
        "ExpiryPassed": {"floor": floor, "cap": cap, "expiry": at_2am(2018, 12, 31)},
        "CollateralNotAllowed": {
            "floor": floor,
            "cap": cap,
            "collateral": world.holders[1].address,
        },
    }
    for error, fields in cases.items():
        reverted = await refused(create(world, **fields))  # type: ignore[arg-type]
        assert reverted.name == error, (error, reverted)
    higher = await refused(create(world, floor=cap + STEP, cap=cap))
    assert higher.name == "FloorNotBelowCap"
    assert higher.args_by_name == {"floor": cap + STEP, "cap": cap}
    for n_days in (0, 15, 14 * 257):
        bad = await refused(create(world, floor=floor, cap=cap, n_days=n_days))
        assert bad.name == "BadWindow"
        assert bad.args_by_name == {"nDays": n_days, "maxDays": 14 * 256}
    assert await world.market.series_count() == 0


async def test_deployment_refusals(world: MarketWorld) -> None:
    owner = world.holders[0]
    with pytest.raises(InputError, match="at least one collateral"):
        await deploy_market(world.w3, owner, world.oracle.address, [])
    cases = {
        "NoCollateral": (world.oracle.address, []),
        "OracleNotContract": (world.holders[1].address, [world.wbtc]),
        "DuplicateCollateral": (world.oracle.address, [world.wbtc, world.wbtc]),
        "ZeroAddress": (world.oracle.address, ["0x" + "00" * 20]),
    }
    for error, (oracle, collaterals) in cases.items():
        data = deployment_data(MARKET, oracle, [to_checksum_address(c) for c in collaterals])
        reverted = await refused(
            send_and_wait(
                world.w3,
                owner,
                {"data": data},
                max_fee_wei=OnChain.MAX_FEE_WEI,
                priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
            )
        )
        assert reverted.name == error


# ------------------------------------------------------------------ the life of a series


async def test_create_mint_transfer_redeem_settle_claim(world: MarketWorld) -> None:
    market = world.market
    alice, bob, carol, keeper = world.holders[1:5]
    value = regtest_bme(84, GENESIS)
    assert await world.oracle.bme(84, GENESIS) == value  # the oracle agrees with Python
    floor = around_index() - 2 * 10**10
    cap = floor + 55 * 10**9  # 0.055 BTC per pair, the index inside
    sid = await create(world, floor=floor, cap=cap)
    info = await market.series_info(sid)
    pair = 5_500_000

    # Mint: collateral rounded up, balance delta recorded.
    minted = 2_500_000_000_000_000_001  # 2.5 tokens and one base unit
    paid_in = await market.mint(sid, minted, sender=alice)
    assert paid_in == -(-minted * pair // ONE) == 13_750_001
    assert await market.mint(sid, 84 * 10**14, sender=carol) == 46_200  # 0.0084 pairs
    # Tokens trade: Alice sends 1 long token to Bob.
    await send_erc20(world, info.long_token, bob.address, ONE, sender=alice)
    balances = await market.token_balances(sid, alice.address)
    assert (balances.long, balances.short) == (minted - ONE, minted)
    # Redeem before settlement: a pair back for its collateral, rounded down.
    assert await market.redeem(sid, ONE // 2 + 1, sender=alice) == (ONE // 2 + 1) * pair // ONE
    info = await market.series_info(sid)
    assert info.deposited == 13_750_001 + 46_200
    assert info.paid_out == 2_750_000
    assert await market_balance(world) == info.deposited - info.paid_out

    # Settlement: not before expiry + 1 day, not before the oracle's value is final.
    not_yet = await refused(market.settle(sid, sender=keeper))
    assert (not_yet.name, not_yet.args_by_name["opensAt"]) == ("SettlementTooEarly", E1 + DAY)
    claim_early = await refused(market.claim(sid, ONE, 0, sender=bob))
    assert claim_early.name == "NotSettled"
    world.warp_to(E1 + DAY)
    no_epoch = await refused(market.settle(sid, sender=keeper))
    assert no_epoch.name == "SettlementNotFinal"
    assert no_epoch.inner is not None and no_epoch.inner.name == "NoEpochAfter"
    after = await world.submit_epoch(E1 + DAY)  # retarget time after expiry, in its window
    in_window = await refused(market.settle(sid, sender=keeper))
    assert in_window.inner is not None and in_window.inner.name == "EpochNotFinal"
    assert "EpochNotFinal(epoch=" in str(in_window)
    world.warp_to(E1 + DAY + WINDOW + 1)
    assert await market.settle(sid, sender=keeper) == (value, after - 1, "final")
    again = await refused(market.settle(sid, sender=keeper))
    assert again.name == "AlreadySettled"
    for late in (market.mint(sid, ONE, sender=alice), market.redeem(sid, 1, sender=alice)):
        assert (await refused(late)).name == "AlreadySettled"

    # Claims: exactly the seed's formula, rounded down; then nothing more.
    info = await market.series_info(sid)
    assert (info.state_name, info.settlement_value) == ("settled", value)
    long_share, short_share = value - floor, cap - value
    holdings = {
        alice: (minted - ONE - (ONE // 2 + 1), minted - (ONE // 2 + 1)),
        bob: (ONE, 0),
        carol: (84 * 10**14, 84 * 10**14),
    }
    total = 0
    for holder, (longs, shorts) in holdings.items():
        paid = await market.claim(sid, longs, shorts, sender=holder)
        expected = expected_payout(longs, long_share) + expected_payout(shorts, short_share)
        assert paid == expected, holder
        total += paid
    double = await refused(market.claim(sid, 0, 1, sender=carol))
    assert double.name == "ERC20InsufficientBalance"
    info = await market.series_info(sid)
    assert info.paid_out == 2_750_000 + total <= info.deposited
    dust = info.deposited - info.paid_out
    assert await market_balance(world) == dust
    assert 0 <= dust <= 2 * 3  # at most 2 base units per mint/claim pair


async def test_a_fully_claimed_pair_pays_its_collateral_minus_at_most_two_units(
    world: MarketWorld,
) -> None:
    value = regtest_bme(84, GENESIS)
    floor = around_index() - 3 * STEP
    sid = await create(world, floor=floor, cap=floor + 10 * STEP)  # 10 sats per pair
    amount = 333_333_333_333_333_333  # a third of a pair: 3.33 sats
    paid_in = await world.market.mint(sid, amount, sender=world.holders[1])
    assert paid_in == 4
    await store_epoch_after(world, E1)
    await world.submit_epoch(E1 + 120)  # the epoch before it is final at once
    world.warp_to(E1 + DAY)
    await world.market.settle(sid, sender=world.holders[2])
    paid = await world.market.claim(sid, amount, amount, sender=world.holders[1])
    long_part = expected_payout(amount, value - floor)
    assert paid == long_part + expected_payout(amount, floor + 10 * STEP - value)
    assert paid_in - 2 <= paid <= paid_in


# ------------------------------------------------------------------ early settlement


async def test_early_settlement_at_cap_and_at_floor(world: MarketWorld) -> None:
    market = world.market
    value = regtest_bme(84, GENESIS)
    base = around_index()
    below = await create(world, floor=base - 5 * 10**10, cap=base)  # index >= Cap
    above = await create(world, floor=base + STEP, cap=base + 5 * 10**10)  # index <= Floor
    inside = await create(world, floor=base - 10**10, cap=base + 10**10)
    for sid in (below, above, inside):
        await market.mint(sid, 3 * ONE, sender=world.holders[1])
    created_at = (await market.series_info(below)).created_at

    # The genesis epoch's retarget time is before the series existed.
    before = await refused(market.settle_early(below, GENESIS, sender=world.holders[2]))
    assert before.name == "EpochOutsideSeries"
    assert before.args_by_name["createdAt"] == created_at
    world.warp_to(created_at + 5 * DAY)
    epoch = await world.submit_epoch(created_at + 5 * DAY)
    not_final = await refused(market.settle_early(below, epoch, sender=world.holders[2]))
    assert not_final.inner is not None and not_final.inner.name == "EpochNotFinal"
    world.warp_to(created_at + 5 * DAY + WINDOW + 60)
    not_reached = await refused(market.settle_early(inside, epoch, sender=world.holders[2]))
    assert not_reached.name == "BarrierNotReached"
    assert not_reached.args_by_name["value"] == value
    missing = await refused(market.settle_early(below, epoch + 1, sender=world.holders[2]))
    assert missing.name == "EpochMissing"  # the oracle's own error, bubbled

    assert await market.settle_early(below, epoch, sender=world.holders[2]) == (
        value,
        epoch,
        "early",
    )
    assert await market.settle_early(above, epoch, sender=world.holders[2]) == (
        value,
        epoch,
        "early",
    )
    # At Cap the long takes the whole pair, at Floor the short does.
    assert await market.claim(below, 3 * ONE, 3 * ONE, sender=world.holders[1]) == 3 * 5_000_000
    long_only = await market.claim(above, 3 * ONE, 0, sender=world.holders[1])
    short_only = await market.claim(above, 0, 3 * ONE, sender=world.holders[1])
    assert (long_only, short_only) == (0, 3 * (5 * 10**10 - STEP) // STEP)
    # An epoch whose retarget time is at or after expiry is not an early barrier.
    await store_epoch_after(world, E1)
    world.warp_to(E1 + WINDOW + 60)
    late = await refused(market.settle_early(inside, epoch + 1, sender=world.holders[2]))
    assert late.name == "EpochOutsideSeries"


# ------------------------------------------------------------------ fallback


async def test_fallback_after_thirty_days_with_the_oracle_paused(world: MarketWorld) -> None:
    market = world.market
    floor = strike("4.85")
    cap = floor + 55 * 10**9 + 2 * STEP  # width 5,500,002 sats per pair: halves exact
    sid = await create(world, floor=floor, cap=cap)
    amount = 1_234_567_890_123_456_789
    paid_in = await market.mint(sid, amount, sender=world.holders[1])
    await world.onchain.transact(world.oracle, "pause")
    world.warp_to(E1 + DAY)
    paused = await refused(market.settle(sid, sender=world.holders[2]))
    assert paused.inner is not None and paused.inner.name == "EnforcedPause"
    world.warp_to(E1 + 30 * DAY - 60)
    still = await refused(market.settle(sid, sender=world.holders[2]))
    assert still.name == "SettlementNotFinal"
    world.warp_to(E1 + 30 * DAY)
    midpoint = floor + (cap - floor) // 2
    assert await market.settle(sid, sender=world.holders[2]) == (midpoint, 0, "fallback")
    info = await market.series_info(sid)
    assert (info.state_name, info.settlement_value) == ("fallback", midpoint)
    half_pair = Fraction(5_500_002, 2)  # half a pair's collateral per token
    long_paid = await market.claim(sid, amount, 0, sender=world.holders[1])
    short_paid = await market.claim(sid, 0, amount, sender=world.holders[1])
    expected = Fraction(amount, ONE) * half_pair
    assert long_paid == short_paid == expected.numerator // expected.denominator
    assert paid_in - 2 <= long_paid + short_paid <= paid_in


async def test_a_late_settlement_with_a_final_value_is_not_a_fallback(
    world: MarketWorld,
) -> None:
    """Past 30 days, an oracle that has a final value settles the series at it."""
    sid = await create(world, floor=strike("4.85"), cap=strike("5.4"))
    await store_epoch_after(world, E1)
    world.warp_to(E1 + 40 * DAY)
    value, _epoch, kind = await world.market.settle(sid, sender=world.holders[2])
    assert (value, kind) == (regtest_bme(84, GENESIS), "final")


# ------------------------------------------------------------------ attacks


async def test_fee_on_transfer_collateral_cannot_underfund_a_mint(world: MarketWorld) -> None:
    holder = world.holders[1]
    await world.fund_wbtc(holder, 10**10, token=world.fee_token)
    sid = await create(world, floor=strike("4.85"), cap=strike("5.4"), collateral=world.fee_token)
    shortfall = await refused(world.market.mint(sid, ONE, sender=holder))
    assert shortfall.name == "CollateralShortfall"
    assert shortfall.args_by_name == {"required": 5_500_000, "received": 5_445_000}
    assert await market_balance(world, world.fee_token) == 0
    assert (await world.market.series_info(sid)).deposited == 0


async def test_a_reentrant_collateral_token_is_refused(world: MarketWorld) -> None:
    holder = world.holders[1]
    market = world.market
    await world.fund_wbtc(holder, 10**10, token=world.reentrant_token)
    base = around_index()
    sid = await create(
        world, floor=base - 5 * 10**10, cap=base, collateral=world.reentrant_token
    )  # index >= Cap: early settlement possible
    await market.mint(sid, 2 * ONE, sender=holder)
    # Mint, re-entering redeem during the collateral transfer.
    redeem_call = market.contract.encode_abi("redeem", args=[sid, ONE])
    await world.call_token(world.reentrant_token, "arm", market.address, redeem_call, sender=holder)
    reentered = await refused(market.mint(sid, ONE, sender=holder))
    assert reentered.name == "ReentrancyGuardReentrantCall"
    # Claim, re-entering claim during the payout.
    world.warp_to((await market.series_info(sid)).created_at + DAY)
    epoch = await world.submit_epoch((await market.series_info(sid)).created_at + DAY)
    await world.submit_epoch((await market.series_info(sid)).created_at + DAY + 60)
    await market.settle_early(sid, epoch, sender=holder)
    claim_call = market.contract.encode_abi("claim", args=[sid, ONE, 0])
    await world.call_token(world.reentrant_token, "arm", market.address, claim_call, sender=holder)
    double_dip = await refused(market.claim(sid, ONE, 0, sender=holder))
    assert double_dip.name == "ReentrancyGuardReentrantCall"
    info = await market.series_info(sid)
    assert info.paid_out == 0
    assert await market_balance(world, world.reentrant_token) == info.deposited == 10_000_000


async def test_an_unknown_series_is_refused_everywhere(world: MarketWorld) -> None:
    unknown = bytes(32)
    market = world.market
    sender = world.holders[1]
    calls = [
        market.transact("mint", unknown, ONE, sender=sender),
        market.transact("redeem", unknown, ONE, sender=sender),
        market.transact("settle", unknown, sender=sender),
        market.transact("settleEarly", unknown, GENESIS, sender=sender),
        market.transact("claim", unknown, ONE, 0, sender=sender),
        market.series_info(unknown),
        market.pair_collateral(unknown),
    ]
    for call in calls:
        reverted = await refused(call)
        assert reverted.name == "UnknownSeries"
        assert reverted.args_by_name["id"] == unknown


async def test_zero_amounts_are_refused(world: MarketWorld) -> None:
    sid = await create(world, floor=strike("4.85"), cap=strike("5.4"))
    sender = world.holders[1]
    for function, args in (("mint", (0,)), ("redeem", (0,))):
        reverted = await refused(world.market.transact(function, sid, *args, sender=sender))
        assert reverted.name == "ZeroAmount"
    with pytest.raises(InputError, match="positive"):
        await world.market.mint(sid, 0, sender=sender)


async def test_only_the_market_mints_and_burns_position_tokens(world: MarketWorld) -> None:
    sid = await create(world, floor=strike("4.85"), cap=strike("5.4"))
    info = await world.market.series_info(sid)
    token = erc20(world.w3, info.long_token)
    intruder = world.holders[1]
    for function in ("mint", "burn"):
        data = token.encode_abi(function, args=[intruder.address, ONE])
        reverted = await refused(
            send_and_wait(
                world.w3,
                intruder,
                {"to": token.address, "data": data},
                max_fee_wei=OnChain.MAX_FEE_WEI,
                priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
            )
        )
        assert (reverted.name, reverted.args_by_name) == ("NotMarket", {"caller": intruder.address})
    market_view = MarketContract(world.w3, world.market.address)
    assert await market_view.oracle() == world.oracle.address
    assert await market_view.collateral_allowlist() == [
        world.wbtc,
        world.fee_token,
        world.reentrant_token,
    ]
    assert await market_view.is_allowed_collateral(world.wbtc)
    assert not await market_view.is_allowed_collateral(intruder.address)
