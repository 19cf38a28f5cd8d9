"""The pure parts of oracle.market.chain: series ids typed by a user, fallback decoding.

The contract side (``seriesId`` on chain equals ``series_id``) is in
tests/integration/test_market_contract.py.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector

from oracle.errors import InputError
from oracle.market.chain import parse_series_id
from oracle.publish.contract import decode_revert


def test_a_series_id_is_32_bytes_of_hex() -> None:
    raw = bytes(range(32))
    assert parse_series_id("0x" + raw.hex()) == raw
    assert parse_series_id(raw.hex()) == raw
    assert parse_series_id(raw) == raw
    with pytest.raises(InputError, match="32 bytes, got 31"):
        parse_series_id(raw[:31].hex())
    with pytest.raises(InputError, match="hex"):
        parse_series_id("0xnothex")


def test_settlement_not_final_carries_the_oracle_reason_decoded() -> None:
    inner = function_signature_to_4byte_selector("EpochNotFinal(uint256,uint256)") + abi_encode(
        ["uint256", "uint256"], [417, 1_700_000_000]
    )
    outer = function_signature_to_4byte_selector("SettlementNotFinal(bytes32,bytes)") + abi_encode(
        ["bytes32", "bytes"], [b"\x11" * 32, inner]
    )
    reverted = decode_revert(outer)
    assert reverted.name == "SettlementNotFinal"
    assert reverted.inner is not None and reverted.inner.name == "EpochNotFinal"
    assert reverted.inner.args_by_name == {"epoch": 417, "finalAt": 1_700_000_000}
    assert "reason=EpochNotFinal(epoch=417, finalAt=1700000000)" in str(reverted)
    market_error = function_signature_to_4byte_selector("CollateralShortfall(uint256,uint256)")
    shortfall = decode_revert(market_error + abi_encode(["uint256", "uint256"], [100, 99]))
    assert (shortfall.name, shortfall.args_by_name) == (
        "CollateralShortfall",
        {"required": 100, "received": 99},
    )
