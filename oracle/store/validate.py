"""Input checks for the repository: bad values become InputError before any SQL runs.

Store stage of DESIGN.md. Hex spellings are normalised to lower case so the
same hash or address written two ways is one key, not two rows.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from oracle.bitcoin.difficulty import NETWORKS
from oracle.errors import InputError

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_ADDRESS_RE = re.compile(r"^0x[0-9a-f]{40}$")
_TX_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_HEX_RE = re.compile(r"^0x(?:[0-9a-f]{2})*$")
U32_MAX = 0xFFFFFFFF


def network(name: str) -> str:
    if name not in NETWORKS:
        raise InputError(f"unknown network {name!r} (known: {', '.join(NETWORKS)})")
    return name


def non_negative_int(value: Any, what: str, *, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{what} should be a non-negative integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise InputError(f"{what} should be <= {maximum}, got {value!r}")
    return value


def epoch(value: Any) -> int:
    return non_negative_int(value, "epoch", maximum=2**31 - 1)


def bits(value: Any) -> int:
    return non_negative_int(value, "bits", maximum=U32_MAX)


def header_time(value: Any) -> int:
    return non_negative_int(value, "header time", maximum=U32_MAX)


def block_hash_hex(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _HASH_RE.match(text):
        raise InputError(f"block_hash_hex should be 64 hex characters, got {value!r}")
    return text


def address(value: Any, what: str = "address") -> str:
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _ADDRESS_RE.match(text):
        raise InputError(f"{what} should be 0x and 40 hex characters, got {value!r}")
    return text


def tx_hash(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _TX_HASH_RE.match(text):
        raise InputError(f"tx_hash should be 0x and 64 hex characters, got {value!r}")
    return text


def hex_string(value: Any, what: str) -> str:
    text = value.lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _HEX_RE.match(text) or len(text) < 4:
        raise InputError(f"{what} should be 0x-prefixed hex bytes, got {value!r}")
    return text


def name(value: Any, what: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InputError(
            f"{what} should be a non-empty string of at most {max_length} characters, got {value!r}"
        )
    return value


def raw_header(value: Any, *, required: bool) -> bytes | None:
    if value is None and not required:
        return None
    if not isinstance(value, (bytes, bytearray)) or len(value) != 80:
        raise InputError(f"raw_header should be 80 bytes, got {value!r:.60}")
    return bytes(value)


def aware(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InputError(f"{what} should be a timezone-aware datetime, got {value!r}")
    return value
