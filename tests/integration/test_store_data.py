"""Store test data: real mainnet retarget headers (tests/data) and a forged sibling block.

Why: the repository verifies that a raw header hashes to the block hash it is
stored under, so tests use real headers; a "reorg" sibling is the same header
with another nonce (a different, self-consistent block for the same epoch).
"""

from __future__ import annotations

import csv
import struct
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from oracle.bitcoin.header import parse_header
from oracle.store.records import AgreedInput, ObservationInput

DATA = Path(__file__).resolve().parents[1] / "data" / "epoch_boundary_headers_0_832608.csv"


@dataclass(frozen=True)
class RetargetHeader:
    epoch: int
    height: int
    block_hash_hex: str
    bits: int
    time: int
    raw: bytes

    def agreed(self, sources: tuple[str, ...] = ("bitcoind", "esplora")) -> AgreedInput:
        return AgreedInput(
            self.epoch, self.height, self.block_hash_hex, self.bits, self.time, self.raw, sources
        )

    def observation(self, source: str, **overrides: object) -> ObservationInput:
        fields: dict[str, object] = {
            "epoch": self.epoch, "source": source, "height": self.height,
            "block_hash_hex": self.block_hash_hex, "bits": self.bits, "time": self.time,
            "raw_header": self.raw,
        }  # fmt: skip
        fields.update(overrides)
        return ObservationInput(**fields)  # type: ignore[arg-type]


@cache
def retarget_headers() -> dict[int, RetargetHeader]:
    """Epoch -> its real retarget header (height 2016 x epoch), epochs 0..413."""
    result = {}
    with DATA.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["role"] != "first":
                continue
            header = parse_header(bytes.fromhex(row["header_hex"]))
            epoch = int(row["epoch"])
            result[epoch] = RetargetHeader(
                epoch,
                int(row["height"]),
                header.block_hash_hex,
                header.bits,
                header.time,
                header.raw,
            )
    return result


@cache
def last_headers() -> dict[int, bytes]:
    """Epoch e -> the raw header at height 2016e-1 (the parent of its retarget block)."""
    with DATA.open(newline="") as handle:
        return {
            (int(row["height"]) + 1) // 2016: bytes.fromhex(row["header_hex"])
            for row in csv.DictReader(handle)
            if row["role"] == "last"
        }


def sibling(header: RetargetHeader, nonce_delta: int = 1) -> RetargetHeader:
    """The same header with another nonce: a competing block for the same epoch."""
    (nonce,) = struct.unpack_from("<I", header.raw, 76)
    raw = header.raw[:76] + struct.pack("<I", (nonce + nonce_delta) % 2**32)
    parsed = parse_header(raw)
    return RetargetHeader(
        header.epoch, header.height, parsed.block_hash_hex, parsed.bits, parsed.time, raw
    )


def test_retarget_headers_are_real_and_consistent() -> None:
    headers = retarget_headers()
    assert len(headers) >= 400
    genesis = headers[0]
    assert genesis.block_hash_hex.startswith("000000000019d6689c085ae165831e934ff763ae46a2a6c1")
    assert all(h.height == 2016 * e for e, h in headers.items())


def test_sibling_is_a_different_block_with_the_same_fields() -> None:
    header = retarget_headers()[300]
    other = sibling(header)
    assert other.block_hash_hex != header.block_hash_hex
    assert (other.bits, other.time, other.height) == (header.bits, header.time, header.height)
