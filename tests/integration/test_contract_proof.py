"""The chain-bound proof on a real anvil: every way to store a header that is not the
retarget of the epoch after the stored one is refused with its own custom error.

Attacks with real proof of work use real mainnet headers (tests/data): 2009 difficulty-1
headers offered as a 2024 epoch, a real non-retarget block, real retarget headers on a
genesis whose time does not match them. Cases that need chosen header fields (times, bits)
use a regtest-mode oracle and headers mined in Python. Testnet4's BIP94 rule is shown with
real 2009 difficulty-1 headers, which are valid testnet4 minimum-difficulty blocks.
Expected bits come from oracle.bitcoin.difficulty (Core's rule, tested on Core's vectors).
"""

from __future__ import annotations

import csv
import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from oracle.bitcoin.difficulty import NETWORKS, bits_to_target, calculate_next_work_required
from oracle.bitcoin.header import parse_header
from oracle.publish.anchor import Checkpoint, mainnet_genesis
from oracle.publish.contract import ContractReverted, OracleContract
from oracle.publish.signing import Report
from tests.conftest import DATA
from tests.fixtures.anvil import (
    REGTEST_BITS,
    OnChain,
    header_hash_le,
    mainnet_boundary_headers,
    mainnet_proof,
    mainnet_report,
    regtest_genesis,
    regtest_header,
    regtest_proof,
    report_for,
)

pytestmark = pytest.mark.anvil

BOUNDARY = mainnet_boundary_headers()
#: Epoch 413's retarget (height 832,608) was mined in February 2024.
EPOCH = 413
DIFF1_BITS = 0x1D00FFFF
POW_LIMIT = NETWORKS["mainnet"].pow_limit
REGTEST_GENESIS = 50
T0 = 1_700_000_000


@functools.cache
def continuous_headers() -> dict[int, bytes]:
    """height -> raw header for every block 822,528..830,592 (real mainnet data)."""
    with (DATA / "headers_822528_830592.csv").open(newline="", encoding="utf-8") as handle:
        return {
            int(row["height"]): bytes.fromhex(row["header_hex"]) for row in csv.DictReader(handle)
        }


@dataclass
class Deployed:
    mainnet: OracleContract  # genesis: epoch 412
    regtest: OracleContract  # genesis: REGTEST_GENESIS at T0


@pytest.fixture(scope="module")
async def deployed(onchain: OnChain) -> Deployed:
    return Deployed(
        mainnet=await onchain.deploy(genesis=mainnet_genesis(EPOCH - 1)),
        regtest=await onchain.deploy(
            genesis=regtest_genesis(REGTEST_GENESIS, T0), network="regtest"
        ),
    )


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, deployed: Deployed) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


async def signed_refusal(
    onchain: OnChain, oracle: OracleContract, report: Report, proof: bytes
) -> ContractReverted:
    """Simulate a correctly signed submit of ``report``; the refusal must come from ``proof``."""
    signatures = onchain.sign(report, onchain.accounts.signers[:3], oracle.address)
    with pytest.raises(ContractReverted) as caught:
        await oracle.simulate_submit(
            report, signatures, proof, sender=onchain.accounts.deployer.address
        )
    return caught.value


def bits_of(raw: bytes) -> int:
    return parse_header(raw).bits


def with_bits(raw: bytes, bits: int) -> bytes:
    return raw[:72] + struct.pack("<I", bits) + raw[76:]


# ------------------------------------------------------------------ real headers, mainnet mode


async def test_a_2009_difficulty_1_proof_as_a_2024_epoch(
    onchain: OnChain, deployed: Deployed
) -> None:
    """The attack of issue 13: valid 2009 headers (difficulty 1) stored as a 2024 epoch."""
    last, retarget = BOUNDARY[2015], BOUNDARY[2016]
    assert (bits_of(last), bits_of(retarget)) == (DIFF1_BITS, DIFF1_BITS)
    error = await signed_refusal(
        onchain, deployed.mainnet, report_for(EPOCH, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "LastHeaderBitsMismatch",
        {"headerBits": DIFF1_BITS, "storedBits": bits_of(BOUNDARY[(EPOCH - 1) * 2016])},
    )


async def test_a_2009_retarget_header_on_the_real_last_header(
    onchain: OnChain, deployed: Deployed
) -> None:
    last, retarget = BOUNDARY[EPOCH * 2016 - 1], BOUNDARY[2016]
    error = await signed_refusal(
        onchain, deployed.mainnet, report_for(EPOCH, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "HeaderNotLinked",
        {"lastHeaderHash": header_hash_le(last), "prevHash": retarget[4:36]},
    )


async def test_an_easy_header_claiming_the_stored_bits_lacks_the_work(
    onchain: OnChain, deployed: Deployed
) -> None:
    stored_bits = bits_of(BOUNDARY[(EPOCH - 1) * 2016])
    forged = with_bits(BOUNDARY[2015], stored_bits)  # a 2009 header relabelled with 2024 bits
    error = await signed_refusal(
        onchain, deployed.mainnet, mainnet_report(EPOCH), forged + BOUNDARY[EPOCH * 2016]
    )
    assert (error.name, error.args_by_name) == (
        "InsufficientProofOfWork",
        {
            "blockHash": bytes.fromhex(parse_header(forged).block_hash_hex),
            "target": bits_to_target(stored_bits),
        },
    )
    # The real last header with another nonce: the stored bits, but not met.
    real = BOUNDARY[EPOCH * 2016 - 1]
    nonce = parse_header(real).nonce
    bumped = real[:76] + struct.pack("<I", (nonce + 1) % 2**32)
    error = await signed_refusal(
        onchain, deployed.mainnet, mainnet_report(EPOCH), bumped + BOUNDARY[EPOCH * 2016]
    )
    assert (error.name, error.args_by_name["target"]) == (
        "InsufficientProofOfWork",
        bits_to_target(stored_bits),
    )


async def test_a_non_retarget_block_is_not_the_retarget(onchain: OnChain) -> None:
    """Two consecutive real blocks inside epoch 408 (heights 822,533 and 822,534) offered as
    epoch 409's proof: linked, real work, the stored bits, but not Core's retarget."""
    headers = continuous_headers()
    oracle = await onchain.deploy(genesis=mainnet_genesis(408))
    start = 408 * 2016
    last, block = headers[start + 5], headers[start + 6]
    expected = calculate_next_work_required(
        NETWORKS["mainnet"],
        last_bits=bits_of(headers[start]),
        first_time=parse_header(headers[start]).time,
        last_time=parse_header(last).time,
    )
    assert expected != bits_of(block) == bits_of(headers[start])
    error = await signed_refusal(onchain, oracle, report_for(409, block), last + block)
    assert (error.name, error.args_by_name) == (
        "BitsNotRetarget",
        {"reported": bits_of(block), "expected": expected},
    )


@pytest.mark.parametrize("shift_s", [86_400, -3 * 86_400])
async def test_real_retarget_headers_on_a_mismatched_previous_epoch(
    onchain: OnChain, shift_s: int
) -> None:
    """A genesis whose time is not epoch 412's: the real epoch-413 headers are no longer the
    exact retarget from it (the rule, not a [1/4, 4] bound, is enforced)."""
    real = mainnet_genesis(EPOCH - 1)
    genesis = Checkpoint(
        epoch=real.epoch,
        block_hash_hex=real.block_hash_hex,
        bits=real.bits,
        time=real.time + shift_s,
        seed_bits=real.seed_bits,
    )
    oracle = await onchain.deploy(genesis=genesis)
    proof = mainnet_proof(EPOCH)
    expected = calculate_next_work_required(
        NETWORKS["mainnet"],
        last_bits=real.bits,
        first_time=genesis.time,
        last_time=parse_header(proof[:80]).time,
    )
    assert expected != mainnet_report(EPOCH).bits
    error = await signed_refusal(onchain, oracle, mainnet_report(EPOCH), proof)
    assert (error.name, error.args_by_name) == (
        "BitsNotRetarget",
        {"reported": mainnet_report(EPOCH).bits, "expected": expected},
    )


async def test_the_real_proof_is_accepted_on_the_real_genesis(
    onchain: OnChain, deployed: Deployed
) -> None:
    await onchain.submit(deployed.mainnet, mainnet_report(EPOCH), mainnet_proof(EPOCH))
    assert await deployed.mainnet.latest_epoch() == EPOCH


# ------------------------------------------------------------------ testnet4 (BIP94)


def bip94_genesis(bits: int, time: int) -> Checkpoint:
    return Checkpoint(epoch=0, block_hash_hex="00" * 32, bits=bits, time=time, seed_bits=())


async def test_testnet4_accepts_a_minimum_difficulty_last_block(onchain: OnChain) -> None:
    """On testnet4 the last block of an epoch may be a minimum-difficulty (0x1d00ffff) block
    although the epoch's bits are harder. Real 2009 headers are such blocks."""
    last, retarget = BOUNDARY[2015], BOUNDARY[2016]
    harder = 0x1C7FFF80  # target = powLimit / 2
    assert bits_to_target(harder) == (0xFFFF << 207)
    first_time = parse_header(last).time - 3 * 1_209_600
    expected = calculate_next_work_required(
        NETWORKS["testnet4"],
        last_bits=DIFF1_BITS,
        first_bits=harder,
        first_time=first_time,
        last_time=parse_header(last).time,
    )
    assert expected == DIFF1_BITS == bits_of(retarget)
    genesis = bip94_genesis(harder, first_time)
    testnet4 = await onchain.deploy(genesis=genesis, network="testnet4")
    # Other bits than the stored ones or the minimum difficulty are refused on testnet4 too.
    real_last = BOUNDARY[EPOCH * 2016 - 1]
    real_retarget = BOUNDARY[EPOCH * 2016]
    error = await signed_refusal(
        onchain, testnet4, report_for(1, real_retarget), real_last + real_retarget
    )
    assert (error.name, error.args_by_name) == (
        "LastHeaderBitsMismatch",
        {"headerBits": bits_of(real_last), "storedBits": harder},
    )
    # The minimum-difficulty last block with the real retarget on top of it is accepted.
    await onchain.submit(testnet4, report_for(1, retarget), last + retarget)
    stored = await testnet4.retarget(1)
    assert stored is not None and stored.block_hash_hex == parse_header(retarget).block_hash_hex
    # Mainnet has no minimum-difficulty blocks: the same proof is refused there.
    mainnet = await onchain.deploy(genesis=genesis)
    error = await signed_refusal(onchain, mainnet, report_for(1, retarget), last + retarget)
    assert (error.name, error.args_by_name) == (
        "LastHeaderBitsMismatch",
        {"headerBits": DIFF1_BITS, "storedBits": harder},
    )


async def test_testnet4_takes_the_old_target_from_the_stored_bits(onchain: OnChain) -> None:
    """BIP94: a minimum-difficulty last block does not lower the next target; the rule starts
    from the epoch's own (stored) bits, so 4 x an eighth of powLimit is required here."""
    last, retarget = BOUNDARY[2015], BOUNDARY[2016]
    harder = 0x1C1FFFE0  # target = powLimit / 8
    assert bits_to_target(harder) == (0xFFFF << 205)
    first_time = parse_header(last).time - 5 * 1_209_600
    bip94 = calculate_next_work_required(
        NETWORKS["testnet4"],
        last_bits=DIFF1_BITS,
        first_bits=harder,
        first_time=first_time,
        last_time=parse_header(last).time,
    )
    from_last_block = calculate_next_work_required(
        NETWORKS["mainnet"],
        last_bits=DIFF1_BITS,
        first_time=first_time,
        last_time=parse_header(last).time,
    )
    assert bits_to_target(bip94) == (0xFFFF << 207) and from_last_block == DIFF1_BITS
    testnet4 = await onchain.deploy(genesis=bip94_genesis(harder, first_time), network="testnet4")
    error = await signed_refusal(onchain, testnet4, report_for(1, retarget), last + retarget)
    assert (error.name, error.args_by_name) == (
        "BitsNotRetarget",
        {"reported": DIFF1_BITS, "expected": bip94},
    )


# ------------------------------------------------------------------ mined headers, regtest mode


async def test_bits_changed_in_regtest_mode(onchain: OnChain, deployed: Deployed) -> None:
    last, retarget = regtest_proof(last_time=T0 + 1_000_000, time=T0 + 1_209_600, bits=0x2000FFFF)
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "BitsNotRetarget",
        {"reported": 0x2000FFFF, "expected": REGTEST_BITS},
    )


async def test_a_last_header_with_other_bits_in_regtest_mode(
    onchain: OnChain, deployed: Deployed
) -> None:
    last, retarget = regtest_proof(
        last_time=T0 + 1_000_000, time=T0 + 1_209_600, last_bits=0x2000FFFF
    )
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "LastHeaderBitsMismatch",
        {"headerBits": 0x2000FFFF, "storedBits": REGTEST_BITS},
    )


@pytest.mark.parametrize("which", ["last", "retarget"])
async def test_a_header_more_than_two_hours_ahead_of_the_evm_clock(
    onchain: OnChain, deployed: Deployed, which: str
) -> None:
    now = await onchain.chain_time()  # block.timestamp of an eth_call at "latest"
    limit = now + 2 * 3600
    times = {"last": limit, "retarget": limit}
    times[which] = limit + 1
    last, retarget = regtest_proof(last_time=times["last"], time=times["retarget"], salt=7)
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "HeaderTimeInFuture",
        {"time": limit + 1, "limit": limit},
    )
    # Exactly two hours ahead is allowed (Bitcoin's MAX_FUTURE_BLOCK_TIME).
    last, retarget = regtest_proof(last_time=limit, time=limit, salt=9)
    report = report_for(REGTEST_GENESIS + 1, retarget)
    signatures = onchain.sign(report, onchain.accounts.signers[:3], deployed.regtest.address)
    await deployed.regtest.simulate_submit(
        report, signatures, last + retarget, sender=onchain.accounts.deployer.address
    )


@pytest.mark.parametrize("delta", [0, -1, -86_400])
async def test_epoch_times_must_increase(onchain: OnChain, deployed: Deployed, delta: int) -> None:
    last, retarget = regtest_proof(last_time=T0 + 1_000_000, time=T0 + delta, salt=3)
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, retarget), last + retarget
    )
    assert (error.name, error.args_by_name) == (
        "TimeNotIncreasing",
        {"time": T0 + delta, "previousTime": T0},
    )


async def test_a_mined_header_just_failing_its_bits(onchain: OnChain, deployed: Deployed) -> None:
    last = regtest_header(bits=REGTEST_BITS, time=T0 + 1_000_000)
    # A header linked to `last` whose hash is above regtest's target (about half of all nonces).
    from oracle.bitcoin.header import double_sha256

    prefix = struct.pack(
        "<i32s32sII", 0x20000000, header_hash_le(last), b"\x02" * 32, T0 + 1_209_600, REGTEST_BITS
    )
    raw = next(
        candidate
        for nonce in range(1000)
        if int.from_bytes(double_sha256(candidate := prefix + struct.pack("<I", nonce)), "little")
        > bits_to_target(REGTEST_BITS)
    )
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, raw), last + raw
    )
    assert (error.name, error.args_by_name) == (
        "InsufficientProofOfWork",
        {
            "blockHash": bytes.fromhex(parse_header(raw).block_hash_hex),
            "target": bits_to_target(REGTEST_BITS),
        },
    )
