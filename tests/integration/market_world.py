"""A BmeMarket on a private anvil whose clock starts in 2019, settling against a real
regtest-mode DifficultyOracle; shared by the market tests and ``benchmarks/bench_gas.py``.

Why a private anvil: a series' expiry must be in the future when it is created, and the
seed's examples expire in 2019 (``SBME84-250-300-190718``); anvil's clock cannot go
backwards, so the node starts at ``START`` and tests move it forward inside snapshots.

The test-only attack tokens (``contracts/test/``: fee-on-transfer, reentrant) are compiled
here with the project's pinned compile step, never written to the shipped artifacts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from oracle.index.bme import EpochTarget, bme
from oracle.market.chain import (
    MarketContract,
    deploy_market,
    deploy_test_wbtc,
    mint_test_wbtc,
)
from oracle.publish import compile as solc
from oracle.publish.contract import OracleContract, send_and_wait
from tests.fixtures.anvil import (
    REGTEST_BITS,
    AnvilNode,
    ChainAccounts,
    OnChain,
    fund,
    regtest_genesis,
    regtest_proof,
    report_for,
)

#: 2019-01-01T00:00:00Z: the anvil genesis time.
START = 1_546_300_800
DAY = 86_400
#: Regtest genesis epoch (epochs 200..207 lie inside one subsidy era: the halving is in 208).
GENESIS = 200
GENESIS_TIME = START - 30 * DAY
#: 10^18 fixed point per 1E-7 BTC per TH/s per day, and the strike step (7th decimal).
UNIT = 10**11
STEP = 10**4
ONE = 10**18
TEST_CONTRACTS = ("FeeOnTransferToken", "ReentrantToken")


def at_2am(year: int, month: int, day: int) -> int:
    """02:00 UTC of a calendar day (Unix seconds), written without the code under test."""
    import calendar

    return calendar.timegm((year, month, day, 2, 0, 0, 0, 0, 0))


@functools.cache
def test_artifacts() -> dict[str, dict[str, Any]]:
    """The attack tokens of contracts/test/, compiled with the pinned solc (in memory)."""
    return solc.build_artifacts(solc.CONTRACTS_DIR / "test", names=TEST_CONTRACTS)


def regtest_bme(n_days: int, epoch: int) -> int:
    """BME_N of a regtest-mode oracle (every epoch at regtest's bits), by oracle.index."""
    epochs = n_days // 14
    window = [EpochTarget.from_bits(e, REGTEST_BITS) for e in range(epoch - epochs + 1, epoch + 1)]
    return bme(n_days, window).fixed


def expected_payout(amount: int, share: int, decimals: int = 8) -> int:
    """floor(amount/10^18 tokens x share/10^18 BTC per TH/s per day x 10^6 x 10^decimals):
    the seed's formula in exact fractions, in collateral base units."""
    value = Fraction(amount, ONE) * Fraction(share, ONE) * 10**6 * 10**decimals
    return value.numerator // value.denominator


@dataclass
class MarketWorld:
    onchain: OnChain
    oracle: OracleContract
    market: MarketContract
    wbtc: str
    fee_token: str
    reentrant_token: str
    #: funded keystore accounts: deployer first
    holders: list[Any]

    @property
    def w3(self) -> Any:
        return self.onchain.w3

    async def chain_time(self) -> int:
        """The time the next transaction sees (the pending block's)."""
        return int((await self.w3.eth.get_block("pending"))["timestamp"])

    def warp_to(self, timestamp: int) -> None:
        """Mine a block at ``timestamp`` (forward only)."""
        self.onchain.node.call("evm_setNextBlockTimestamp", timestamp)
        self.onchain.node.call("evm_mine")

    async def submit_epoch(self, time: int) -> int:
        """Store the next regtest epoch with retarget header time ``time``; returns it."""
        epoch = await self.oracle.latest_epoch() + 1
        last, retarget = regtest_proof(last_time=time - 600, time=time, salt=epoch)
        await self.onchain.submit(self.oracle, report_for(epoch, retarget), last + retarget)
        return epoch

    async def fund_wbtc(self, account: Any, sats: int, token: str | None = None) -> None:
        await mint_test_wbtc(
            self.w3,
            self.holders[0],
            token or self.wbtc,
            account.address,
            sats,
            max_fee_wei=OnChain.MAX_FEE_WEI,
        )

    async def call_token(self, token: str, function: str, *args: Any, sender: Any) -> None:
        """A transaction to one of the test tokens (``arm``, ``mint``)."""
        name = "ReentrantToken" if token == self.reentrant_token else "FeeOnTransferToken"
        contract = self.w3.eth.contract(address=token, abi=test_artifacts()[name]["abi"])
        await send_and_wait(
            self.w3,
            sender,
            {"to": token, "data": contract.encode_abi(function, args=list(args))},
            max_fee_wei=OnChain.MAX_FEE_WEI,
            priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
        )


async def deploy_test_token(onchain: OnChain, name: str) -> str:
    receipt = await send_and_wait(
        onchain.w3,
        onchain.accounts.deployer,
        {"data": test_artifacts()[name]["bytecode"]},
        max_fee_wei=OnChain.MAX_FEE_WEI,
        priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
    )
    return str(receipt["contractAddress"])


def start_node() -> AnvilNode:
    node = AnvilNode(extra_args=("--timestamp", str(START)))
    node.start()
    return node


async def build_world(node: AnvilNode, accounts: ChainAccounts) -> MarketWorld:
    """Oracle (regtest mode, genesis at GENESIS), TestWBTC, the two attack tokens, and a
    market allowing all three; every test account funded with ether."""
    onchain = OnChain(node, accounts)
    holders = [accounts.deployer, accounts.outsider, accounts.new_owner, *accounts.signers]
    for account in holders:
        fund(node.url, account.address)
    oracle = await onchain.deploy(
        genesis=regtest_genesis(GENESIS, GENESIS_TIME, bits=REGTEST_BITS), network="regtest"
    )
    deployer = accounts.deployer
    wbtc = await deploy_test_wbtc(onchain.w3, deployer, max_fee_wei=OnChain.MAX_FEE_WEI)
    fee_token = await deploy_test_token(onchain, "FeeOnTransferToken")
    reentrant = await deploy_test_token(onchain, "ReentrantToken")
    address = await deploy_market(
        onchain.w3, deployer, oracle.address, [wbtc, fee_token, reentrant],
        max_fee_wei=OnChain.MAX_FEE_WEI,
    )  # fmt: skip
    market = MarketContract(onchain.w3, address, max_fee_wei=OnChain.MAX_FEE_WEI)
    return MarketWorld(
        onchain=onchain,
        oracle=oracle,
        market=market,
        wbtc=wbtc,
        fee_token=fee_token,
        reentrant_token=reentrant,
        holders=holders,
    )


async def send_erc20(world: MarketWorld, token: str, to: str, amount: int, *, sender: Any) -> None:
    """An ERC-20 ``transfer`` (position tokens trade like any token)."""
    from oracle.market.chain import erc20

    contract = erc20(world.w3, token)
    await send_and_wait(
        world.w3,
        sender,
        {"to": contract.address, "data": contract.encode_abi("transfer", args=[to, amount])},
        max_fee_wei=OnChain.MAX_FEE_WEI,
        priority_fee_wei=OnChain.PRIORITY_FEE_WEI,
    )


async def token_text(world: MarketWorld, token: str, function: str) -> Any:
    from oracle.market.chain import erc20

    return await getattr(erc20(world.w3, token).functions, function)().call()
