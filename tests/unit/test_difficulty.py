"""Bits, targets, difficulty and the retarget rule against Bitcoin Core's vectors and mainnet."""

from __future__ import annotations

import csv
import json
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oracle.bitcoin.difficulty import (
    DIFF1_TARGET,
    EPOCH_BLOCKS,
    NETWORKS,
    TARGET_TIMESPAN_S,
    BlockInfo,
    bits_to_target,
    calculate_next_work_required,
    core_get_difficulty,
    decode_compact,
    difficulty_from_bits,
    encode_compact,
    get_next_work_required,
    parse_bits,
    permitted_difficulty_transition,
    target_to_bits,
)
from oracle.errors import InvalidBits
from tests.conftest import DATA

VECTORS = json.loads((DATA / "core_pow_vectors.json").read_text())
MAINNET = NETWORKS["mainnet"]


def _boundaries() -> dict[tuple[int, str], dict[str, str]]:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as f:
        return {(int(r["epoch"]), r["role"]): r for r in csv.DictReader(f)}


BOUNDARIES = _boundaries()


@pytest.mark.parametrize("vector", VECTORS["set_compact"], ids=lambda v: v["compact"])
def test_set_compact_matches_core(vector: dict) -> None:
    decoded = decode_compact(int(vector["compact"], 16))
    assert decoded.negative == vector["negative"]
    assert decoded.overflow == vector["overflow"]
    if vector["value_hex"] is not None:
        assert decoded.value == int(vector["value_hex"], 16)
        again = encode_compact(decoded.value, negative=vector["get_compact_negative"])
        assert again == int(vector["get_compact"], 16)


def test_get_compact_never_sets_sign_bit() -> None:
    for vector in VECTORS["get_compact"]:
        assert encode_compact(int(vector["value_hex"], 16)) == int(vector["get_compact"], 16)


@pytest.mark.parametrize("bits", [0x04923456, 0x01FEDCBA, 0x1D80FFFF])
def test_negative_bits_rejected(bits: int) -> None:
    with pytest.raises(InvalidBits, match="negative"):
        bits_to_target(bits)


@pytest.mark.parametrize("bits", [0xFF123456, 0xFF7FFFFF, 0x23000001, 0x22000100, 0x21010000])
def test_overflow_bits_rejected(bits: int) -> None:
    with pytest.raises(InvalidBits, match="overflow"):
        bits_to_target(bits)


@pytest.mark.parametrize("bits", [0x00000000, 0x00123456, 0x03000000, 0x01003456])
def test_zero_target_rejected(bits: int) -> None:
    with pytest.raises(InvalidBits, match="zero"):
        bits_to_target(bits)


@pytest.mark.parametrize("text", ["", "xyz", "1d00ffff00", "-1"])
def test_parse_bits_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidBits):
        parse_bits(text)


@pytest.mark.parametrize("vector", VECTORS["calculate_next_work_required"], ids=lambda v: v["test"])
def test_calculate_next_work_matches_core(vector: dict) -> None:
    bits = calculate_next_work_required(
        MAINNET,
        last_bits=int(vector["nbits_before"], 16),
        first_time=vector["last_retarget_time"],
        last_time=vector["pindexLast_time"],
    )
    assert bits == int(vector["expected_nbits"], 16)
    check = vector.get("permitted_transition_check", "")
    height = vector["pindexLast_height"] + 1
    old = int(vector["nbits_before"], 16)
    assert permitted_difficulty_transition(MAINNET, height=height, old_bits=old, new_bits=bits)
    if "expected_nbits-1" in check:
        assert not permitted_difficulty_transition(
            MAINNET, height=height, old_bits=old, new_bits=bits - 1
        )
    if "expected_nbits+1" in check:
        assert not permitted_difficulty_transition(
            MAINNET, height=height, old_bits=old, new_bits=bits + 1
        )


@pytest.mark.parametrize("vector", VECTORS["get_difficulty"], ids=lambda v: v["nbits"])
def test_core_get_difficulty(vector: dict) -> None:
    value = core_get_difficulty(int(vector["nbits"], 16))
    assert value == pytest.approx(vector["core_getdifficulty_python"], rel=1e-12)


def test_every_mainnet_retarget_reproduced() -> None:
    """Core's rule gives the real bits of all 413 retargets from 2,016 to 832,608."""
    checked = 0
    for epoch in range(1, 414):
        first = BOUNDARIES[(epoch - 1, "first")]
        last = BOUNDARIES[(epoch - 1, "last")]
        new = BOUNDARIES[(epoch, "first")]
        bits = calculate_next_work_required(
            MAINNET,
            last_bits=int(last["bits"], 16),
            first_time=int(first["time"]),
            last_time=int(last["time"]),
        )
        assert f"{bits:08x}" == new["bits"], f"epoch {epoch}"
        assert permitted_difficulty_transition(
            MAINNET, height=epoch * EPOCH_BLOCKS, old_bits=int(last["bits"], 16), new_bits=bits
        )
        checked += 1
    assert checked == 413


def test_difficulty_is_exact_fraction() -> None:
    assert difficulty_from_bits(0x1D00FFFF) == 1
    d = difficulty_from_bits(0x1703BA5D)
    assert isinstance(d, Fraction)
    assert float(d) == pytest.approx(75502165623893.72, rel=1e-15)
    assert d == Fraction(DIFF1_TARGET, 0x03BA5D << (8 * (0x17 - 3)))


def test_regtest_never_retargets() -> None:
    regtest = NETWORKS["regtest"]
    assert (
        calculate_next_work_required(regtest, last_bits=0x207FFFFF, first_time=0, last_time=10)
        == 0x207FFFFF
    )


def test_testnet4_bip94_uses_first_block_target() -> None:
    testnet4 = NETWORKS["testnet4"]
    pow_limit_bits = encode_compact(testnet4.pow_limit)
    # The last block was mined at minimum difficulty; BIP94 ignores it.
    bits = calculate_next_work_required(
        testnet4,
        last_bits=pow_limit_bits,
        first_bits=0x1C0168FD,
        first_time=0,
        last_time=TARGET_TIMESPAN_S,
    )
    assert bits == 0x1C0168FD
    testnet3 = NETWORKS["testnet3"]
    assert (
        calculate_next_work_required(
            testnet3, last_bits=pow_limit_bits, first_time=0, last_time=TARGET_TIMESPAN_S
        )
        == pow_limit_bits
    )
    with pytest.raises(InvalidBits, match="BIP94"):
        calculate_next_work_required(testnet4, last_bits=pow_limit_bits, first_time=0, last_time=1)


def test_testnet_twenty_minute_rule() -> None:
    testnet3 = NETWORKS["testnet3"]
    pow_limit_bits = encode_compact(testnet3.pow_limit)
    real_bits = 0x1C0168FD
    chain = {h: BlockInfo(h, real_bits, 1000 + h * 600) for h in range(2016, 2030)}
    chain.update({h: BlockInfo(h, pow_limit_bits, 1000 + h * 600) for h in range(2030, 2033)})
    last = chain[2032]
    # More than 20 minutes after the parent: min difficulty allowed.
    late = get_next_work_required(
        testnet3, last=last, new_block_time=last.time + 1201, ancestor=chain.__getitem__
    )
    assert late == pow_limit_bits
    # Otherwise: the last block not mined under the special rule.
    on_time = get_next_work_required(
        testnet3, last=last, new_block_time=last.time + 600, ancestor=chain.__getitem__
    )
    assert on_time == real_bits
    # Mainnet ignores the rule.
    assert (
        get_next_work_required(
            MAINNET,
            last=BlockInfo(2032, real_bits, 0),
            new_block_time=10**9,
            ancestor=chain.__getitem__,
        )
        == real_bits
    )


def test_get_next_work_at_boundary_uses_epoch_first_block() -> None:
    first = BOUNDARIES[(410, "first")]
    last = BOUNDARIES[(410, "last")]
    blocks = {
        int(first["height"]): BlockInfo(
            int(first["height"]), int(first["bits"], 16), int(first["time"])
        ),
        int(last["height"]): BlockInfo(
            int(last["height"]), int(last["bits"], 16), int(last["time"])
        ),
    }
    bits = get_next_work_required(
        MAINNET, last=blocks[int(last["height"])], new_block_time=0, ancestor=blocks.__getitem__
    )
    assert f"{bits:08x}" == BOUNDARIES[(411, "first")]["bits"] == "1703ba5d"


canonical_bits = st.builds(
    lambda size, mantissa: (size << 24) | mantissa,
    st.integers(min_value=4, max_value=32),
    st.integers(min_value=0x008000, max_value=0x7FFFFF),
)


@given(canonical_bits)
def test_canonical_bits_round_trip(bits: int) -> None:
    assert target_to_bits(bits_to_target(bits)) == bits


@given(st.integers(min_value=1, max_value=(1 << 255) - 1))
def test_compacting_never_raises_target(target: int) -> None:
    rounded = bits_to_target(target_to_bits(target))
    assert rounded <= target
    assert target_to_bits(rounded) == target_to_bits(target)


@given(
    st.sampled_from(["mainnet", "testnet3", "signet"]),
    st.integers(min_value=0x1A000000 >> 24, max_value=0x1D),
    st.integers(min_value=0x008000, max_value=0x7FFFFF),
    st.integers(min_value=-(10**7), max_value=10**8),
)
def test_retarget_within_bounds_and_pow_limit(
    name: str, size: int, mantissa: int, timespan: int
) -> None:
    network = NETWORKS[name]
    old_bits = (size << 24) | mantissa
    old_target = bits_to_target(old_bits)
    if old_target > network.pow_limit:
        old_bits = encode_compact(network.pow_limit)
        old_target = bits_to_target(old_bits)
    new_bits = calculate_next_work_required(
        network, last_bits=old_bits, first_time=0, last_time=timespan
    )
    new_target = bits_to_target(new_bits)
    assert new_target <= network.pow_limit
    assert new_target <= old_target * 4
    assert new_target * 4 >= old_target - (old_target >> 16) * 4  # compact rounding only truncates
    unrounded = min(
        old_target
        * min(max(timespan, TARGET_TIMESPAN_S // 4), TARGET_TIMESPAN_S * 4)
        // TARGET_TIMESPAN_S,
        network.pow_limit,
    )
    assert new_target <= unrounded
    if name == "mainnet":
        assert permitted_difficulty_transition(
            network, height=2016, old_bits=old_bits, new_bits=new_bits
        )


@given(canonical_bits, canonical_bits)
def test_smaller_target_more_difficulty(a: int, b: int) -> None:
    ta, tb = bits_to_target(a), bits_to_target(b)
    if ta < tb:
        assert difficulty_from_bits(a) > difficulty_from_bits(b)
