"""Strict parsing at the source boundary: JSON-RPC batches (Core 28 trap), ZMQ frames, fields."""

from __future__ import annotations

import io
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from bitcoinrpc.authproxy import AuthServiceProxy

from oracle.agreement.reorg import (
    TIP_LOWER,
    TIP_REPLACED,
    check_stored_retarget,
    classify_tip_change,
)
from oracle.bitcoin.header import parse_header_hex
from oracle.errors import (
    HeightNotFound,
    SourceAuthFailed,
    SourceInconsistent,
    SourceMalformed,
    SourceWarmingUp,
)
from oracle.sources.bitcoind import parse_hashblock
from oracle.sources.checks import (
    build_header,
    make_observation,
    parse_header_hex_strict,
    parse_json,
    parse_text_int,
    require_hash_hex,
    require_int,
)
from oracle.sources.rest import parse_retry_after
from oracle.sources.rpc import RpcError, error_from_rpc, parse_batch_response, split_url_credentials
from oracle.sources.types import Observation, SourceFailure, Tip, error_kind
from tests.fixtures.restreplay import mainnet_hashes, mainnet_headers

HEADERS = mainnet_headers()
HASHES = mainnet_hashes()
T0 = datetime(2024, 2, 15, tzinfo=UTC)
#: A Bitcoin Core >= 28 JSON-RPC 2.0 batch reply (release-notes-27101): success
#: elements carry no "error" key, failures no "result" key.
CORE28_BATCH = [
    {"jsonrpc": "2.0", "result": HASHES[828576], "id": 1},
    {"jsonrpc": "2.0", "error": {"code": -8, "message": "Block height out of range"}, "id": 2},
]
#: The legacy (1.x) form every version uses without "jsonrpc": "2.0", and the regtest node always.
LEGACY_BATCH = [
    {"result": None, "error": {"code": -8, "message": "Block height out of range"}, "id": 2},
    {"result": HASHES[828576], "error": None, "id": 1},
]


class _Core28Reply:
    """The HTTP response object http.client would hand AuthServiceProxy for CORE28_BATCH."""

    status = 200
    reason = "OK"

    def getheader(self, name: str) -> str | None:
        return "application/json" if name == "Content-Type" else None

    def read(self) -> bytes:
        return json.dumps(CORE28_BATCH).encode()


class _Connection:
    sock = io.BytesIO()

    def request(self, *args: object, **kwargs: object) -> None:
        pass

    def getresponse(self) -> _Core28Reply:
        return _Core28Reply()


def test_upstream_batch_fails_on_core28_replies() -> None:
    """The trap the issue names: python-bitcoinrpc's batch_ does response['error']."""
    proxy = AuthServiceProxy("http://u:p@127.0.0.1:1/", connection=_Connection())
    with pytest.raises(KeyError, match="error"):
        proxy.batch_([["getblockhash", 828576], ["getblockhash", 99999999]])


@pytest.mark.parametrize("reply", [CORE28_BATCH, LEGACY_BATCH])
def test_our_batch_parser_handles_both_reply_styles(reply: list[dict[str, object]]) -> None:
    out = parse_batch_response(reply, [1, 2], source="core", request="batch")
    assert out[0] == HASHES[828576]
    assert out[1] == RpcError(-8, "Block height out of range")


def test_batch_parser_rejects_malformed_replies() -> None:
    with pytest.raises(SourceMalformed, match="JSON array"):
        parse_batch_response({"result": 1}, [1], source="core", request="batch")
    with pytest.raises(SourceMalformed, match="no element for id 2"):
        parse_batch_response([{"result": 1, "id": 1}], [1, 2], source="core", request="batch")
    with pytest.raises(SourceMalformed, match="neither result nor error"):
        parse_batch_response([{"id": 1}], [1], source="core", request="batch")


def test_rpc_errors_become_typed_source_errors() -> None:
    def err(code: int | None, message: str) -> Exception:
        return error_from_rpc(RpcError(code, message), source="core", request="getblockhash(9)")

    warm = err(-28, "Loading block index...")
    assert isinstance(warm, SourceWarmingUp) and error_kind(warm) == "warming_up"
    past = err(-8, "Block height out of range")
    assert isinstance(past, HeightNotFound) and "core getblockhash(9)" in str(past)
    auth = err(-342, "non-JSON HTTP response with '401 Unauthorized' from server")
    assert isinstance(auth, SourceAuthFailed) and error_kind(auth) == "auth"
    assert error_kind(err(-32601, "Method not found")) == "malformed"


def test_url_credentials_are_split_and_decoded() -> None:
    assert split_url_credentials("http://u:p%2F%40x@127.0.0.1:8332/") == (
        "http://127.0.0.1:8332/",
        "u",
        "p/@x",
    )
    assert split_url_credentials("http://127.0.0.1:8332") == ("http://127.0.0.1:8332", "", "")


def test_zmq_hashblock_is_display_order_with_le_sequence() -> None:
    block_hash = HASHES[828576]
    frames = [b"hashblock", bytes.fromhex(block_hash), struct.pack("<I", 258)]
    assert parse_hashblock(frames) == (block_hash, 258)
    with pytest.raises(ValueError, match="3 frames"):
        parse_hashblock(frames[:2])
    with pytest.raises(ValueError, match="body 31 bytes"):
        parse_hashblock([b"hashblock", bytes(31), bytes(4)])


def test_field_checks() -> None:
    kw = {"source": "s", "request": "r"}
    assert require_int(Decimal("386101681"), what="bits", **kw) == 386101681
    for bad in (True, "1", 1.5, Decimal("1.5"), None):
        with pytest.raises(SourceMalformed):
            require_int(bad, what="bits", **kw)
    with pytest.raises(SourceMalformed, match="in \\[0, 4294967295\\]"):
        require_int(2**32, what="bits", **kw)
    assert require_hash_hex(HASHES[0].upper(), **kw) == HASHES[0]
    for bad in (HASHES[0][:-1], "zz" * 32, 5):
        with pytest.raises(SourceMalformed):
            require_hash_hex(bad, **kw)
    assert parse_text_int("828576\n", what="height", **kw) == 828576
    for bad in ("", "-1", "12a", "<html>"):
        with pytest.raises(SourceMalformed):
            parse_text_int(bad, what="height", **kw)
    with pytest.raises(SourceMalformed, match="not JSON"):
        parse_json("<html><body>502 Bad Gateway</body></html>", **kw)
    with pytest.raises(SourceMalformed, match="160 hex"):
        parse_header_hex_strict(HEADERS[828576][:-2], **kw)


def test_header_rebuilt_from_json_fields_hashes_to_the_real_block() -> None:
    header = parse_header_hex(HEADERS[828576])
    raw = build_header(
        version=header.version,
        prev_hash_hex=header.prev_hash_hex,
        merkle_root_hex=header.merkle_root_hex,
        time=header.time,
        bits=header.bits,
        nonce=header.nonce,
    )
    assert raw.hex() == HEADERS[828576]


def test_observation_refuses_header_served_under_another_hash() -> None:
    header = parse_header_hex(HEADERS[828576])
    with pytest.raises(SourceInconsistent, match="hashes to"):
        make_observation(
            source="s",
            request="r",
            height=828576,
            block_hash_hex=HASHES[828577],
            header=header,
            observed_at=T0,
        )
    with pytest.raises(SourceInconsistent):
        Observation(
            source="s", height=828576, block_hash_hex=HASHES[828577], header=header, observed_at=T0
        )


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def tip(source: str, height: int, block_hash: str) -> Tip:
    return Tip(source=source, height=height, block_hash_hex=block_hash, observed_at=T0)


def test_tip_changes() -> None:
    a = tip("s", 828576, HASHES[828576])
    assert classify_tip_change(None, a) is None
    assert classify_tip_change(a, tip("s", 828577, HASHES[828577])) is None
    lower = classify_tip_change(a, tip("s", 828575, HASHES[828575]))
    assert lower is not None and lower.kind == TIP_LOWER
    replaced = classify_tip_change(a, tip("s", 828576, "00" * 32))
    assert replaced is not None and replaced.kind == TIP_REPLACED
    assert classify_tip_change(a, tip("other", 1, HASHES[0])) is None


def test_stored_retarget_checks() -> None:
    header = parse_header_hex(HEADERS[828576])
    same = Observation(
        source="s", height=828576, block_hash_hex=HASHES[828576], header=header, observed_at=T0
    )
    assert check_stored_retarget(epoch=411, stored_hash_hex=HASHES[828576], result=same) is None
    orphan = check_stored_retarget(epoch=411, stored_hash_hex="11" * 32, result=same)
    assert orphan is not None and orphan.current_hash_hex == HASHES[828576]
    down = SourceFailure(
        source="s", height=828576, request="r", kind="timeout", message="m", observed_at=T0
    )
    assert check_stored_retarget(epoch=411, stored_hash_hex="11" * 32, result=down) is None


def test_build_sources_from_config(tmp_path: Path) -> None:
    from oracle import config
    from oracle.sources.bitcoind import BitcoindSource
    from oracle.sources.blockchain_com import BlockchainComSource
    from oracle.sources.esplora import EsploraSource
    from oracle.sources.factory import build_sources

    path = tmp_path / "oracle.toml"
    path.write_text(
        '[bitcoind]\nurl = "http://127.0.0.1:18443"\ncookie_file = "/nonexistent/.cookie"\n'
        '[[sources]]\nname = "mempool"\nkind = "esplora"\nbase_url = "https://example.invalid/api"\n'
        '[[sources]]\nname = "bcom"\nkind = "blockchain_com"\nbase_url = "https://example.invalid"\n'
        '[[sources]]\nname = "off"\nkind = "esplora"\nbase_url = "https://x.invalid"\n'
        "enabled = false\n"
    )
    sources = build_sources(config.load(path, environ={}))
    assert [type(s) for s in sources] == [BitcoindSource, EsploraSource, BlockchainComSource]
    assert [s.name for s in sources] == ["bitcoind", "mempool", "bcom"]
