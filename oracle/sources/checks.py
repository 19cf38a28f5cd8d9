"""Strict parsing shared by every source adapter.

Whatever a source sends is untrusted: each field is checked for type, range
and self-consistency here, at the boundary, and turned into a typed
``SourceDataError`` naming the source, the request and what was wrong. Past
this module only ``Header``/``Observation`` values exist.

What a source sent is quoted in a message only through ``upstream``: short,
ASCII, inside ``«»``. Logs keep the excerpt (it is what an operator needs to
see); the public API shows the message with every excerpt elided
(``elide_upstream``), so it never echoes what a source sent.
"""

from __future__ import annotations

import re
import struct
from datetime import datetime
from decimal import Decimal
from typing import Any

from oracle.bitcoin.header import HEADER_SIZE, Header, parse_header
from oracle.errors import InvalidHeader, SourceInconsistent, SourceMalformed
from oracle.sources.boundedjson import JsonRejected, loads_bounded
from oracle.sources.types import Observation

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_RE = re.compile(r"[0-9a-fA-F]{160}")
_INT_RE = re.compile(r"[0-9]{1,12}")
#: Heights are non-negative and far below 2^31 for any real chain.
MAX_HEIGHT = 2**31 - 1


_EXCERPT = re.compile("«[^«»]*»")


def upstream(value: Any, limit: int = 80) -> str:
    """An excerpt of what a source sent, for a message: ASCII, at most ``limit`` chars, in «».

    Cheap for any value (a container is described, never rendered), and
    recognisable, so ``elide_upstream`` can take it out of public answers.
    ``ascii`` escapes «» inside the value, so an excerpt cannot end early.
    """
    if isinstance(value, str):
        text = ascii(value[:limit])
    elif isinstance(value, list | dict):
        kind = "array" if isinstance(value, list) else "object"
        text = f"a JSON {kind} of {len(value)} items"
    else:
        text = ascii(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"«{text}»"


def elide_upstream(text: str) -> str:
    """``text`` with every ``upstream`` excerpt replaced by ``«…»``."""
    return _EXCERPT.sub("«…»", text)


def require_int(
    value: Any, *, source: str, request: str, what: str, minimum: int = 0, maximum: int = 2**32 - 1
) -> int:
    """An integer (not bool, not float) within [minimum, maximum]."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SourceMalformed(
            f"{what} should be an integer, got {upstream(value)}", source=source, request=request
        )
    if not minimum <= value <= maximum:
        raise SourceMalformed(
            f"{what} should be in [{minimum}, {maximum}], got {value}",
            source=source,
            request=request,
        )
    return value


def require_height(value: Any, *, source: str, request: str) -> int:
    return require_int(value, source=source, request=request, what="height", maximum=MAX_HEIGHT)


def require_hash_hex(value: Any, *, source: str, request: str, what: str = "block hash") -> str:
    """A block hash: exactly 64 hex characters (normalised to lower case)."""
    if not isinstance(value, str):
        raise SourceMalformed(
            f"{what} should be a string, got {upstream(value)}", source=source, request=request
        )
    lowered = value.strip().lower()
    if not _HASH_RE.fullmatch(lowered):
        raise SourceMalformed(
            f"{what} should be 64 hex characters, got {upstream(value)}",
            source=source,
            request=request,
        )
    return lowered


def parse_text_int(body: str, *, source: str, request: str, what: str) -> int:
    """A plain-text integer body such as Esplora's ``/blocks/tip/height``."""
    text = body.strip()
    if not _INT_RE.fullmatch(text):
        raise SourceMalformed(
            f"{what} should be a decimal integer, got {upstream(body)}",
            source=source,
            request=request,
        )
    return require_int(int(text), source=source, request=request, what=what, maximum=MAX_HEIGHT)


def parse_json(body: str, *, source: str, request: str) -> Any:
    """JSON within bounds (``boundedjson``), or a typed error.

    HTML error pages, truncated bodies, nesting past 64 levels and numbers past
    40 digits or 3-digit exponents all end here as ``SourceMalformed``.
    """
    try:
        return loads_bounded(body, parse_float=Decimal)
    except JsonRejected as exc:
        raise SourceMalformed(
            f"response rejected: {exc}: {upstream(body[:60])}", source=source, request=request
        ) from exc


def require_dict(value: Any, *, source: str, request: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SourceMalformed(
            f"{what} should be a JSON object, got {upstream(value)}", source=source, request=request
        )
    return value


def field(obj: dict[str, Any], key: str, *, source: str, request: str) -> Any:
    if key not in obj:
        raise SourceMalformed(f"missing field {key!r}", source=source, request=request)
    return obj[key]


def parse_header_hex_strict(value: Any, *, source: str, request: str) -> Header:
    """An 80-byte header given as 160 hex characters."""
    if not isinstance(value, str):
        raise SourceMalformed(
            f"header should be a hex string, got {upstream(value)}", source=source, request=request
        )
    text = value.strip()
    if not _HEADER_RE.fullmatch(text):
        raise SourceMalformed(
            f"header should be {2 * HEADER_SIZE} hex characters, "
            f"got {len(text)}: {upstream(text[:40])}",
            source=source,
            request=request,
        )
    try:
        return parse_header(bytes.fromhex(text))
    except InvalidHeader as exc:  # pragma: no cover - length already checked
        raise SourceMalformed(str(exc), source=source, request=request) from exc


def build_header(
    *, version: int, prev_hash_hex: str, merkle_root_hex: str, time: int, bits: int, nonce: int
) -> bytes:
    """Serialise header fields back into the 80 bytes that were hashed.

    Used for sources that only give JSON fields (blockchain.com): the rebuilt
    header must hash to the hash the source served, which proves the fields
    are the real ones.
    """
    return struct.pack(
        "<I32s32sIII",
        version & 0xFFFFFFFF,
        bytes.fromhex(prev_hash_hex)[::-1],
        bytes.fromhex(merkle_root_hex)[::-1],
        time,
        bits,
        nonce,
    )


def make_observation(
    *,
    source: str,
    request: str,
    height: int,
    block_hash_hex: str,
    header: Header,
    observed_at: datetime,
) -> Observation:
    """An observation, refusing a header that does not hash to the hash it was served under."""
    if header.block_hash_hex != block_hash_hex:
        raise SourceInconsistent(
            f"header for height {height} hashes to {header.block_hash_hex}, "
            f"but was served as {block_hash_hex}",
            source=source,
            request=request,
        )
    return Observation(
        source=source,
        height=height,
        block_hash_hex=block_hash_hex,
        header=header,
        observed_at=observed_at,
    )
