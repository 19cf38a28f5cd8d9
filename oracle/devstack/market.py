"""The dev stack's market: a TestWBTC collateral, a BmeMarket on the dev oracle, a sample series.

Why: the README's "Hedge with the market on the dev stack" needs something to mint
at once. ``bme-oracle dev`` deploys, from the dev sender's keystore:

* ``TestWBTC`` (8 decimals, a **public** mint: dev and tests only) and mints
  ``DEV_COLLATERAL_SAT`` (100 tWBTC) to the sender, so it can mint positions;
* a ``BmeMarket`` settling against the dev ``DifficultyOracle``, TestWBTC its only
  collateral;
* a sample series, ``BME14-4.85-5.4-<YYMMDD>``: today's index levels as strikes,
  BME14 (one epoch: the regtest chain has a value from its first retarget on), expiring
  at the first 02:00 UTC at least ``SAMPLE_EXPIRY_AFTER_S`` (7 days) after the chain's
  time, so ``bme-oracle dev advance --to +9d`` is always past its settlement.

Regtest's index is a constant, ``2.160E+18`` BTC per TH/s per day (its minimum
difficulty), far above any real strike: every dev series settles at its Cap, the long
taking the whole collateral. The market's arithmetic with moving values is tested on
mainnet data (``tests/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from oracle.devstack.clock import evm_pending_time

#: tWBTC minted to the dev sender (satoshi units): 100 tWBTC.
DEV_COLLATERAL_SAT = 100 * 10**8
SAMPLE_N_DAYS = 14
SAMPLE_FLOOR = "4.85"
SAMPLE_CAP = "5.4"
SAMPLE_EXPIRY_AFTER_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class DevMarket:
    """What ``deploy_dev_market`` deployed (printed in ``dev``'s first line)."""

    address: str
    collateral: str
    sample_series: str
    sample_series_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "market_address": self.address,
            "collateral_address": self.collateral,
            "sample_series": self.sample_series,
            "sample_series_id": self.sample_series_id,
        }


def sample_series_name(now: int) -> str:
    """The sample series for a chain at ``now``: expiry the first 02:00 UTC >= now + 7 days."""
    earliest = datetime.fromtimestamp(now + SAMPLE_EXPIRY_AFTER_S, UTC)
    expiry = earliest.replace(hour=2, minute=0, second=0, microsecond=0)
    if expiry < earliest:
        expiry += timedelta(days=1)
    return f"BME{SAMPLE_N_DAYS}-{SAMPLE_FLOOR}-{SAMPLE_CAP}-{expiry:%y%m%d}"


async def deploy_dev_market(rpc_url: str, sender: Any, oracle_address: str) -> DevMarket:
    """Deploy TestWBTC, the market and the sample series from ``sender`` (funded)."""
    from oracle.index.tokens import parse_series
    from oracle.market.chain import (
        MarketContract,
        deploy_market,
        deploy_test_wbtc,
        mint_test_wbtc,
    )
    from oracle.publish.contract import connect

    w3 = connect(rpc_url)
    try:
        w3.eth.default_block = "pending"
        collateral = await deploy_test_wbtc(w3, sender)
        address = await deploy_market(w3, sender, oracle_address, [collateral])
        await mint_test_wbtc(w3, sender, collateral, sender.address, DEV_COLLATERAL_SAT)
        series = parse_series(sample_series_name(evm_pending_time(rpc_url)))
        market = MarketContract(w3, address)
        series_id = await market.create_series(
            n_days=series.n_days,
            floor=series.floor_fixed,
            cap=series.cap_fixed,
            expiry=series.expiry_ts,
            collateral=collateral,
            sender=sender,
        )
    finally:
        await w3.provider.disconnect()
    return DevMarket(address, collateral, series.series_name, "0x" + series_id.hex())
