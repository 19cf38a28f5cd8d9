"""Timelocked governance, re-anchoring and deployment refusals of DifficultyOracle v2 on a
real anvil.

Signer-set, threshold and re-anchor changes are announced, executable only after the
governance delay (the EVM clock is moved with evm_increaseTime), cancellable, and every
signer change bumps the configuration version that reports carry. Operation ids are
computed here from the ABI encoding (eth_abi), not read from the contract.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from oracle.errors import InputError
from oracle.index.bme import EpochTarget, bme
from oracle.publish.anchor import DEFAULT_GOVERNANCE_DELAY_S, Checkpoint, mainnet_genesis
from oracle.publish.contract import (
    ORACLE,
    ContractReverted,
    OracleContract,
    deployment_data,
    send_and_wait,
)
from tests.fixtures.anvil import AnvilNode, OnChain, mainnet_proof, mainnet_report, regtest_genesis

pytestmark = pytest.mark.anvil

GENESIS = 399
DELAY = DEFAULT_GOVERNANCE_DELAY_S


@pytest.fixture(scope="module")
async def oracle(onchain: OnChain) -> OracleContract:
    return await onchain.deploy(genesis=mainnet_genesis(GENESIS))


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, oracle: OracleContract) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


def signer_config_id(signers: list[str], threshold: int) -> bytes:
    return keccak(abi_encode(["string", "address[]", "uint8"], ["signers", signers, threshold]))


def reanchor_id(genesis: Checkpoint) -> bytes:
    return keccak(
        abi_encode(
            ["string", "(uint32,bytes32,uint32,uint32)", "uint32[]"],
            ["reanchor", genesis.as_tuple(), list(genesis.seed_bits)],
        )
    )


async def block_time(onchain: OnChain, receipt: dict[str, Any]) -> int:
    return int((await onchain.w3.eth.get_block(receipt["blockNumber"]))["timestamp"])


async def refusal(
    onchain: OnChain, oracle: OracleContract, function: str, *args: Any, sender: Any = None
) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await onchain.transact(oracle, function, *args, sender=sender)
    return caught.value


async def simulate_refusal(
    onchain: OnChain, oracle: OracleContract, report: Any, signers: list[Any], proof: bytes
) -> ContractReverted:
    signatures = onchain.sign(report, signers, oracle.address)
    with pytest.raises(ContractReverted) as caught:
        await oracle.simulate_submit(
            report, signatures, proof, sender=onchain.accounts.deployer.address
        )
    return caught.value


# ------------------------------------------------------------------ signer configuration


async def test_a_signer_change_is_timelocked_and_voids_older_signatures(
    onchain: OnChain, oracle: OracleContract
) -> None:
    accounts = onchain.accounts
    old = accounts.signers
    new = [s.address for s in old[1:]] + [accounts.outsider.address]
    receipt = await onchain.transact(oracle, "scheduleSignerConfig", new, 2)
    executable_at = await block_time(onchain, receipt) + DELAY
    op_id = signer_config_id(new, 2)
    (log,) = oracle.contract.events.SignerConfigScheduled().process_receipt(receipt)
    assert dict(log["args"]) == {
        "id": op_id,
        "signers": new,
        "threshold": 2,
        "executableAt": executable_at,
    }
    assert await oracle.contract.functions.scheduledAt(op_id).call() == executable_at
    # The owner cannot make a new quorum at once: the change waits for the delay.
    error = await refusal(onchain, oracle, "executeSignerConfig", new, 2)
    assert (error.name, error.args_by_name) == (
        "TooEarly",
        {"id": op_id, "executableAt": executable_at},
    )
    onchain.advance(executable_at - await onchain.chain_time())
    receipt = await onchain.transact(
        oracle, "executeSignerConfig", new, 2, sender=accounts.outsider
    )  # anyone may execute
    (log,) = oracle.contract.events.SignerConfigChanged().process_receipt(receipt)
    assert dict(log["args"]) == {"configVersion": 2, "signers": new, "threshold": 2}
    status = await oracle.status()
    assert (status.signers, status.threshold, status.config_version) == (tuple(new), 2, 2)
    assert not await oracle.contract.functions.isSigner(old[0].address).call()
    assert await oracle.contract.functions.scheduledAt(op_id).call() == 0

    # Signatures under the old configuration (version 1), even by signers still in the set.
    stale = await simulate_refusal(
        onchain, oracle, mainnet_report(400, 1), old[1:3], mainnet_proof(400)
    )
    assert (stale.name, stale.args_by_name) == (
        "StaleSignerConfig",
        {"signedVersion": 1, "currentVersion": 2},
    )
    # A removed signer's signature under the new version.
    removed = await simulate_refusal(
        onchain, oracle, mainnet_report(400, 2), old[:2], mainnet_proof(400)
    )
    assert (removed.name, removed.args_by_name) == ("UnknownSigner", {"signer": old[0].address})
    # The new set, at its threshold of 2: bits 0 (old[1]) and 4 (outsider) of the new order.
    receipt = await onchain.submit(
        oracle, mainnet_report(400, 2), mainnet_proof(400), [old[1], accounts.outsider]
    )
    (log,) = oracle.contract.events.ReportAccepted().process_receipt(receipt)
    assert log["args"]["signerBitmap"] == 0b10001
    error = await refusal(onchain, oracle, "executeSignerConfig", new, 2)
    assert (error.name, error.args_by_name) == ("NotScheduled", {"id": op_id})


async def test_raising_the_threshold(onchain: OnChain, oracle: OracleContract) -> None:
    signers = [s.address for s in onchain.accounts.signers]
    await onchain.transact(oracle, "scheduleSignerConfig", signers, 5)
    onchain.advance(DELAY)
    await onchain.transact(oracle, "executeSignerConfig", signers, 5)
    error = await simulate_refusal(
        onchain, oracle, mainnet_report(400, 2), onchain.accounts.signers[:4], mainnet_proof(400)
    )
    assert (error.name, error.args_by_name) == ("TooFewSignatures", {"count": 4, "threshold": 5})
    await onchain.submit(
        oracle, mainnet_report(400, 2), mainnet_proof(400), onchain.accounts.signers
    )
    assert await oracle.latest_epoch() == 400


@pytest.mark.parametrize(
    ("make", "error_name", "error_args"),
    [
        (lambda s: (s, 0), "InvalidThreshold", lambda s: {"threshold": 0, "signerCount": 5}),
        (lambda s: (s, 6), "InvalidThreshold", lambda s: {"threshold": 6, "signerCount": 5}),
        (lambda s: ([], 1), "InvalidThreshold", lambda s: {"threshold": 1, "signerCount": 0}),
        (
            lambda s: ([*s, s[2]], 3),
            "DuplicateSignerInConfig",
            lambda s: {"signer": s[2]},
        ),
        (lambda s: ([*s[:2], "0x" + "00" * 20], 2), "ZeroAddress", lambda s: {}),
        (
            lambda s: ([f"0x{i:040x}" for i in range(1, 66)], 3),
            "TooManySigners",
            lambda s: {"count": 65, "maximum": 64},
        ),
    ],
)
async def test_invalid_signer_configurations_are_refused_when_announced(
    onchain: OnChain, oracle: OracleContract, make: Any, error_name: str, error_args: Any
) -> None:
    from eth_utils.address import to_checksum_address

    signers = [s.address for s in onchain.accounts.signers]
    config, threshold = make(signers)
    error = await refusal(
        onchain, oracle, "scheduleSignerConfig", [to_checksum_address(a) for a in config], threshold
    )
    assert (error.name, error.args_by_name) == (error_name, error_args(signers))


async def test_an_announced_change_can_be_cancelled(
    onchain: OnChain, oracle: OracleContract
) -> None:
    signers = [s.address for s in onchain.accounts.signers]
    op_id = signer_config_id(signers, 1)
    await onchain.transact(oracle, "scheduleSignerConfig", signers, 1)
    error = await refusal(onchain, oracle, "scheduleSignerConfig", signers, 1)
    assert (error.name, error.args_by_name) == ("AlreadyScheduled", {"id": op_id})
    receipt = await onchain.transact(oracle, "cancel", op_id)
    (log,) = oracle.contract.events.GovernanceCancelled().process_receipt(receipt)
    assert log["args"]["id"] == op_id
    onchain.advance(DELAY + 1)
    error = await refusal(onchain, oracle, "executeSignerConfig", signers, 1)
    assert (error.name, error.args_by_name) == ("NotScheduled", {"id": op_id})
    error = await refusal(onchain, oracle, "cancel", op_id)
    assert (error.name, error.args_by_name) == ("NotScheduled", {"id": op_id})
    assert (await oracle.status()).threshold == 3


# ------------------------------------------------------------------ re-anchor


async def test_a_reanchor_is_announced_and_applied_after_the_delay(
    onchain: OnChain, oracle: OracleContract
) -> None:
    items = [(mainnet_report(e), mainnet_proof(e)) for e in range(400, 406)]
    await onchain.submit_many(oracle, items, onchain.accounts.signers[:3])
    anchor = mainnet_genesis(402)
    receipt = await onchain.transact(
        oracle, "scheduleReanchor", anchor.as_tuple(), list(anchor.seed_bits)
    )
    executable_at = await block_time(onchain, receipt) + DELAY
    op_id = reanchor_id(anchor)
    (log,) = oracle.contract.events.ReanchorScheduled().process_receipt(receipt)
    assert (
        log["args"]["id"],
        tuple(log["args"]["genesis"].values()),
        tuple(log["args"]["seedBits"]),
        log["args"]["executableAt"],
    ) == (op_id, anchor.as_tuple(), anchor.seed_bits, executable_at)
    error = await refusal(
        onchain, oracle, "executeReanchor", anchor.as_tuple(), list(anchor.seed_bits)
    )
    assert (error.name, error.args_by_name) == (
        "TooEarly",
        {"id": op_id, "executableAt": executable_at},
    )
    # Until it executes, the oracle serves and extends its run as before.
    assert await oracle.latest_epoch() == 405
    onchain.advance(executable_at - await onchain.chain_time())
    receipt = await onchain.transact(
        oracle, "executeReanchor", anchor.as_tuple(), list(anchor.seed_bits)
    )
    (log,) = oracle.contract.events.Anchored().process_receipt(receipt)
    assert (log["args"]["epoch"], log["args"]["bits"], tuple(log["args"]["seedBits"])) == (
        402,
        anchor.bits,
        anchor.seed_bits,
    )
    # The run is now [402, 402]: later epochs are no longer served, earlier ones are seeds.
    assert (await oracle.first_epoch(), await oracle.latest_epoch()) == (402, 402)
    assert await oracle.final_at(402) == 0
    for gone in (403, 405, 401):
        assert await oracle.retarget(gone) is None
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme(14, 403)
    assert (caught.value.name, caught.value.args_by_name) == ("EpochMissing", {"epoch": 403})
    history = [
        EpochTarget.from_bits(402 - 5 + i, bits)
        for i, bits in enumerate((*anchor.seed_bits, anchor.bits))
    ]
    assert await oracle.bme(84, 402) == bme(84, history).fixed
    # Epoch 403 is submitted on the new genesis with its real proof.
    await onchain.submit(oracle, mainnet_report(403), mainnet_proof(403))
    stored = await oracle.retarget(403)
    assert stored is not None and stored.block_hash_hex == mainnet_report(403).block_hash_hex
    assert await oracle.latest_epoch() == 403


async def test_a_reanchor_with_the_wrong_seed_count_is_refused(
    onchain: OnChain, oracle: OracleContract
) -> None:
    anchor = mainnet_genesis(402)
    error = await refusal(
        onchain, oracle, "scheduleReanchor", anchor.as_tuple(), list(anchor.seed_bits[1:])
    )
    assert (error.name, error.args_by_name) == ("BadSeedCount", {"count": 4, "expected": 5})


# ------------------------------------------------------------------ deployment refusals


async def raw_deploy(
    onchain: OnChain,
    *,
    mode: int = 0,
    genesis: tuple[int, bytes, int, int] | None = None,
    seeds: list[int] | None = None,
    window_s: int = 12 * 3600,
    owner: str | None = None,
    threshold: int = 3,
) -> ContractReverted:
    """Deploy with raw constructor arguments (bypassing deploy_oracle's own checks); the
    refusal must come from the constructor."""
    checkpoint = mainnet_genesis(GENESIS)
    data = deployment_data(
        ORACLE,
        owner or onchain.accounts.deployer.address,
        [s.address for s in onchain.accounts.signers[:3]],
        threshold,
        mode,
        genesis or checkpoint.as_tuple(),
        list(checkpoint.seed_bits) if seeds is None else seeds,
        window_s,
        DELAY,
    )
    with pytest.raises(ContractReverted) as caught:
        await send_and_wait(
            onchain.w3,
            onchain.accounts.deployer,
            {"data": data},
            max_fee_wei=onchain.MAX_FEE_WEI,
            priority_fee_wei=onchain.PRIORITY_FEE_WEI,
        )
    return caught.value


@pytest.mark.parametrize("mode", [3, 4, 255])
async def test_unsupported_network_modes(onchain: OnChain, mode: int) -> None:
    error = await raw_deploy(onchain, mode=mode)
    assert (error.name, error.args_by_name) == ("UnsupportedNetwork", {"network": mode})


@pytest.mark.parametrize("network", ["signet", "testnet3", "regtest-strict"])
async def test_deploy_oracle_refuses_signet_and_testnet3(onchain: OnChain, network: str) -> None:
    with pytest.raises(InputError, match="signet and testnet3 are refused"):
        await onchain.deploy(genesis=mainnet_genesis(GENESIS), network=network)


async def test_challenge_window_at_most_three_days(onchain: OnChain) -> None:
    error = await raw_deploy(onchain, window_s=3 * 86400 + 1)
    assert (error.name, error.args_by_name) == (
        "ChallengeWindowTooLong",
        {"window": 3 * 86400 + 1, "maximum": 3 * 86400},
    )
    with pytest.raises(InputError):
        await onchain.deploy(genesis=mainnet_genesis(GENESIS), challenge_window_s=3 * 86400 + 1)
    oracle = await onchain.deploy(genesis=mainnet_genesis(GENESIS), challenge_window_s=3 * 86400)
    assert (await oracle.status()).challenge_window_s == 3 * 86400


@pytest.mark.parametrize(
    ("epoch", "count", "expected"), [(GENESIS, 4, 5), (GENESIS, 6, 5), (2, 5, 2), (0, 1, 0)]
)
async def test_bad_seed_count(onchain: OnChain, epoch: int, count: int, expected: int) -> None:
    genesis = mainnet_genesis(GENESIS)
    error = await raw_deploy(
        onchain,
        genesis=(epoch, *genesis.as_tuple()[1:]),  # type: ignore[arg-type]
        seeds=[genesis.bits] * count,
    )
    assert (error.name, error.args_by_name) == (
        "BadSeedCount",
        {"count": count, "expected": expected},
    )


async def test_a_genesis_the_network_cannot_have_is_refused(onchain: OnChain) -> None:
    genesis = mainnet_genesis(GENESIS)
    easy = (GENESIS, genesis.as_tuple()[1], 0x1D01FFFF, genesis.time)
    error = await raw_deploy(onchain, genesis=easy)
    assert error.name == "TargetAbovePowLimit"
    error = await raw_deploy(onchain, seeds=[*genesis.seed_bits[:4], 0x04923456])
    assert (error.name, error.args_by_name) == ("InvalidBits", {"bits": 0x04923456})
    limit = await onchain.chain_time() + 2 * 3600
    future = (GENESIS, genesis.as_tuple()[1], genesis.bits, limit + 1)
    error = await raw_deploy(onchain, genesis=future)
    assert (error.name, error.args_by_name) == (
        "HeaderTimeInFuture",
        {"time": limit + 1, "limit": limit},
    )


async def test_zero_owner_and_impossible_threshold(onchain: OnChain) -> None:
    error = await raw_deploy(onchain, owner="0x" + "00" * 20)
    assert error.name == "ZeroAddress"
    error = await raw_deploy(onchain, threshold=4)
    assert (error.name, error.args_by_name) == (
        "InvalidThreshold",
        {"threshold": 4, "signerCount": 3},
    )


async def test_regtest_mode_only_on_the_dev_chain(onchain: OnChain, anvil_factory: Any) -> None:
    other: AnvilNode = anvil_factory(chain_id=1337)
    driver = OnChain(other, onchain.accounts)
    try:
        with pytest.raises(ContractReverted) as caught:
            await driver.deploy(genesis=regtest_genesis(10, 1_700_000_000), network="regtest")
        assert (caught.value.name, caught.value.args_by_name) == (
            "RegtestOnlyOnDevChain",
            {"chainId": 1337},
        )
        # Mainnet mode deploys there; regtest mode deploys on the dev chain (31337).
        deployed = await driver.deploy(genesis=mainnet_genesis(GENESIS))
        assert (await deployed.status()).network == "mainnet"
        regtest = await onchain.deploy(
            genesis=regtest_genesis(10, 1_700_000_000), network="regtest"
        )
        assert (await regtest.status()).network == "regtest"
    finally:
        await driver.w3.provider.disconnect()  # type: ignore[attr-defined]


async def test_an_epoch_number_stored_again_after_a_reanchor_shows_its_new_hash(
    onchain: OnChain,
) -> None:
    """A stored hash >= 2^192 (difficulty-1 era) keeps its top 64 bits in a second word; when
    a re-anchor lets the same epoch number be stored again with a smaller hash, the stale
    word must not show through. Real headers: epoch 1 (2009) first, then, after a re-anchor
    at a genesis numbered 0 that carries epoch 399's retarget, epoch 400's retarget as 1."""
    oracle = await onchain.deploy(genesis=mainnet_genesis(0))
    await onchain.submit(oracle, mainnet_report(1), mainnet_proof(1))
    assert int(mainnet_report(1).block_hash_hex, 16) >> 192 != 0
    real = mainnet_genesis(399)
    anchor = Checkpoint(
        epoch=0, block_hash_hex=real.block_hash_hex, bits=real.bits, time=real.time, seed_bits=()
    )
    await onchain.transact(oracle, "scheduleReanchor", anchor.as_tuple(), [])
    onchain.advance(DELAY)
    await onchain.transact(oracle, "executeReanchor", anchor.as_tuple(), [])
    report = replace(mainnet_report(400), epoch=1)
    assert int(report.block_hash_hex, 16) >> 192 == 0
    await onchain.submit(oracle, report, mainnet_proof(400))
    stored = await oracle.retarget(1)
    assert stored is not None and stored.block_hash_hex == report.block_hash_hex
