"""BME_N, bmeAt, difficulty and the Chainlink adapter on chain equal oracle.index.bme's integers.

Expected values come from oracle/index/bme.py and oracle/bitcoin/difficulty.py (checked
against DESIGN.md's worked examples and Bitcoin Core's vectors in their own
tests), never from the contract. Inputs: every real mainnet retarget header in
tests/data (epochs 0..413, submitted through the full signature and PoW
checks), hypothesis-generated bits through the same arithmetic (``computeBme``),
and hypothesis-generated chains of real mined headers under regtest's powLimit.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError

from oracle.bitcoin.difficulty import (
    DIFF1_TARGET,
    NETWORKS,
    Network,
    bits_to_target,
    encode_compact,
    permitted_difficulty_transition,
)
from oracle.bitcoin.header import parse_header
from oracle.errors import IndexUnavailable, InvalidBits
from oracle.index.bme import EpochTarget, bme, bme_at, bme_series, epoch_subsidy_sat
from oracle.publish.contract import (
    AggregatorContract,
    ContractReverted,
    OracleContract,
    decode_revert,
    deploy_aggregator,
    load_artifact,
)
from oracle.publish.signing import Report
from tests.fixtures.anvil import CHAIN_ID, OnChain, mainnet_retarget_headers, regtest_header

pytestmark = pytest.mark.anvil

HEADERS = mainnet_retarget_headers()
MAINNET_HISTORY = [
    EpochTarget.from_bits(epoch, parse_header(raw).bits, parse_header(raw).time)
    for epoch, raw in sorted(HEADERS.items())
]
REGTEST_POW_LIMIT = NETWORKS["regtest"].pow_limit
#: Core's rule under regtest's powLimit but without regtest's "anything goes" exemption,
#: which is what the contract enforces on every network.
STRICT_REGTEST = Network("regtest-strict", REGTEST_POW_LIMIT)
#: Mined test headers need targets this easy (about 1,000 tries each).
EASIEST_MINED_TARGET_BITS = 246


@dataclass
class Oracles:
    mainnet: OracleContract
    regtest: OracleContract
    aggregator84: AggregatorContract
    sync_w3: Web3


@pytest.fixture(scope="module")
async def oracles(onchain: OnChain) -> Oracles:
    signer = onchain.accounts.signers[:1]
    mainnet = await onchain.deploy(
        pow_limit=NETWORKS["mainnet"].pow_limit, threshold=1, signers=signer
    )
    items = [
        (Report.for_epoch(epoch, parse_header(raw)), raw) for epoch, raw in sorted(HEADERS.items())
    ]
    await onchain.submit_many(mainnet, items, signer)
    regtest = await onchain.deploy(pow_limit=REGTEST_POW_LIMIT, threshold=1, signers=signer)
    address = await deploy_aggregator(
        onchain.w3,
        onchain.accounts.deployer,
        oracle_address=mainnet.address,
        n_days=84,
        max_fee_wei=onchain.MAX_FEE_WEI,
        priority_fee_wei=onchain.PRIORITY_FEE_WEI,
    )
    return Oracles(
        mainnet=mainnet,
        regtest=regtest,
        aggregator84=AggregatorContract(onchain.w3, address),
        sync_w3=Web3(HTTPProvider(onchain.node.url)),
    )


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, oracles: Oracles) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


# ------------------------------------------------------------------ real mainnet history


async def test_every_mainnet_retarget_is_stored(oracles: Oracles) -> None:
    assert (await oracles.mainnet.first_epoch(), await oracles.mainnet.latest_epoch()) == (0, 413)
    for epoch in (0, 1, 104, 312, 413):
        stored = await oracles.mainnet.retarget(epoch)
        header = parse_header(HEADERS[epoch])
        assert stored is not None
        assert (stored.block_hash_hex, stored.bits, stored.time) == (
            header.block_hash_hex,
            header.bits,
            header.time,
        )


@pytest.mark.parametrize("n_days", [14, 28, 84, 364])
async def test_bme_on_chain_equals_python_for_every_mainnet_epoch(
    oracles: Oracles, n_days: int
) -> None:
    expected = bme_series(n_days, MAINNET_HISTORY)
    assert len(expected) == 414 - n_days // 14 + 1
    mismatches = {
        epoch: (on_chain, value.fixed)
        for epoch, value in expected.items()
        if (on_chain := await oracles.mainnet.bme(n_days, epoch)) != value.fixed
    }
    assert mismatches == {}


async def test_bme_at_on_chain_equals_python_around_every_retarget_time(oracles: Oracles) -> None:
    for item in MAINNET_HISTORY[6::7]:
        assert item.time is not None
        for at_time in (item.time - 1, item.time, item.time + 86_400):
            expected = bme_at(84, MAINNET_HISTORY, at_time).fixed
            assert await oracles.mainnet.bme_at(84, at_time) == expected, (item.epoch, at_time)


async def test_bme_at_before_the_first_retarget_is_refused(oracles: Oracles) -> None:
    first_time = MAINNET_HISTORY[0].time
    assert first_time is not None
    with pytest.raises(IndexUnavailable):
        bme_at(14, MAINNET_HISTORY, first_time - 1)
    with pytest.raises(ContractReverted) as caught:
        await oracles.mainnet.bme_at(14, first_time - 1)
    assert (caught.value.name, caught.value.args_by_name) == (
        "NoEpochAtTime",
        {"time": first_time - 1},
    )


async def test_missing_epochs_in_the_window_are_refused(oracles: Oracles, onchain: OnChain) -> None:
    with pytest.raises(ContractReverted) as caught:
        await oracles.mainnet.bme(84, 4)  # needs epochs -1..4
    assert caught.value.name == "EpochMissing"
    with pytest.raises(ContractReverted) as caught:
        await oracles.mainnet.bme(14, 414)
    assert (caught.value.name, caught.value.args_by_name) == ("EpochMissing", {"epoch": 414})
    # A window reaching below the first stored epoch names the first absent one.
    fresh = await onchain.deploy(
        pow_limit=NETWORKS["mainnet"].pow_limit, threshold=1, signers=onchain.accounts.signers[:1]
    )
    items = [(Report.for_epoch(e, parse_header(HEADERS[e])), HEADERS[e]) for e in (300, 301)]
    await onchain.submit_many(fresh, items, onchain.accounts.signers[:1])
    assert await fresh.bme(28, 301) == bme(28, MAINNET_HISTORY[300:302]).fixed
    with pytest.raises(ContractReverted) as caught:
        await fresh.bme(42, 301)
    assert (caught.value.name, caught.value.args_by_name) == ("EpochMissing", {"epoch": 299})
    with pytest.raises(ContractReverted) as caught:
        await fresh.bme(15, 301)
    assert (caught.value.name, caught.value.args_by_name) == ("InvalidWindow", {"nDays": 15})


async def test_difficulty_and_target_on_chain_equal_python(oracles: Oracles) -> None:
    for item in MAINNET_HISTORY[::9]:
        target = int(item.target)
        assert await oracles.mainnet.target(item.epoch) == target
        expected = Fraction(DIFF1_TARGET * 10**18, target)
        assert (
            await oracles.mainnet.difficulty_fixed(item.epoch)
            == expected.numerator // expected.denominator
        )


async def test_chainlink_adapter_reads_bme84(oracles: Oracles) -> None:
    adapter = oracles.aggregator84
    assert await adapter.decimals() == 18
    assert await adapter.description() == "BME84 / BTC per TH/s per day"
    expected = bme_series(84, MAINNET_HISTORY)
    last = MAINNET_HISTORY[-1]
    assert await adapter.latest_round_data() == (
        413,
        expected[413].fixed,
        last.time,
        last.time,
        413,
    )
    round_300 = await adapter.contract.functions.getRoundData(300).call()
    assert tuple(round_300) == (300, expected[300].fixed, header_time(300), header_time(300), 300)
    with pytest.raises(ContractLogicError) as caught:
        await adapter.contract.functions.getRoundData(2).call()
    assert decode_revert(str(caught.value.data)).name == "EpochMissing"


def header_time(epoch: int) -> int:
    return parse_header(HEADERS[epoch]).time


# ------------------------------------------------------------------ hypothesis: pure arithmetic


def sync_oracle(oracles: Oracles, oracle: OracleContract) -> object:
    return oracles.sync_w3.eth.contract(
        address=oracle.address, abi=load_artifact("DifficultyOracle")["abi"]
    )


valid_bits = st.builds(
    lambda size, mantissa: (size << 24) | mantissa,
    st.integers(1, 34),
    st.integers(1, 0x7FFFFF),
).filter(lambda bits: _is_valid(bits))


def _is_valid(bits: int) -> bool:
    try:
        bits_to_target(bits)
    except InvalidBits:
        return False
    return True


epochs = st.one_of(
    st.integers(0, 7_000),
    st.sampled_from([103, 104, 105, 207, 208, 311, 312, 313, 416, 6_665, 6_666, 6_667]),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_compute_bme_equals_python_for_any_valid_bits(
    oracles: Oracles, data: st.DataObject
) -> None:
    window = data.draw(st.integers(1, 6), label="T")
    last_epoch = data.draw(epochs.filter(lambda e: e + 1 >= window), label="last_epoch")
    bits = data.draw(st.lists(valid_bits, min_size=window, max_size=window), label="bits")
    history = [EpochTarget.from_bits(last_epoch - window + 1 + i, b) for i, b in enumerate(bits)]
    expected = bme(14 * window, history).fixed
    contract = sync_oracle(oracles, oracles.mainnet)
    assert contract.functions.computeBme(14 * window, last_epoch, bits).call() == expected


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(bits=st.one_of(st.integers(0, 2**32 - 1), valid_bits))
def test_bits_to_target_accepts_and_rejects_exactly_like_python(
    oracles: Oracles, bits: int
) -> None:
    contract = sync_oracle(oracles, oracles.mainnet)
    try:
        expected = bits_to_target(bits)
    except InvalidBits:
        with pytest.raises(ContractLogicError) as caught:
            contract.functions.bitsToTarget(bits).call()
        assert decode_revert(str(caught.value.data)).args_by_name == {"bits": bits}
        return
    assert contract.functions.bitsToTarget(bits).call() == expected


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(old_bits=valid_bits, data=st.data())
def test_permitted_transition_equals_core_rule(
    oracles: Oracles, old_bits: int, data: st.DataObject
) -> None:
    old_target = bits_to_target(old_bits)
    upper = min(old_target * 5, 2**256 - 1)
    near = st.integers(max(1, old_target // 5), upper).map(encode_compact).filter(_is_valid)
    new_bits = data.draw(st.one_of(near, valid_bits), label="new_bits")
    for network, oracle in (
        (NETWORKS["mainnet"], oracles.mainnet),
        (STRICT_REGTEST, oracles.regtest),
    ):
        expected = permitted_difficulty_transition(
            network, height=2016, old_bits=old_bits, new_bits=new_bits
        )
        assert (
            sync_oracle(oracles, oracle).functions.permittedTransition(old_bits, new_bits).call()
            == expected
        )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(epoch=epochs)
def test_epoch_subsidy_equals_python(oracles: Oracles, epoch: int) -> None:
    assert sync_oracle(oracles, oracles.mainnet).functions.epochSubsidySat(
        epoch
    ).call() == epoch_subsidy_sat(epoch)


# ------------------------------------------------------------ hypothesis: mined regtest chains


@st.composite
def regtest_chains(draw: st.DrawFn) -> tuple[int, list[int]]:
    """(first epoch, bits of consecutive epochs) within Core's [1/4, 4] rule, regtest powLimit."""
    length = draw(st.integers(1, 5))
    first_epoch = draw(epochs)
    target = draw(st.integers(1 << EASIEST_MINED_TARGET_BITS, REGTEST_POW_LIMIT))
    chain = [encode_compact(target)]
    for _ in range(length - 1):
        old = bits_to_target(chain[-1])
        timespan = draw(st.integers(302_400, 4_838_400))
        new = min(old * timespan // 1_209_600, REGTEST_POW_LIMIT)
        new = max(new, 1 << EASIEST_MINED_TARGET_BITS)
        chain.append(encode_compact(new))
    return first_epoch, chain


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chain=regtest_chains(), salt=st.integers(0, 2**32))
def test_stored_regtest_chain_bme_equals_python(
    onchain: OnChain, oracles: Oracles, chain: tuple[int, list[int]], salt: int
) -> None:
    first_epoch, bits_chain = chain
    for old, new in itertools.pairwise(bits_chain):
        assume(
            permitted_difficulty_transition(STRICT_REGTEST, height=2016, old_bits=old, new_bits=new)
        )
    headers = [
        regtest_header(bits=bits, time=1_600_000_000 + 1_209_600 * i, salt=salt + i)
        for i, bits in enumerate(bits_chain)
    ]
    history = [
        EpochTarget.from_bits(first_epoch + i, bits, 1_600_000_000 + 1_209_600 * i)
        for i, bits in enumerate(bits_chain)
    ]
    snapshot = onchain.snapshot()
    try:
        _submit_sync(onchain, oracles, headers, first_epoch)
        contract = sync_oracle(oracles, oracles.regtest)
        for window in range(1, len(bits_chain) + 1):
            expected = bme_series(14 * window, history)
            for epoch, value in expected.items():
                assert contract.functions.bme(14 * window, epoch).call() == value.fixed
        last_time = history[-1].time
        assert last_time is not None
        for at_time in (1_600_000_000, max(1_600_000_000, last_time - 1), last_time + 10):
            assert (
                contract.functions.bmeAt(14, at_time).call() == bme_at(14, history, at_time).fixed
            )
        for item in history:
            assert contract.functions.target(item.epoch).call() == item.target
            exact = Fraction(DIFF1_TARGET * 10**18, int(item.target))
            assert (
                contract.functions.difficulty(item.epoch).call()
                == exact.numerator // exact.denominator
            )
    finally:
        onchain.revert(snapshot)


def _submit_sync(
    onchain: OnChain, oracles: Oracles, headers: list[bytes], first_epoch: int
) -> None:
    """Submit mined headers with the synchronous web3 (hypothesis drives plain functions)."""
    w3 = oracles.sync_w3
    sender = onchain.accounts.deployer
    signer = onchain.accounts.signers[0]
    oracle = oracles.regtest
    nonce = w3.eth.get_transaction_count(sender.address, "pending")
    for i, raw in enumerate(headers):
        report = Report.for_epoch(first_epoch + i, parse_header(raw))
        signatures = onchain.sign(report, [signer], oracle.address)
        signed, tx_hash = sender.sign_transaction(
            {
                "type": 2,
                "chainId": CHAIN_ID,
                "nonce": nonce + i,
                "to": oracle.address,
                "data": oracle.submit_calldata(report, signatures, raw),
                "gas": 400_000,
                "maxFeePerGas": onchain.MAX_FEE_WEI,
                "maxPriorityFeePerGas": onchain.PRIORITY_FEE_WEI,
                "value": 0,
            }
        )
        w3.eth.send_raw_transaction(signed)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        assert receipt["status"] == 1, f"epoch {first_epoch + i} refused"
