"""web3's HTTP provider with its JSON-RPC replies parsed within bounds.

web3 parses every reply with an unbounded ``json.loads`` (``FriendlyJsonSerde``),
in a process where py_ecc raised the recursion limit to 100,000: a hostile or
broken EVM RPC endpoint answering ~200 kB of ``[[[[...`` would crash the
process with SIGSEGV. ``BoundedAsyncHTTPProvider`` is ``AsyncHTTPProvider``
with ``decode_rpc_response`` replaced by ``boundedjson.loads_bounded``; a
rejected reply raises ``Web3RPCError`` (web3's "the node answered badly"),
which the publisher already handles as a failed round trip (its message names
what was wrong, never the reply itself). Kept apart from ``boundedjson`` so
that the block-API sources do not import web3.
"""

from __future__ import annotations

from typing import cast

from web3 import AsyncHTTPProvider
from web3.exceptions import Web3RPCError
from web3.types import RPCResponse

from oracle.sources.boundedjson import JsonRejected, loads_bounded


def decode_rpc_response_bounded(raw_response: bytes | str) -> RPCResponse:
    """A JSON-RPC reply parsed within bounds, or ``Web3RPCError``."""
    try:
        return cast(RPCResponse, loads_bounded(raw_response))
    except JsonRejected as exc:
        raise Web3RPCError(f"EVM RPC reply rejected: {exc}") from exc


class BoundedAsyncHTTPProvider(AsyncHTTPProvider):
    """``AsyncHTTPProvider`` whose replies (single and batch) go through ``loads_bounded``."""

    @staticmethod
    def decode_rpc_response(raw_response: bytes) -> RPCResponse:
        return decode_rpc_response_bounded(raw_response)
