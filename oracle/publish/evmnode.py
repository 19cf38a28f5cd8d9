"""What the publish stage asks of the EVM node besides the contract: send, look up, explain.

Where it sits: ``txmanager.TxManager`` drives a submission with these calls
(contract views and calldata are ``contract.py``'s). They hold no state and do no
logging: each answers one question through the ``AsyncWeb3`` it is given, and the
manager decides and logs. ``TRANSIENT_ERRORS`` / ``RPC_ERRORS`` classify node
failures for every caller that talks JSON-RPC (the publisher's ping, the peers'
signer-set reads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Literal

import aiohttp
from web3 import AsyncWeb3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from oracle.errors import PublishError
from oracle.publish.contract import ContractReverted, decode_revert

#: Errors that mean "the node is unreachable right now", waited out until the deadline.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    ProviderConnectionError,
    ConnectionError,
    asyncio.TimeoutError,
    OSError,
)
#: Any failure of a JSON-RPC round trip (transport or the node's own error answer).
RPC_ERRORS: tuple[type[BaseException], ...] = (Web3RPCError, *TRANSIENT_ERRORS)

#: How a broadcast ended: accepted, already known to the node, or refused as underpriced.
Sent = Literal["sent", "duplicate", "underpriced"]
_DUPLICATE = ("already known", "already imported", "nonce too low", "known transaction")


async def pending_base_fee(w3: AsyncWeb3[Any]) -> int:
    """The base fee of the next block (0 before London)."""
    block = await w3.eth.get_block("pending")
    return int(block.get("baseFeePerGas") or 0)


async def send_raw(w3: AsyncWeb3[Any], raw: bytes, tx_hash: str) -> tuple[Sent, str]:
    """Send raw bytes; "already known" and friends are fine, the poll loop sorts them out.

    Returns how it went and, for a duplicate or an underpriced refusal, the node's message
    (lower case, cut to 120 characters); any other refusal is a ``PublishError``.
    """
    try:
        await w3.eth.send_raw_transaction(raw)
    except Web3RPCError as exc:
        message = str(exc).lower()
        if any(text in message for text in _DUPLICATE):
            return "duplicate", message[:120]
        if "underpriced" in message:
            return "underpriced", message[:120]
        raise PublishError(f"node refused transaction {tx_hash}: {exc}") from exc
    return "sent", ""


async def find_receipt(w3: AsyncWeb3[Any], tx_hashes: Sequence[str]) -> tuple[str, Any] | None:
    """``(hash, receipt)`` of the latest of ``tx_hashes`` (oldest first) that was mined."""
    for tx_hash in reversed(tx_hashes):
        try:
            receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except (TransactionNotFound, TimeExhausted):
            continue
        if receipt is not None and receipt.get("blockNumber") is not None:
            return tx_hash, receipt
    return None


async def node_knows(w3: AsyncWeb3[Any], tx_hash: str) -> bool:
    """Whether the node still has the transaction (mempool or chain)."""
    try:
        await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return True


async def revert_reason(w3: AsyncWeb3[Any], tx_hash: str, receipt: Any) -> ContractReverted:
    """Decode why a mined transaction reverted: the node's trace, else a replay at its block."""
    # A node without debug_traceTransaction refuses it: fall through to the replay.
    with contextlib.suppress(*RPC_ERRORS):
        trace = await w3.provider.make_request("debug_traceTransaction", [tx_hash, {}])
        result = trace.get("result") or {}
        data = result.get("returnValue")
        if result.get("failed") and isinstance(data, str) and data:
            return decode_revert(data if data.startswith("0x") else "0x" + data)
    tx = await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    try:
        await w3.eth.call(
            {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]},
            block_identifier=receipt["blockNumber"],
        )
    except ContractLogicError as exc:
        return (
            decode_revert(str(exc.data))
            if isinstance(exc.data, str)
            else ContractReverted("Reverted", {"message": exc.message or ""})
        )
    return ContractReverted("Reverted", {"tx_hash": tx_hash})


def receipt_json(receipt: Any) -> dict[str, Any]:
    """The parts of a receipt worth keeping, JSON-friendly."""
    tx_hash = receipt["transactionHash"]
    block_hash = receipt["blockHash"]
    return {
        "transactionHash": "0x" + bytes(tx_hash).hex() if not isinstance(tx_hash, str) else tx_hash,
        "blockHash": "0x" + bytes(block_hash).hex()
        if not isinstance(block_hash, str)
        else block_hash,
        "blockNumber": int(receipt["blockNumber"]),
        "gasUsed": int(receipt["gasUsed"]),
        "effectiveGasPrice": int(receipt.get("effectiveGasPrice") or 0),
        "status": int(receipt["status"]),
    }
