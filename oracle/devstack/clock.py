"""Keep the dev chain's clock at or after the regtest chain's clock.

Why: the DifficultyOracle refuses a header whose time is more than 2 hours
after ``block.timestamp`` (Bitcoin's own future-time rule). A fast-mined
regtest chain runs ahead of the wall clock (median-time-past forces about one
second per six blocks: ~336 s per 2016-block epoch), so after ~21 quickly mined
epochs its headers look "from the future" to an anvil on wall-clock time. The
dev stack and the test fixtures call ``follow_bitcoin_time`` after mining, so
anvil's clock (``anvil_setTime``, which keeps its offset for later blocks) never
trails the regtest tip. Dev and test chains only: production chains keep their
own time, and there the 2-hour rule is exactly what protects the contract.
"""

from __future__ import annotations

from oracle.devstack.nodes import json_rpc


def evm_pending_time(evm_url: str) -> int:
    """The timestamp the next EVM block (and every eth_call/estimate on "pending") gets."""
    block = json_rpc(evm_url, "eth_getBlockByNumber", ["pending", False], version="2.0")
    return int(block["timestamp"], 16)


def follow_bitcoin_time(evm_url: str, header_time: int) -> int:
    """Move anvil's clock forward to ``header_time`` if it is behind; never backwards.

    Returns the pending block time afterwards.
    """
    pending = evm_pending_time(evm_url)
    if pending >= header_time:
        return pending
    json_rpc(evm_url, "anvil_setTime", [header_time], version="2.0")
    return evm_pending_time(evm_url)
