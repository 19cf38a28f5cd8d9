"""80-byte headers: hashing, proof of work and linkage on real mainnet data."""

from __future__ import annotations

import csv
import itertools

import pytest

from oracle.bitcoin.difficulty import NETWORKS, calculate_next_work_required
from oracle.bitcoin.header import check_links, check_proof_of_work, parse_header, parse_header_hex
from oracle.errors import InvalidHeader
from tests.conftest import DATA


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open() as f:
        return list(csv.DictReader(f))


CONTINUOUS = _rows("headers_822528_830592.csv")
STALE = _rows("stale_headers_822941_831769.csv")
BOUNDARY = _rows("epoch_boundary_headers_0_832608.csv")


def test_boundary_headers_hash_and_fields() -> None:
    for row in BOUNDARY:
        header = parse_header_hex(row["header_hex"])
        assert header.block_hash_hex == row["hash"]
        assert header.prev_hash_hex == row["prev_hash"]
        assert header.merkle_root_hex == row["merkle_root"]
        assert header.time == int(row["time"]) and f"{header.bits:08x}" == row["bits"]
        assert header.nonce == int(row["nonce"]) and header.version == int(row["version"])
        check_proof_of_work(header, NETWORKS["mainnet"])


def test_continuous_chain_links_and_retargets() -> None:
    headers = [parse_header_hex(r["header_hex"]) for r in CONTINUOUS]
    by_height = {int(r["height"]): h for r, h in zip(CONTINUOUS, headers, strict=True)}
    for parent, child in itertools.pairwise(headers):
        check_links(parent, child)
        check_proof_of_work(child)
    for height in (824_544, 826_560, 828_576, 830_592):
        bits = calculate_next_work_required(
            NETWORKS["mainnet"],
            last_bits=by_height[height - 1].bits,
            first_time=by_height[height - 2016].time,
            last_time=by_height[height - 1].time,
        )
        assert bits == by_height[height].bits


def test_stale_blocks_have_valid_pow_but_do_not_link_to_canonical_child() -> None:
    canonical = {int(r["height"]): parse_header_hex(r["header_hex"]) for r in CONTINUOUS}
    checked = 0
    for row in STALE:
        stale = parse_header_hex(row["header_hex"])
        assert stale.block_hash_hex == row["hash"]
        check_proof_of_work(stale)
        height = int(row["height"])
        if height in canonical and height + 1 in canonical:
            assert stale.block_hash_hex != canonical[height].block_hash_hex
            check_links(canonical[height - 1], stale)
            with pytest.raises(InvalidHeader, match="links to"):
                check_links(stale, canonical[height + 1])
            checked += 1
    assert checked >= 8


def test_tampered_header_fails_pow() -> None:
    raw = bytearray(bytes.fromhex(CONTINUOUS[0]["header_hex"]))
    raw[76] ^= 0x01  # flip a nonce bit
    with pytest.raises(InvalidHeader, match="does not meet"):
        check_proof_of_work(parse_header(bytes(raw)))


def test_invalid_bits_in_header_rejected() -> None:
    raw = bytearray(bytes.fromhex(CONTINUOUS[0]["header_hex"]))
    raw[72:76] = (0x1D80FFFF).to_bytes(4, "little")
    with pytest.raises(InvalidHeader, match="negative"):
        check_proof_of_work(parse_header(bytes(raw)))
    raw[72:76] = (0x1D01FFFF).to_bytes(4, "little")
    with pytest.raises(InvalidHeader, match="easier than mainnet powLimit"):
        check_proof_of_work(parse_header(bytes(raw)), NETWORKS["mainnet"])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 79, b"\x00" * 81])
def test_header_length(bad: bytes) -> None:
    with pytest.raises(InvalidHeader, match="80 bytes"):
        parse_header(bad)


def test_header_hex_garbage() -> None:
    with pytest.raises(InvalidHeader, match="not hex"):
        parse_header_hex("zz" * 80)
