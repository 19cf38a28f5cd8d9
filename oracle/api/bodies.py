"""Response bodies with their validators: strong ETags, conditional GET (304), Cache-Control.

The bottom of ``oracle.api`` beside ``context``: the snapshot
(``oracle.api.snapshot``) renders each answer once into a ``Body`` (bytes, media
type and a strong ETag, the hash of the bytes), and the handlers answer it
with ``respond``: 304 without a body when the client's ``If-None-Match``
already names it, else 200 with ``ETag`` and ``Cache-Control``. The data
changes at most once a block, so clients and caches may keep an answer a few
seconds (``CACHE_DATA``) and then revalidate for the price of a 304.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
#: Data that changes at most once a block (retargets, indices, disagreements, ...).
CACHE_DATA = "public, max-age=5"
#: ``/v1/status``: its ``now`` and the figures derived from it move every second.
CACHE_STATUS = "public, max-age=1"
#: ``/health``, ``/ready``, ``/metrics``: always ask (scrapers and probes want the present).
NO_CACHE = "no-cache"


def dumps(value: Any) -> bytes:
    """Compact JSON (exact values are strings already; nothing here is a float but display)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def etag_of(data: bytes) -> str:
    """A strong ETag: the first 128 bits of the body's BLAKE2b, quoted."""
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


@dataclass(frozen=True, slots=True)
class Body:
    """One rendered answer: its bytes, media type and ETag (computed once, on creation)."""

    data: bytes
    content_type: str = JSON
    etag: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.etag:
            object.__setattr__(self, "etag", etag_of(self.data))


def json_body(value: Any) -> Body:
    return Body(dumps(value))


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def respond(request: web.Request, body: Body, cache_control: str = CACHE_DATA) -> web.Response:
    """200 with the body, or 304 when the client holds it already; ETag, Cache-Control on both."""
    headers = {"ETag": body.etag, "Cache-Control": cache_control}
    if not_modified(request.headers.get("If-None-Match"), body.etag):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = body.content_type
    return web.Response(body=body.data, headers=headers)
