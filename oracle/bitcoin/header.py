"""80-byte Bitcoin block headers: parse, hash, proof-of-work and linkage checks.

Pure. Hashes are kept in two spellings and the name says which:
``block_hash_hex`` is RPC display order (byte-reversed), ``*_le`` is header order.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from oracle.bitcoin.difficulty import Network, bits_to_target
from oracle.errors import InvalidBits, InvalidHeader

HEADER_SIZE = 80


def double_sha256(data: bytes) -> bytes:
    """SHA256(SHA256(data)), Bitcoin's block and transaction hash."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed block header; ``raw`` is the exact 80 bytes it came from."""

    raw: bytes
    version: int
    prev_hash_hex: str
    merkle_root_hex: str
    time: int
    bits: int
    nonce: int
    block_hash_hex: str

    @property
    def block_hash_int(self) -> int:
        """The hash as the 256-bit number compared against the target."""
        return int(self.block_hash_hex, 16)


def parse_header(raw: bytes) -> Header:
    """Parse 80 raw bytes; the hash is computed here, never taken on trust."""
    if len(raw) != HEADER_SIZE:
        raise InvalidHeader(f"a header is {HEADER_SIZE} bytes, got {len(raw)}")
    version, prev_le, merkle_le, time, bits, nonce = struct.unpack("<i32s32sIII", raw)
    return Header(
        raw=bytes(raw),
        version=version,
        prev_hash_hex=prev_le[::-1].hex(),
        merkle_root_hex=merkle_le[::-1].hex(),
        time=time,
        bits=bits,
        nonce=nonce,
        block_hash_hex=double_sha256(raw)[::-1].hex(),
    )


def parse_header_hex(header_hex: str) -> Header:
    """Parse a header given as 160 hex characters."""
    try:
        raw = bytes.fromhex(header_hex)
    except ValueError as exc:
        raise InvalidHeader(f"header is not hex: {header_hex[:20]!r}...") from exc
    return parse_header(raw)


def check_proof_of_work(header: Header, network: Network | None = None) -> None:
    """Raise unless the header's hash meets the target of its own bits (Core ``CheckProofOfWork``).

    With a network, the target must also not be easier than its powLimit.
    """
    try:
        target = bits_to_target(header.bits)
    except InvalidBits as exc:
        raise InvalidHeader(f"block {header.block_hash_hex}: {exc}") from exc
    if network is not None and target > network.pow_limit:
        raise InvalidHeader(
            f"block {header.block_hash_hex}: bits {header.bits:#010x} are easier than "
            f"{network.name} powLimit"
        )
    if header.block_hash_int > target:
        raise InvalidHeader(
            f"block {header.block_hash_hex} does not meet its bits {header.bits:#010x}"
        )


def check_links(parent: Header, child: Header) -> None:
    """Raise unless ``child`` names ``parent`` as its previous block."""
    if child.prev_hash_hex != parent.block_hash_hex:
        raise InvalidHeader(
            f"block {child.block_hash_hex} links to {child.prev_hash_hex}, "
            f"not to {parent.block_hash_hex}"
        )
