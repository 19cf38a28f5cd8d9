"""Every mainnet epoch 1..413 through the chain-bound proof, and the contract's arithmetic,
equal to the Python reference on a real anvil.

Expected values come from oracle/index/bme.py and oracle/bitcoin/difficulty.py (checked
against DESIGN.md's worked examples and Bitcoin Core's vectors in their own tests), from
Core's vectors in tests/data/core_pow_vectors.json and from the real headers in
tests/data/epoch_boundary_headers_0_832608.csv, never from the contract. One oracle is
anchored at the Bitcoin genesis block (epoch 0) and every epoch 1..413 is submitted in
sequence with its real proof (headers 2016e-1 and 2016e): every retarget of Bitcoin's
first 413 is checked by Core's exact rule on chain. Pure arithmetic (compact bits, the
retarget rule, subsidy, BME of any bits) is compared on hypothesis-generated inputs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pytest
from eth_abi.abi import decode as abi_decode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from oracle.bitcoin.difficulty import (
    DIFF1_TARGET,
    NETWORKS,
    bits_to_target,
    calculate_next_work_required,
    encode_compact,
)
from oracle.bitcoin.header import parse_header
from oracle.errors import IndexUnavailable, InvalidBits
from oracle.index.bme import EpochTarget, bme, bme_at, bme_series, epoch_subsidy_sat
from oracle.publish.anchor import DEFAULT_CHALLENGE_WINDOW_S, Checkpoint, mainnet_genesis
from oracle.publish.contract import (
    AggregatorContract,
    ContractReverted,
    OracleContract,
    decode_revert,
    deploy_aggregator,
    load_artifact,
)
from tests.conftest import DATA
from tests.fixtures.anvil import (
    OnChain,
    mainnet_proof,
    mainnet_report,
    mainnet_retarget_headers,
)

pytestmark = pytest.mark.anvil

RETARGETS = mainnet_retarget_headers()
LAST_EPOCH = 413
HISTORY = [
    EpochTarget.from_bits(epoch, parse_header(raw).bits, parse_header(raw).time)
    for epoch, raw in sorted(RETARGETS.items())
    if epoch <= LAST_EPOCH
]
WINDOWS = (14, 28, 84, 364)
VECTORS = json.loads((DATA / "core_pow_vectors.json").read_text(encoding="utf-8"))


def header_time(epoch: int) -> int:
    return parse_header(RETARGETS[epoch]).time


@dataclass
class Deployed:
    oracle: OracleContract  # mainnet mode, genesis epoch 0, epochs 1..413 submitted
    regtest: OracleContract  # regtest mode, for nextBits
    testnet4: OracleContract  # testnet4 mode, for nextBits
    aggregator84: AggregatorContract
    stored_at: int  # block time at which epoch 413 was stored
    load_seconds: float
    sync_w3: Web3


@pytest.fixture(scope="module")
async def deployed(onchain: OnChain) -> Deployed:
    signer = onchain.accounts.signers[:1]
    started = time.monotonic()
    oracle = await onchain.deploy(genesis=mainnet_genesis(0), threshold=1, signers=signer)
    items = [(mainnet_report(e), mainnet_proof(e)) for e in range(1, LAST_EPOCH + 1)]
    receipt = await onchain.submit_many(oracle, items, signer)
    load_seconds = time.monotonic() - started
    assert receipt is not None
    stored_at = int((await onchain.w3.eth.get_block(receipt["blockNumber"]))["timestamp"])
    address = await deploy_aggregator(
        onchain.w3,
        onchain.accounts.deployer,
        oracle_address=oracle.address,
        n_days=84,
        max_fee_wei=onchain.MAX_FEE_WEI,
        priority_fee_wei=onchain.PRIORITY_FEE_WEI,
    )
    regtest_genesis = mainnet_genesis(400)
    return Deployed(
        oracle=oracle,
        regtest=await onchain.deploy(genesis=regtest_genesis, network="regtest"),
        testnet4=await onchain.deploy(genesis=regtest_genesis, network="testnet4"),
        aggregator84=AggregatorContract(onchain.w3, address),
        stored_at=stored_at,
        load_seconds=load_seconds,
        sync_w3=Web3(HTTPProvider(onchain.node.url)),
    )


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, deployed: Deployed) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


def batch(
    onchain: OnChain, oracle: OracleContract, function: str, args: list[tuple[Any, ...]]
) -> list[tuple[bool, bytes]]:
    calldata = [oracle.contract.encode_abi(function, args=list(a)) for a in args]
    return onchain.call_many(oracle.address, calldata)


# ------------------------------------------------------------------ mainnet 1..413 in sequence


async def test_every_mainnet_epoch_from_the_genesis_block_is_stored_as_in_the_data(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    assert (await oracle.first_epoch(), await oracle.latest_epoch()) == (0, LAST_EPOCH)
    results = batch(onchain, oracle, "retarget", [(e,) for e in range(LAST_EPOCH + 1)])
    stored = {
        epoch: (bytes(h).hex(), bits, t)
        for epoch, (ok, data) in enumerate(results)
        if ok
        for h, bits, t in [abi_decode(["bytes32", "uint32", "uint32"], data)]
    }
    expected = {
        epoch: (header.block_hash_hex, header.bits, header.time)
        for epoch in range(LAST_EPOCH + 1)
        for header in [parse_header(RETARGETS[epoch])]
    }
    assert stored == expected
    # Epochs 1..3 (difficulty 1) have hashes >= 2^192: their second storage word is used.
    assert int(expected[1][0], 16) >> 192 != 0
    print(
        f"\nmainnet epochs 1..{LAST_EPOCH} deployed and submitted in {deployed.load_seconds:.1f} s"
    )


async def test_the_accepted_events_carry_epoch_submitter_and_signer_bitmap(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    logs = await oracle.contract.events.ReportAccepted().get_logs(from_block=0)
    signers = await oracle.contract.functions.signers().call()
    assert signers == [onchain.accounts.signers[0].address]
    events = [
        (
            log["args"]["epoch"],
            log["args"]["blockHash"].hex(),
            log["args"]["submitter"],
            log["args"]["signerBitmap"],
        )
        for log in logs
        if log["address"] == oracle.address
    ]
    assert events == [
        (e, parse_header(RETARGETS[e]).block_hash_hex, onchain.accounts.deployer.address, 0b1)
        for e in range(1, LAST_EPOCH + 1)
    ]


@pytest.mark.parametrize("n_days", WINDOWS)
async def test_bme_on_chain_equals_python_for_every_mainnet_epoch(
    onchain: OnChain, deployed: Deployed, n_days: int
) -> None:
    expected = bme_series(n_days, HISTORY)
    window = n_days // 14
    assert sorted(expected) == list(range(window - 1, LAST_EPOCH + 1))
    results = batch(onchain, deployed.oracle, "bme", [(n_days, e) for e in range(LAST_EPOCH + 1)])
    on_chain: dict[int, Any] = {}
    for epoch, (ok, data) in enumerate(results):
        on_chain[epoch] = abi_decode(["uint256"], data)[0] if ok else decode_revert(data).name
    assert on_chain == {
        epoch: expected[epoch].fixed if epoch in expected else "EpochMissing"
        for epoch in range(LAST_EPOCH + 1)
    }


async def test_bme_at_on_chain_equals_python_around_every_retarget_time(
    onchain: OnChain, deployed: Deployed
) -> None:
    times = [t for item in HISTORY[6:] if (t := item.time) is not None]
    args = [(84, at) for t in times for at in (t - 1, t, t + 1, t + 86_400)]
    results = batch(onchain, deployed.oracle, "bmeAt", args)
    mismatches = {
        at: (abi_decode(["uint256"], data)[0] if ok else decode_revert(data).name, want)
        for (_, at), (ok, data) in zip(args, results, strict=True)
        if (want := bme_at(84, HISTORY, at).fixed)
        != (abi_decode(["uint256"], data)[0] if ok else None)
    }
    assert mismatches == {}


async def test_bme_at_before_the_genesis_retarget_is_refused(deployed: Deployed) -> None:
    first_time = header_time(0)
    with pytest.raises(IndexUnavailable):
        bme_at(14, HISTORY, first_time - 1)
    with pytest.raises(ContractReverted) as caught:
        await deployed.oracle.bme_at(14, first_time - 1)
    assert (caught.value.name, caught.value.args_by_name) == (
        "NoEpochAtTime",
        {"time": first_time - 1},
    )


async def test_bme_at_final_equals_python_once_the_next_epoch_is_final(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    # Any time before epoch 412's retarget: the epoch after it is stored and has a later
    # epoch on top of it, so it is final: the value is Python's bme_at, with its epoch.
    times = [t for item in HISTORY[6:LAST_EPOCH] if (t := item.time) is not None]
    args = [(84, at) for t in times for at in (t - 1, t, t + 86_400)]
    args = [a for a in args if a[1] < header_time(LAST_EPOCH)]
    results = batch(onchain, oracle, "bmeAtFinal", args)
    got = [
        abi_decode(["uint256", "uint256"], data) if ok else decode_revert(data).name
        for ok, data in results
    ]
    want = []
    for _, at in args:
        value = bme_at(84, HISTORY, at)
        if value.epoch == LAST_EPOCH - 1:
            want.append("EpochNotFinal")  # epoch 413 is inside its challenge window
        else:
            want.append((value.fixed, value.epoch))
    assert got == want
    # Between the last two retargets: final only after epoch 413's window.
    at = header_time(LAST_EPOCH) - 1
    final_at = deployed.stored_at + DEFAULT_CHALLENGE_WINDOW_S
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_at_final(84, at)
    assert (caught.value.name, caught.value.args_by_name) == (
        "EpochNotFinal",
        {"epoch": LAST_EPOCH, "finalAt": final_at},
    )
    # At or after the latest retarget: no later epoch is stored yet.
    for later in (header_time(LAST_EPOCH), header_time(LAST_EPOCH) + 86_400 * 30):
        with pytest.raises(ContractReverted) as caught:
            await oracle.bme_at_final(84, later)
        assert (caught.value.name, caught.value.args_by_name) == (
            "NoEpochAfter",
            {"time": later, "latestEpoch": LAST_EPOCH},
        )
    onchain.advance(final_at - await onchain.chain_time())
    assert await oracle.bme_at_final(84, at) == (
        bme_at(84, HISTORY, at).fixed,
        LAST_EPOCH - 1,
    )
    assert await oracle.bme_final(84, LAST_EPOCH) == bme_series(84, HISTORY)[LAST_EPOCH].fixed


async def test_bme_final_waits_for_the_window_of_the_latest_epoch_only(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    expected = bme_series(28, HISTORY)
    assert await oracle.bme_final(28, 412) == expected[412].fixed
    assert await oracle.bme_final(28, 1) == expected[1].fixed
    final_at = deployed.stored_at + DEFAULT_CHALLENGE_WINDOW_S
    assert await oracle.final_at(LAST_EPOCH) == final_at
    assert await oracle.final_at(0) == 0  # the genesis is final at once
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_final(28, LAST_EPOCH)
    assert (caught.value.name, caught.value.args_by_name) == (
        "EpochNotFinal",
        {"epoch": LAST_EPOCH, "finalAt": final_at},
    )
    onchain.advance(final_at - 1 - await onchain.chain_time())
    with pytest.raises(ContractReverted):
        await oracle.bme_final(28, LAST_EPOCH)
    onchain.advance(1)
    assert await oracle.final_at(LAST_EPOCH) == 0
    assert await oracle.bme_final(28, LAST_EPOCH) == expected[LAST_EPOCH].fixed
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme_final(28, LAST_EPOCH + 1)
    assert (caught.value.name, caught.value.args_by_name) == (
        "EpochMissing",
        {"epoch": LAST_EPOCH + 1},
    )


async def test_missing_epochs_and_bad_windows_are_refused(deployed: Deployed) -> None:
    oracle = deployed.oracle
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme(14, LAST_EPOCH + 1)
    assert (caught.value.name, caught.value.args_by_name) == (
        "EpochMissing",
        {"epoch": LAST_EPOCH + 1},
    )
    for n_days in (0, 15):
        with pytest.raises(ContractReverted) as caught:
            await oracle.bme(n_days, 300)
        assert (caught.value.name, caught.value.args_by_name) == (
            "InvalidWindow",
            {"nDays": n_days},
        )
    # The view loops stop at 256 epochs (N = 3,584 days).
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme(14 * 257, LAST_EPOCH)
    assert (caught.value.name, caught.value.args_by_name) == ("InvalidWindow", {"nDays": 14 * 257})
    assert await oracle.bme(14 * 256, LAST_EPOCH) == bme_series(14 * 256, HISTORY)[LAST_EPOCH].fixed


async def test_difficulty_and_target_on_chain_equal_python(deployed: Deployed) -> None:
    for item in HISTORY[::9]:
        target = int(item.target)
        assert await deployed.oracle.target(item.epoch) == target
        exact = Fraction(DIFF1_TARGET * 10**18, target)
        assert (
            await deployed.oracle.difficulty_fixed(item.epoch)
            == exact.numerator // exact.denominator
        )


async def test_a_later_genesis_is_seeded_so_bme84_answers_from_it(onchain: OnChain) -> None:
    genesis = mainnet_genesis(399)
    assert len(genesis.seed_bits) == 5
    oracle = await onchain.deploy(genesis=genesis)
    history = HISTORY[394:400]
    assert [item.epoch for item in history] == list(range(394, 400))
    assert await oracle.bme(84, 399) == bme(84, history).fixed
    assert await oracle.target(394) == bits_to_target(parse_header(RETARGETS[394]).bits)
    for missing in (393, 400):
        with pytest.raises(ContractReverted) as caught:
            await oracle.target(missing)
        assert (caught.value.name, caught.value.args_by_name) == (
            "EpochMissing",
            {"epoch": missing},
        )
    # Seeded epochs hold bits only: no retarget (hash, time) before the genesis.
    assert await oracle.retarget(398) is None
    with pytest.raises(ContractReverted) as caught:
        await oracle.bme(98, 399)
    assert (caught.value.name, caught.value.args_by_name) == ("EpochMissing", {"epoch": 393})


# ------------------------------------------------------------------ the AggregatorV3 adapter


async def test_chainlink_adapter_reads_bme84(onchain: OnChain, deployed: Deployed) -> None:
    adapter = deployed.aggregator84
    assert await adapter.decimals() == 18
    assert await adapter.description() == "BME84 / BTC per TH/s per day"
    expected = bme_series(84, HISTORY)
    latest = await adapter.latest_round_data()
    # updatedAt is the EVM time epoch 413 was stored (never ahead of block.timestamp);
    # startedAt the retarget block's Bitcoin header time.
    assert latest == (
        LAST_EPOCH,
        expected[LAST_EPOCH].fixed,
        header_time(LAST_EPOCH),
        deployed.stored_at,
        LAST_EPOCH,
    )
    assert latest[3] <= await onchain.chain_time()
    round_300 = await adapter.contract.functions.getRoundData(300).call()
    assert tuple(round_300) == (300, expected[300].fixed, header_time(300), header_time(300), 300)
    with pytest.raises(ContractLogicError) as caught:
        await adapter.contract.functions.getRoundData(2).call()
    assert decode_revert(str(caught.value.data)).name == "EpochMissing"
    with pytest.raises(ContractLogicError) as caught:
        await adapter.contract.functions.getRoundData(LAST_EPOCH + 1).call()
    assert decode_revert(str(caught.value.data)).args_by_name == {"epoch": LAST_EPOCH + 1}


async def test_pause_stops_final_reads_and_the_adapter_but_not_latest_known_reads(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.oracle
    await onchain.transact(oracle, "pause")
    at = header_time(300) + 1
    for call in (oracle.bme_final(84, 300), oracle.bme_at_final(84, at)):
        with pytest.raises(ContractReverted) as caught:
            await call
        assert (caught.value.name, caught.value.args_by_name) == ("EnforcedPause", {})
    for function, args in (("latestRoundData", ()), ("getRoundData", (300,))):
        with pytest.raises(ContractLogicError) as caught:
            await getattr(deployed.aggregator84.contract.functions, function)(*args).call()
        assert decode_revert(str(caught.value.data)).name == "OraclePaused"
    # "Latest known" reads keep answering (they are not for settlement).
    assert await oracle.bme(84, 300) == bme_series(84, HISTORY)[300].fixed
    assert await oracle.bme_at(84, at) == bme_at(84, HISTORY, at).fixed
    await onchain.transact(oracle, "unpause")
    assert await oracle.bme_final(84, 300) == bme_series(84, HISTORY)[300].fixed


# ------------------------------------------------------------------ pure arithmetic


def sync_oracle(deployed: Deployed, oracle: OracleContract | None = None) -> Any:
    return deployed.sync_w3.eth.contract(
        address=(oracle or deployed.oracle).address, abi=load_artifact("DifficultyOracle")["abi"]
    )


def _is_valid(bits: int) -> bool:
    try:
        bits_to_target(bits)
    except InvalidBits:
        return False
    return True


valid_bits = st.builds(
    lambda size, mantissa: (size << 24) | mantissa,
    st.integers(1, 34),
    st.integers(1, 0x7FFFFF),
).filter(_is_valid)

epochs = st.one_of(
    st.integers(0, 7_000),
    st.sampled_from([103, 104, 105, 207, 208, 311, 312, 313, 416, 6_665, 6_666, 6_667]),
)

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_compute_bme_equals_python_for_any_valid_bits(
    deployed: Deployed, data: st.DataObject
) -> None:
    window = data.draw(st.integers(1, 6), label="T")
    last_epoch = data.draw(epochs.filter(lambda e: e + 1 >= window), label="last_epoch")
    bits = data.draw(st.lists(valid_bits, min_size=window, max_size=window), label="bits")
    history = [EpochTarget.from_bits(last_epoch - window + 1 + i, b) for i, b in enumerate(bits)]
    expected = bme(14 * window, history).fixed
    assert (
        sync_oracle(deployed).functions.computeBme(14 * window, last_epoch, bits).call() == expected
    )


@settings(SETTINGS, max_examples=150)
@given(bits=st.one_of(st.integers(0, 2**32 - 1), valid_bits))
def test_bits_to_target_accepts_and_rejects_exactly_like_python(
    deployed: Deployed, bits: int
) -> None:
    contract = sync_oracle(deployed)
    try:
        expected = bits_to_target(bits)
    except InvalidBits:
        with pytest.raises(ContractLogicError) as caught:
            contract.functions.bitsToTarget(bits).call()
        assert decode_revert(str(caught.value.data)).args_by_name == {"bits": bits}
        return
    assert contract.functions.bitsToTarget(bits).call() == expected


def test_encode_compact_equals_bitcoin_core_get_compact_vectors(deployed: Deployed) -> None:
    vectors = [
        (int(v["value_hex"], 16), int(v["get_compact"], 16)) for v in VECTORS["get_compact"]
    ] + [
        (int(v["value_hex"], 16), int(v["get_compact"], 16))
        for v in VECTORS["set_compact"]
        if not v["overflow"] and not v["get_compact_negative"]
    ]
    assert len(vectors) >= 15
    contract = sync_oracle(deployed)
    assert [contract.functions.encodeCompact(value).call() for value, _ in vectors] == [
        compact for _, compact in vectors
    ]
    pow_limit = int(VECTORS["mainnet_pow_limit_hex"], 16)
    assert contract.functions.encodeCompact(pow_limit).call() == int(
        VECTORS["mainnet_pow_limit_compact"], 16
    )


@settings(SETTINGS, max_examples=200)
@given(
    value=st.one_of(
        st.integers(0, 2**256 - 1),
        st.integers(0, 256).map(lambda n: (1 << n) - 1 if n else 0),
        st.integers(0, 255).map(lambda n: 1 << n),
        st.integers(0, 31).map(lambda n: 0x80 << (8 * n)),
        st.integers(0, 31).map(lambda n: 0x7FFFFF << (8 * n)),
    )
)
def test_encode_compact_equals_python_for_any_value(deployed: Deployed, value: int) -> None:
    value = min(value, 2**256 - 1)
    assert sync_oracle(deployed).functions.encodeCompact(value).call() == encode_compact(value)


def test_next_bits_equals_bitcoin_core_vectors(deployed: Deployed) -> None:
    contract = sync_oracle(deployed)
    vectors = VECTORS["calculate_next_work_required"]
    assert len(vectors) == 4
    for vector in vectors:
        got = contract.functions.nextBits(
            int(vector["nbits_before"], 16), vector["last_retarget_time"], vector["pindexLast_time"]
        ).call()
        assert got == int(vector["expected_nbits"], 16), vector["test"]


#: Targets whose x 4,838,400 fits in 256 bits (the contract's checked arithmetic; Core's
#: arith_uint256 would wrap beyond, which no network's powLimit comes near).
MAX_RULE_TARGET = ((1 << 256) - 1) // (4 * 1_209_600)
rule_bits = st.one_of(
    st.integers(1, MAX_RULE_TARGET).map(encode_compact),
    st.integers(1, NETWORKS["mainnet"].pow_limit).map(encode_compact),
    valid_bits,
).filter(lambda b: _is_valid(b) and bits_to_target(b) <= MAX_RULE_TARGET)
uint32 = st.integers(0, 2**32 - 1)
timespans = st.one_of(
    st.integers(-(2**32), 2**32),
    st.sampled_from([0, 302_399, 302_400, 302_401, 1_209_600, 4_838_399, 4_838_400, 4_838_401]),
)


@settings(SETTINGS, max_examples=150)
@given(previous_bits=rule_bits, first_time=uint32, span=timespans)
def test_next_bits_equals_python_rule_in_every_network_mode(
    deployed: Deployed, previous_bits: int, first_time: int, span: int
) -> None:
    last_time = min(max(first_time + span, 0), 2**32 - 1)
    for network, oracle in (
        ("mainnet", deployed.oracle),
        ("testnet4", deployed.testnet4),
        ("regtest", deployed.regtest),
    ):
        # testnet4 (BIP94) takes the old target from the epoch's first block: the stored bits.
        expected = calculate_next_work_required(
            NETWORKS[network],
            last_bits=previous_bits,
            first_bits=previous_bits,
            first_time=first_time,
            last_time=last_time,
        )
        got = (
            sync_oracle(deployed, oracle)
            .functions.nextBits(previous_bits, first_time, last_time)
            .call()
        )
        assert got == expected, network


@settings(SETTINGS, max_examples=60)
@given(epoch=epochs)
def test_epoch_subsidy_equals_python(deployed: Deployed, epoch: int) -> None:
    assert sync_oracle(deployed).functions.epochSubsidySat(epoch).call() == epoch_subsidy_sat(epoch)


# ------------------------------------------------------------ hypothesis: stored regtest runs


#: Mined test headers need targets this easy (a few hundred tries each at most).
EASIEST_MINED_TARGET_BITS = 246


def _send_sync(onchain: OnChain, w3: Web3, nonce: int, data: str | bytes, to: str | None) -> Any:
    tx: dict[str, Any] = {
        "type": 2,
        "chainId": onchain.node.chain_id,
        "nonce": nonce,
        "data": data if isinstance(data, str) else "0x" + data.hex(),
        "gas": 8_000_000 if to is None else 400_000,
        "maxFeePerGas": onchain.MAX_FEE_WEI,
        "maxPriorityFeePerGas": onchain.PRIORITY_FEE_WEI,
        "value": 0,
    }
    if to is not None:
        tx["to"] = to
    raw, tx_hash = onchain.accounts.deployer.sign_transaction(tx)
    w3.eth.send_raw_transaction(raw)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt["status"] == 1
    return receipt


@settings(SETTINGS, max_examples=15)
@given(
    genesis_epoch=epochs,
    seed_bits=st.lists(valid_bits, min_size=5, max_size=5),
    target=st.integers(1 << EASIEST_MINED_TARGET_BITS, NETWORKS["regtest"].pow_limit),
    stored=st.integers(0, 3),
    salt=st.integers(0, 2**32),
)
def test_a_stored_regtest_run_with_any_seeds_equals_python(
    onchain: OnChain,
    deployed: Deployed,
    genesis_epoch: int,
    seed_bits: list[int],
    target: int,
    stored: int,
    salt: int,
) -> None:
    """Regtest mode, any genesis epoch, any valid seed bits and mineable genesis bits, a few
    mined epochs stored on top (bits unchanged): every BME window, bmeAt, target and
    difficulty on chain equal Python's."""
    from oracle.publish.contract import ORACLE, deployment_data
    from tests.fixtures.anvil import regtest_genesis, regtest_proof, report_for

    bits = encode_compact(target)
    seeds = seed_bits[5 - min(5, genesis_epoch) :]
    base = regtest_genesis(genesis_epoch, 1_600_000_000, bits=bits, salt=salt)
    genesis = Checkpoint(
        epoch=base.epoch,
        block_hash_hex=base.block_hash_hex,
        bits=bits,
        time=base.time,
        seed_bits=tuple(seeds),
    )
    w3 = deployed.sync_w3
    signer = onchain.accounts.signers[0]
    snapshot = onchain.snapshot()
    try:
        nonce = w3.eth.get_transaction_count(onchain.accounts.deployer.address, "pending")
        data = deployment_data(
            ORACLE,
            onchain.accounts.deployer.address,
            [signer.address],
            1,
            2,
            genesis.as_tuple(),
            list(seeds),
            DEFAULT_CHALLENGE_WINDOW_S,
            3 * 86400,
        )
        address = _send_sync(onchain, w3, nonce, data, None)["contractAddress"]
        oracle = OracleContract(onchain.w3, address)
        contract = w3.eth.contract(address=address, abi=load_artifact("DifficultyOracle")["abi"])
        times = [1_600_000_000 + 1_209_600 * i for i in range(stored + 1)]
        for i in range(1, stored + 1):
            last, retarget = regtest_proof(
                last_time=times[i] - 600,
                time=times[i],
                last_bits=bits,
                bits=bits,
                salt=salt + 2 * i,
            )
            report = report_for(genesis_epoch + i, retarget)
            signatures = onchain.sign(report, [signer], address)
            calldata = oracle.submit_calldata(report, signatures, last + retarget)
            _send_sync(onchain, w3, nonce + i, calldata, address)
        first = genesis_epoch - len(seeds)
        history = [EpochTarget.from_bits(first + i, b) for i, b in enumerate(seeds)] + [
            EpochTarget.from_bits(genesis_epoch + i, bits, t) for i, t in enumerate(times)
        ]
        for window in range(1, len(history) + 1):
            for epoch, value in bme_series(14 * window, history).items():
                assert contract.functions.bme(14 * window, epoch).call() == value.fixed
        timed = history[len(seeds) :]
        for at in (times[0], max(times[0], times[-1] - 1), times[-1] + 10):
            assert contract.functions.bmeAt(14, at).call() == bme_at(14, timed, at).fixed
        for item in history:
            assert contract.functions.target(item.epoch).call() == item.target
            exact = Fraction(DIFF1_TARGET * 10**18, int(item.target))
            try:
                on_chain = contract.functions.difficulty(item.epoch).call()
            except ContractLogicError as exc:
                assert decode_revert(str(exc.data)).name == "MulDivOverflow"
                assert exact >= 2**256
                continue
            assert on_chain == exact.numerator // exact.denominator
    finally:
        onchain.revert(snapshot)
