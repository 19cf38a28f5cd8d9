"""The correction path and finality of DifficultyOracle v2 on a real anvil.

A regtest-mode oracle (dev chain) with headers mined in Python plays a Bitcoin reorg: two
competing retarget blocks on the same last header, or on different last headers. Only the
latest epoch can be replaced, only inside its challenge window (which a replacement does
not restart), by a threshold-signed report with a new chain-bound proof. The EVM clock is
moved with evm_increaseTime; the window's start is the block time of the storing
transaction's receipt. Expected index values come from oracle.index.bme.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from oracle.bitcoin.header import parse_header
from oracle.index.bme import EpochTarget, bme
from oracle.publish.anchor import DEFAULT_CHALLENGE_WINDOW_S
from oracle.publish.contract import (
    AggregatorContract,
    ContractReverted,
    OracleContract,
    deploy_aggregator,
)
from tests.fixtures.anvil import (
    REGTEST_BITS,
    OnChain,
    header_hash_le,
    regtest_genesis,
    regtest_header,
    regtest_proof,
    report_for,
)

pytestmark = pytest.mark.anvil

GENESIS = 100
T0 = 1_700_000_000
TWO_WEEKS = 1_209_600
WINDOW = DEFAULT_CHALLENGE_WINDOW_S


@dataclass
class Deployed:
    oracle: OracleContract
    adapter: AggregatorContract


@pytest.fixture(scope="module")
async def deployed(onchain: OnChain) -> Deployed:
    oracle = await onchain.deploy(genesis=regtest_genesis(GENESIS, T0), network="regtest")
    address = await deploy_aggregator(
        onchain.w3,
        onchain.accounts.deployer,
        oracle_address=oracle.address,
        n_days=14,
        max_fee_wei=onchain.MAX_FEE_WEI,
        priority_fee_wei=onchain.PRIORITY_FEE_WEI,
    )
    return Deployed(oracle=oracle, adapter=AggregatorContract(onchain.w3, address))


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, deployed: Deployed) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


def proof_for(epoch: int, salt: int, *, shift_s: int = 0) -> tuple[Any, bytes]:
    """(report, proof) of a mined retarget for ``epoch`` (one two-week step per epoch)."""
    steps = epoch - GENESIS
    last, retarget = regtest_proof(
        last_time=T0 + steps * TWO_WEEKS - 600 + shift_s,
        time=T0 + steps * TWO_WEEKS + shift_s,
        salt=salt,
    )
    return report_for(epoch, retarget), last + retarget


async def stored_at(onchain: OnChain, receipt: dict[str, Any]) -> int:
    return int((await onchain.w3.eth.get_block(receipt["blockNumber"]))["timestamp"])


async def refusal(
    onchain: OnChain,
    oracle: OracleContract,
    report: Any,
    proof: bytes,
    signers: list[Any] | None = None,
    function: str = "replace",
) -> ContractReverted:
    signatures = onchain.sign(report, signers or onchain.accounts.signers[:3], oracle.address)
    with pytest.raises(ContractReverted) as caught:
        await oracle.simulate_submit(
            report, signatures, proof, sender=onchain.accounts.deployer.address, function=function
        )
    return caught.value


def regtest_bme14(epoch: int) -> int:
    return bme(14, [EpochTarget.from_bits(epoch, REGTEST_BITS)]).fixed


# ------------------------------------------------------------------ replacement


async def test_a_competing_retarget_replaces_the_latest_epoch_inside_its_window(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    first, first_proof = proof_for(GENESIS + 1, salt=1)
    start = await stored_at(onchain, await onchain.submit(oracle, first, first_proof))
    assert await oracle.latest_stored_at() == start
    onchain.advance(WINDOW // 2)
    # A competing block on the same last header (a one-block reorg at the retarget).
    last = first_proof[:80]
    rival_header = regtest_header(
        bits=REGTEST_BITS, time=first.time + 30, prev_hash_le=header_hash_le(last), salt=99
    )
    rival = report_for(GENESIS + 1, rival_header)
    signers = onchain.accounts.signers
    receipt = await onchain.submit(
        oracle, rival, last + rival_header, [signers[0], signers[2], signers[4]], function="replace"
    )
    (log,) = oracle.contract.events.EpochReplaced().process_receipt(receipt)
    assert dict(log["args"]) == {
        "epoch": GENESIS + 1,
        "oldHash": first.block_hash,
        "newHash": rival.block_hash,
        "submitter": onchain.accounts.deployer.address,
        "signerBitmap": 0b10101,
    }
    stored = await oracle.retarget(GENESIS + 1)
    assert stored is not None
    assert (stored.block_hash_hex, stored.time) == (rival.block_hash_hex, rival.time)
    # The window is not restarted: it still closes WINDOW after the first storing.
    assert await oracle.latest_stored_at() == start
    assert await oracle.final_at(GENESIS + 1) == start + WINDOW
    latest = await deployed.adapter.latest_round_data()
    assert latest == (GENESIS + 1, regtest_bme14(GENESIS + 1), rival.time, start, GENESIS + 1)
    # A deeper reorg: another last header and retarget, still inside the window.
    deeper, deeper_proof = proof_for(GENESIS + 1, salt=7, shift_s=120)
    receipt = await onchain.submit(oracle, deeper, deeper_proof, function="replace")
    (log,) = oracle.contract.events.EpochReplaced().process_receipt(receipt)
    assert (log["args"]["oldHash"], log["args"]["newHash"]) == (
        rival.block_hash,
        deeper.block_hash,
    )
    error = await refusal(onchain, oracle, deeper, deeper_proof)
    assert (error.name, error.args_by_name) == ("ReportAlreadyAccepted", {"epoch": GENESIS + 1})
    # At the end of the window the epoch is final and can no longer be replaced.
    onchain.advance(start + WINDOW - await onchain.chain_time())
    assert await oracle.final_at(GENESIS + 1) == 0
    error = await refusal(onchain, oracle, first, first_proof)
    assert (error.name, error.args_by_name) == (
        "ReplacementWindowClosed",
        {"epoch": GENESIS + 1, "closedAt": start + WINDOW},
    )


async def test_only_the_latest_epoch_can_be_replaced(onchain: OnChain, deployed: Deployed) -> None:
    oracle = deployed.oracle
    for epoch in (GENESIS + 1, GENESIS + 2):
        await onchain.submit(oracle, *proof_for(epoch, salt=epoch))
    for epoch in (GENESIS + 1, GENESIS + 3):
        error = await refusal(onchain, oracle, *proof_for(epoch, salt=50))
        assert (error.name, error.args_by_name) == (
            "NotLatestEpoch",
            {"epoch": epoch, "latestEpoch": GENESIS + 2},
        )
    # Epoch 101 became final when 102 was stored on top of it, without waiting.
    assert await oracle.final_at(GENESIS + 1) == 0


async def test_the_genesis_cannot_be_replaced(onchain: OnChain, deployed: Deployed) -> None:
    report, proof = proof_for(GENESIS, salt=5, shift_s=60)
    error = await refusal(onchain, deployed.oracle, report, proof)
    assert (error.name, error.args_by_name) == ("GenesisNotReplaceable", {"epoch": GENESIS})


async def test_a_replacement_needs_the_threshold_the_current_config_and_a_valid_proof(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    await onchain.submit(oracle, *proof_for(GENESIS + 1, salt=1))
    report, proof = proof_for(GENESIS + 1, salt=11, shift_s=60)
    error = await refusal(onchain, oracle, report, proof, onchain.accounts.signers[:2])
    assert (error.name, error.args_by_name) == ("TooFewSignatures", {"count": 2, "threshold": 3})
    error = await refusal(onchain, oracle, replace(report, config_version=2), proof)
    assert (error.name, error.args_by_name) == (
        "StaleSignerConfig",
        {"signedVersion": 2, "currentVersion": 1},
    )
    unlinked = regtest_header(bits=REGTEST_BITS, time=report.time, salt=12)
    error = await refusal(onchain, oracle, report_for(GENESIS + 1, unlinked), proof[:80] + unlinked)
    assert (error.name, error.args_by_name) == (
        "HeaderNotLinked",
        {"lastHeaderHash": header_hash_le(proof[:80]), "prevHash": unlinked[4:36]},
    )
    # The proof is checked against epoch e-1 (the genesis): its time must still increase.
    early, early_proof = proof_for(GENESIS + 1, salt=13, shift_s=-TWO_WEEKS)
    error = await refusal(onchain, oracle, early, early_proof)
    assert (error.name, error.args_by_name) == (
        "TimeNotIncreasing",
        {"time": T0, "previousTime": T0},
    )
    await onchain.transact(oracle, "pause")
    error = await refusal(onchain, oracle, report, proof)
    assert (error.name, error.args_by_name) == ("EnforcedPause", {})


# ------------------------------------------------------------------ finality


async def test_final_reads_wait_for_the_next_epoch_and_its_window(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    at = T0 + TWO_WEEKS // 2  # between the genesis retarget and the next one
    # The genesis is final at once, but nothing after `at` is stored yet.
    assert await oracle.bme_final(14, GENESIS) == regtest_bme14(GENESIS)
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_at_final(14, at)
    assert (caught.value.name, caught.value.args_by_name) == (
        "NoEpochAfter",
        {"time": at, "latestEpoch": GENESIS},
    )
    # "Latest known" answers already, and can still change.
    assert await oracle.bme_at(14, at) == regtest_bme14(GENESIS)
    receipt = await onchain.submit(oracle, *proof_for(GENESIS + 1, salt=1))
    final_at = await stored_at(onchain, receipt) + WINDOW
    for call in (oracle.bme_at_final(14, at), oracle.bme_final(14, GENESIS + 1)):
        with pytest.raises(ContractReverted) as caught:
            await call
        assert (caught.value.name, caught.value.args_by_name) == (
            "EpochNotFinal",
            {"epoch": GENESIS + 1, "finalAt": final_at},
        )
    onchain.advance(final_at - await onchain.chain_time())
    assert await oracle.bme_at_final(14, at) == (regtest_bme14(GENESIS), GENESIS)
    assert await oracle.bme_final(14, GENESIS + 1) == regtest_bme14(GENESIS + 1)
    # A later epoch stored on top makes the one below final at once.
    at_101 = T0 + TWO_WEEKS + 60
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_at_final(14, at_101)
    assert caught.value.name == "NoEpochAfter"
    await onchain.submit(oracle, *proof_for(GENESIS + 2, salt=2))
    assert await oracle.bme_final(14, GENESIS + 1) == regtest_bme14(GENESIS + 1)
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_at_final(14, at_101)
    assert caught.value.name == "EpochNotFinal"
    assert parse_header(proof_for(GENESIS + 2, salt=2)[1][80:]).time > at_101
