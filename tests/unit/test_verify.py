"""oracle.agreement.verify on real mainnet headers (tests/data) and on ground regtest headers."""

from __future__ import annotations

import csv
import struct

import pytest

from oracle.agreement.verify import (
    METHOD_BOUND,
    METHOD_GENESIS,
    METHOD_NONE,
    METHOD_RULE,
    retarget_heights,
    verify_linkage,
    verify_retarget,
)
from oracle.bitcoin.difficulty import get_network
from oracle.bitcoin.header import Header, double_sha256, parse_header, parse_header_hex
from tests.conftest import DATA
from tests.fixtures.restreplay import mainnet_headers

MAINNET = get_network("mainnet")
REGTEST = get_network("regtest")
HEADERS = mainnet_headers()


def h(height: int) -> Header:
    return parse_header_hex(HEADERS[height])


def boundary_epochs() -> list[int]:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as fh:
        return sorted({int(r["epoch"]) for r in csv.DictReader(fh) if r["role"] == "first"})


def test_retarget_heights() -> None:
    assert retarget_heights(0) == (0,)
    assert retarget_heights(1) == (0, 2015, 2016)
    assert retarget_heights(412) == (828576, 830591, 830592)
    with pytest.raises(ValueError):
        retarget_heights(-1)


def test_every_real_mainnet_retarget_verifies_by_the_rule() -> None:
    epochs = [e for e in boundary_epochs() if e > 0]
    assert len(epochs) == 413
    for e in epochs:
        first, last, retarget = (h(x) for x in retarget_heights(e))
        result = verify_retarget(MAINNET, epoch=e, retarget=retarget, first=first, last=last)
        assert result.ok, (e, result.problems)
        assert result.method == METHOD_RULE
        assert result.expected_bits == retarget.bits


def test_genesis_epoch() -> None:
    result = verify_retarget(MAINNET, epoch=0, retarget=h(0))
    assert result.ok and result.method == METHOD_GENESIS


def test_fallback_bound_with_previous_bits_only() -> None:
    # epoch 412 without the two fetched headers: [1/4, 4] of epoch 411's bits
    result = verify_retarget(MAINNET, epoch=412, retarget=h(830592), previous_bits=h(828576).bits)
    assert result.ok and result.method == METHOD_BOUND


def test_fallback_bound_rejects_a_jump_beyond_four_times() -> None:
    # bits of epoch 1 (difficulty 1) as the previous epoch of a 2024 retarget
    result = verify_retarget(MAINNET, epoch=412, retarget=h(830592), previous_bits=0x1D00FFFF)
    assert not result.ok and result.method == METHOD_BOUND
    assert "outside [1/4, 4]" in result.problems[0]


def test_nothing_to_check_bits_against_is_not_verified() -> None:
    result = verify_retarget(MAINNET, epoch=412, retarget=h(830592))
    assert not result.ok and result.method == METHOD_NONE


def test_header_failing_pow_is_rejected() -> None:
    raw = bytearray(h(830592).raw)
    raw[76] ^= 1  # flip a nonce bit: the hash changes and no longer meets the bits
    tampered = parse_header(bytes(raw))
    result = verify_retarget(MAINNET, epoch=412, retarget=tampered, first=h(828576), last=h(830591))
    assert not result.ok
    assert any("proof of work" in p for p in result.problems)


def test_wrong_bits_are_rejected() -> None:
    raw = bytearray(h(830592).raw)
    struct.pack_into("<I", raw, 72, h(828576).bits)  # last epoch's bits
    tampered = parse_header(bytes(raw))
    result = verify_retarget(MAINNET, epoch=412, retarget=tampered, first=h(828576), last=h(830591))
    assert not result.ok
    assert any("retarget rule" in p for p in result.problems)


def test_rule_mismatch_from_other_first_header() -> None:
    # 828577 instead of 828576 as the epoch's first block: a different timespan
    result = verify_retarget(
        MAINNET, epoch=412, retarget=h(830592), first=h(828577), last=h(830591)
    )
    assert not result.ok
    assert any("differ from the retarget rule" in p for p in result.problems)


def test_linkage_failure() -> None:
    result = verify_retarget(
        MAINNET, epoch=412, retarget=h(830592), first=h(828576), last=h(830590)
    )
    assert not result.ok
    assert any(p.startswith("linkage") for p in result.problems)


def test_verify_linkage_on_consecutive_headers() -> None:
    chain = [h(x) for x in range(828570, 828580)]
    assert verify_linkage(chain) == []
    swapped = [chain[0], chain[2], chain[1]]
    assert len(verify_linkage(swapped)) == 2


def grind_regtest(prev: Header, *, bits: int = 0x207FFFFF, tag: int = 0) -> Header:
    """A regtest header on top of ``prev`` meeting ``bits`` (a few tries at regtest difficulty)."""
    target = 0x7FFFFF << (8 * (0x20 - 3))
    for nonce in range(1000):
        raw = (
            struct.pack("<i", 0x20000000)
            + bytes.fromhex(prev.block_hash_hex)[::-1]
            + bytes([tag]) * 32
            + struct.pack("<III", prev.time + 600, bits, nonce)
        )
        if int.from_bytes(double_sha256(raw), "little") <= target:
            return parse_header(raw)
    raise AssertionError("no nonce found")


def test_regtest_never_retargets_and_constant_bits_verify() -> None:
    genesis = parse_header_hex(
        "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b2"
        "7ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4adae5494dffff7f2002000000"
    )
    last = grind_regtest(genesis)
    retarget = grind_regtest(last)
    result = verify_retarget(REGTEST, epoch=1, retarget=retarget, first=genesis, last=last)
    assert result.ok and result.method == METHOD_RULE
    bound = verify_retarget(REGTEST, epoch=1, retarget=retarget, previous_bits=0x207FFFFF)
    assert bound.ok and bound.method == METHOD_BOUND
    changed = verify_retarget(REGTEST, epoch=1, retarget=retarget, previous_bits=0x1D00FFFF)
    assert not changed.ok and "never retargets" in changed.problems[0]
