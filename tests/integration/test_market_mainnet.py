"""BmeMarket against a mainnet-mode DifficultyOracle fed real mainnet proofs across the 2020
halving (height 630,000 lies in epoch 312), on an anvil whose clock starts in February 2020.

Regtest's index is a constant; here the settlement values vary with real difficulty and the
halving, and each equals BME_N computed in Python (oracle.index.bme, block-weighted subsidy)
from the real bits. The repository's real proofs (the last header of each epoch) end at
height 832,608, before the 2024 halving, so the 2020 one is the halving proven on chain.
Series: four settled at expiry (pre-halving, the halving epoch itself, after it, a BME84
window spanning it, with decimal strikes) and one settled early when BME14 falls below its
Floor right after the halving; every claim equals the seed's formula in exact fractions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from fractions import Fraction

import pytest

from oracle.bitcoin.header import parse_header
from oracle.index.bme import EpochTarget, bme
from oracle.market.chain import MarketContract, deploy_market, deploy_test_wbtc, mint_test_wbtc
from oracle.publish.anchor import mainnet_genesis
from oracle.publish.contract import ContractReverted, OracleContract
from tests.fixtures.anvil import (
    AnvilNode,
    ChainAccounts,
    OnChain,
    fund,
    mainnet_proof,
    mainnet_report,
    mainnet_retarget_headers,
)
from tests.integration.market_world import ONE, at_2am, expected_payout

pytestmark = [pytest.mark.anvil, pytest.mark.timeout(300)]

GENESIS = 306  # 2020-02-11
LAST = 318  # stored on top of 317, so every epoch through 317 is final
HALVING_EPOCH = 312


def epoch_time(epoch: int) -> int:
    return parse_header(mainnet_retarget_headers()[epoch]).time


def python_bme(n_days: int, epoch: int) -> int:
    headers = mainnet_retarget_headers()
    window = [
        EpochTarget.from_bits(e, parse_header(headers[e]).bits)
        for e in range(epoch - n_days // 14 + 1, epoch + 1)
    ]
    return bme(n_days, window).fixed


def strike(text: str) -> int:
    value = Fraction(text) * 10**11
    assert value.denominator == 1
    return value.numerator


#: name -> (N, Floor, Cap, expiry, the epoch whose BME_N settles it at expiry)
SERIES = {
    "before": (84, strike("150"), strike("200"), at_2am(2020, 3, 10), 308),
    "halving": (14, strike("100"), strike("130"), at_2am(2020, 5, 6), HALVING_EPOCH),
    "after": (28, strike("90"), strike("120"), at_2am(2020, 5, 21), 313),
    "window": (84, strike("100.5"), strike("110.25"), at_2am(2020, 7, 1), 316),
}
#: Settles early: BME14 falls to 83.05 (x1E-7) at epoch 313, below this Floor.
EARLY = (14, strike("100"), strike("200"), at_2am(2020, 7, 14))


@pytest.fixture(scope="module")
async def setup(
    test_accounts: ChainAccounts,
) -> AsyncIterator[tuple[OnChain, OracleContract, MarketContract, str]]:
    node = AnvilNode(extra_args=("--timestamp", str(epoch_time(GENESIS) + 3600)))
    node.start()
    try:
        onchain = OnChain(node, test_accounts)
        for signer in test_accounts.signers:
            fund(node.url, signer.address)
        oracle = await onchain.deploy(genesis=mainnet_genesis(GENESIS), network="mainnet")
        deployer = test_accounts.deployer
        wbtc = await deploy_test_wbtc(onchain.w3, deployer, max_fee_wei=OnChain.MAX_FEE_WEI)
        address = await deploy_market(
            onchain.w3, deployer, oracle.address, [wbtc], max_fee_wei=OnChain.MAX_FEE_WEI
        )
        market = MarketContract(onchain.w3, address, max_fee_wei=OnChain.MAX_FEE_WEI)
        yield onchain, oracle, market, wbtc
        await onchain.w3.provider.disconnect()
    finally:
        node.stop()


async def test_settlement_values_across_the_2020_halving_equal_python(
    setup: tuple[OnChain, OracleContract, MarketContract, str],
) -> None:
    onchain, oracle, market, wbtc = setup
    deployer, holder = onchain.accounts.deployer, onchain.accounts.outsider
    await mint_test_wbtc(
        onchain.w3, deployer, wbtc, holder.address, 10**12, max_fee_wei=OnChain.MAX_FEE_WEI
    )
    ids = {}
    for name, (n_days, floor, cap, expiry, _epoch) in {**SERIES, "early": (*EARLY, 0)}.items():
        ids[name] = await market.create_series(
            n_days=n_days, floor=floor, cap=cap, expiry=expiry, collateral=wbtc, sender=deployer
        )
        await market.mint(ids[name], 3 * ONE // 2, sender=holder)
    assert (await market.series_info(ids["halving"])).name == "BME14-100-130-200506"
    assert (await market.series_info(ids["window"])).name == "BME84-100.5-110.25-200701"

    # The oracle follows Bitcoin: each real retarget once the EVM clock reaches its time.
    for epoch in range(GENESIS + 1, LAST + 1):
        chain_now = int((await onchain.w3.eth.get_block("latest"))["timestamp"])
        if epoch_time(epoch) - 60 > chain_now:
            onchain.node.call("evm_setNextBlockTimestamp", epoch_time(epoch) - 60)
            onchain.node.call("evm_mine")
        await onchain.submit(oracle, mainnet_report(epoch), mainnet_proof(epoch))

    values = {}
    for name, (n_days, floor, cap, _expiry, epoch) in SERIES.items():
        expected = python_bme(n_days, epoch)
        assert await market.settle(ids[name], sender=deployer) == (expected, epoch, "final")
        values[name] = expected
        assert floor < expected < cap, name  # each settles inside its range
        long_paid = await market.claim(ids[name], 3 * ONE // 2, 0, sender=holder)
        short_paid = await market.claim(ids[name], 0, 3 * ONE // 2, sender=holder)
        assert long_paid == expected_payout(3 * ONE // 2, expected - floor), name
        assert short_paid == expected_payout(3 * ONE // 2, cap - expected), name
    assert len(set(values.values())) == len(values)  # the index moved
    # The halving epoch's index is between the two subsidy eras' (block-weighted mean).
    assert python_bme(14, HALVING_EPOCH + 1) < values["halving"] < python_bme(14, 311)

    early = ids["early"]
    n_days, floor, cap, _expiry = EARLY
    with pytest.raises(ContractReverted) as inside:
        await market.settle_early(early, HALVING_EPOCH, sender=deployer)
    assert inside.value.name == "BarrierNotReached"
    barrier = python_bme(14, HALVING_EPOCH + 1)
    assert barrier <= floor
    assert await market.settle_early(early, HALVING_EPOCH + 1, sender=deployer) == (
        barrier,
        HALVING_EPOCH + 1,
        "early",
    )
    assert await market.claim(early, 3 * ONE // 2, 3 * ONE // 2, sender=holder) == (
        expected_payout(3 * ONE // 2, cap - floor)  # the short takes the whole pair
    )
    for sid in ids.values():
        info = await market.series_info(sid)
        assert 0 <= info.deposited - info.paid_out <= 2  # one mint, one pair claimed
