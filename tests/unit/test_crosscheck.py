"""oracle.agreement.crosscheck: quorum, disputes, unverified claims, purity (mainnet headers)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.agreement.crosscheck import Agreed, Disputed, Insufficient, cross_check
from oracle.agreement.verify import VerificationResult, verify_retarget
from oracle.bitcoin.difficulty import get_network
from oracle.bitcoin.header import Header, parse_header, parse_header_hex
from oracle.sources.types import Observation, SourceFailure
from tests.fixtures.restreplay import mainnet_hashes, mainnet_headers
from tests.unit.test_verify import grind_regtest

MAINNET = get_network("mainnet")
HEADERS = mainnet_headers()
HASHES = mainnet_hashes()
T0 = datetime(2024, 2, 15, tzinfo=UTC)
EPOCH = 412
HEIGHT = 830592


def h(height: int) -> Header:
    return parse_header_hex(HEADERS[height])


def obs(source: str, header: Header, height: int = HEIGHT) -> Observation:
    return Observation(
        source=source,
        height=height,
        block_hash_hex=header.block_hash_hex,
        header=header,
        observed_at=T0,
    )


def verified(source: str, header: Header) -> VerificationResult:
    return verify_retarget(
        MAINNET, epoch=EPOCH, retarget=header, first=h(828576), last=h(830591), source=source
    )


def failure(source: str, kind: str = "timeout") -> SourceFailure:
    return SourceFailure(
        source=source,
        height=HEIGHT,
        request="GET /block-height/830592",
        kind=kind,
        message="no answer within 5 s",
        observed_at=T0,
    )


def tampered_nonce() -> Header:
    raw = bytearray(h(HEIGHT).raw)
    raw[76] ^= 1
    return parse_header(bytes(raw))


def test_two_of_three_agree_on_the_real_block() -> None:
    real = h(HEIGHT)
    bad = tampered_nonce()
    results = [obs("a", real), obs("b", real), obs("c", bad)]
    checks = {"a": verified("a", real), "b": verified("b", real), "c": verified("c", bad)}
    outcome = cross_check(EPOCH, results, quorum=2, verified=checks)
    assert isinstance(outcome, Agreed)
    assert outcome.block_hash_hex == HASHES[HEIGHT]
    assert f"{outcome.bits:08x}" == "170371b1"  # tests/data/epoch_boundary_headers_0_832608.csv
    assert outcome.header == bytes.fromhex(HEADERS[HEIGHT])
    assert outcome.sources == ("a", "b")
    assert [c.source for c in outcome.dissent] == ["c"]
    assert outcome.dissent[0].nonce == bad.nonce and not outcome.dissent[0].verified


def test_unverified_claims_never_count_toward_quorum() -> None:
    bad = tampered_nonce()
    results = [obs("a", bad), obs("b", bad)]
    checks = {"a": verified("a", bad), "b": verified("b", bad)}
    outcome = cross_check(EPOCH, results, quorum=2, verified=checks)
    assert isinstance(outcome, Insufficient)
    assert outcome.reasons[0] == "0 verified source(s) agree, quorum is 2"
    assert len(outcome.claims) == 2


def test_missing_or_mismatched_verification_does_not_count() -> None:
    real = h(HEIGHT)
    other = verified("b", h(HEIGHT))
    wrong_block = VerificationResult(
        source="b",
        epoch=EPOCH,
        block_hash_hex="00" * 32,
        ok=True,
        method=other.method,
        expected_bits=other.expected_bits,
        problems=(),
    )
    outcome = cross_check(
        EPOCH, [obs("a", real), obs("b", real)], quorum=2, verified={"b": wrong_block}
    )
    assert isinstance(outcome, Insufficient)
    assert {c.source: c.verified for c in outcome.claims} == {"a": False, "b": False}


def test_quorum_not_reached_with_failures_is_insufficient() -> None:
    real = h(HEIGHT)
    outcome = cross_check(
        EPOCH,
        [obs("a", real), failure("b"), failure("c", "rate_limited")],
        quorum=2,
        verified={"a": verified("a", real)},
    )
    assert isinstance(outcome, Insufficient)
    assert any(r.startswith("b: timeout") for r in outcome.reasons)
    assert any(r.startswith("c: rate_limited") for r in outcome.reasons)
    assert [f.source for f in outcome.failures] == ["b", "c"]


def test_quorum_one_agrees_with_single_source() -> None:
    real = h(HEIGHT)
    outcome = cross_check(EPOCH, [obs("a", real)], quorum=1, verified={"a": verified("a", real)})
    assert isinstance(outcome, Agreed) and outcome.sources == ("a",)


def test_answer_for_another_height_is_not_a_claim() -> None:
    real = h(HEIGHT)
    outcome = cross_check(
        EPOCH,
        [obs("a", real), obs("b", h(830591), height=830591)],
        quorum=2,
        verified={"a": verified("a", real)},
    )
    assert isinstance(outcome, Insufficient)
    assert any("answered for height 830591" in r for r in outcome.reasons)


def test_two_verified_blocks_are_disputed_field_by_field() -> None:
    from oracle.agreement.verify import verify_retarget as vr

    regtest = get_network("regtest")
    genesis = grind_regtest(h(0), bits=0x207FFFFF, tag=0)  # any parent will do
    first = grind_regtest(genesis, tag=1)
    last = grind_regtest(first, tag=2)
    block_a = grind_regtest(last, tag=3)
    block_b = grind_regtest(last, tag=4)
    epoch, height = 1, 2016
    results = [obs("a", block_a, height), obs("b", block_b, height), obs("c", block_a, height)]
    checks = {
        name: vr(regtest, epoch=epoch, retarget=hdr, first=first, last=last, source=name)
        for name, hdr in (("a", block_a), ("b", block_b), ("c", block_a))
    }
    assert all(v.ok for v in checks.values())
    outcome = cross_check(epoch, results, quorum=2, verified=checks)
    assert isinstance(outcome, Disputed)
    assert "block_hash_hex" in outcome.fields_in_dispute
    assert "merkle_root_hex" in outcome.fields_in_dispute
    assert "bits" not in outcome.fields_in_dispute
    assert {c.source: c.block_hash_hex for c in outcome.claims} == {
        "a": block_a.block_hash_hex,
        "b": block_b.block_hash_hex,
        "c": block_a.block_hash_hex,
    }


def test_duplicate_sources_and_bad_quorum_are_refused() -> None:
    real = h(HEIGHT)
    with pytest.raises(ValueError, match="once per epoch"):
        cross_check(EPOCH, [obs("a", real), failure("a")], quorum=1, verified={})
    with pytest.raises(ValueError, match="quorum"):
        cross_check(EPOCH, [], quorum=0, verified={})


def test_no_sources_is_insufficient() -> None:
    outcome = cross_check(EPOCH, [], quorum=2, verified={})
    assert isinstance(outcome, Insufficient) and outcome.height == HEIGHT


@settings(max_examples=50, deadline=None)
@given(st.permutations(["good1", "good2", "bad", "down"]), st.integers(min_value=1, max_value=4))
def test_outcome_is_a_pure_function_of_its_inputs(order: list[str], quorum: int) -> None:
    real, bad = h(HEIGHT), tampered_nonce()
    by_name: dict[str, Observation | SourceFailure] = {
        "good1": obs("good1", real),
        "good2": obs("good2", real),
        "bad": obs("bad", bad),
        "down": failure("down"),
    }
    checks = {
        "good1": verified("good1", real),
        "good2": verified("good2", real),
        "bad": verified("bad", bad),
    }
    first = cross_check(EPOCH, [by_name[n] for n in order], quorum=quorum, verified=checks)
    again = cross_check(EPOCH, [by_name[n] for n in sorted(order)], quorum=quorum, verified=checks)
    assert first == again
    if quorum <= 2:
        assert isinstance(first, Agreed) and first.block_hash_hex == HASHES[HEIGHT]
    else:
        assert isinstance(first, Insufficient)


def test_crosscheck_imports_no_io_libraries() -> None:
    code = (
        "import sys, oracle.agreement.crosscheck, oracle.agreement.verify, oracle.agreement.reorg\n"
        "bad = {'asyncio', 'aiohttp', 'sqlalchemy', 'web3', 'zmq'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
