"""The transaction manager: land each signed report on chain exactly once, whatever happens.

Where it sits: ``publisher.py`` hands it a signed report and the retarget
header; it owns the EVM side from there. The rules (DESIGN.md "Publication
rules", STYLE.md section 9):

* The submission, its nonce and its signed raw transaction are written to the
  store BEFORE the first byte goes to the node, so a crash at any point leaves
  enough on disk to finish the job or prove it finished.
* Fees are EIP-1559, capped at ``max_fee_gwei``. A transaction not mined within
  ``replace_after_s`` is replaced (same nonce) with fees bumped by
  ``fee_bump_percent``; at the cap it is re-sent unchanged.
* A transaction the node no longer knows (dropped from the mempool, node
  restarted) is re-sent as the same raw bytes; connection errors while the node
  is down are waited out until ``receipt_timeout_s``.
* A receipt counts after ``receipt_confirmations`` blocks; a reverted
  transaction is decoded to its custom error, recorded, and raised.
* ``reconcile()`` on start: for every live submission, the contract's state is
  checked first (epoch already stored -> done), then the stored transactions
  (mined? pending? lost -> re-send the same bytes; nonce taken by something
  else -> failed), so an epoch is never submitted twice.

The store is any object with the ``SubmissionStore`` methods below (the real
one is ``oracle.store.Repository``); states: signed -> broadcast -> mined ->
confirmed, or reverted / failed / abandoned.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog
from web3 import AsyncWeb3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)

from oracle.config import PublisherConfig
from oracle.errors import PublishError, TxNotConfirmed
from oracle.publish.contract import ContractReverted, OracleContract, decode_revert
from oracle.publish.signing import KeystoreAccount, Report, ReportSignature, pack_signatures

log = structlog.get_logger(__name__)

GWEI = 10**9
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


# ------------------------------------------------------------------ store protocol


class SubmissionRow(Protocol):
    """What the manager reads of a stored submission (``oracle.store.records.SubmissionRecord``)."""

    @property
    def id(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def report(self) -> dict[str, Any]: ...
    @property
    def state(self) -> str: ...


class SubmissionTxRow(Protocol):
    """One stored signed attempt (``oracle.store.records.SubmissionTxRecord``)."""

    @property
    def nonce(self) -> int: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def raw_tx(self) -> bytes: ...
    @property
    def max_fee_per_gas(self) -> int: ...
    @property
    def max_priority_fee_per_gas(self) -> int: ...


class SubmissionStore(Protocol):
    """Exactly the persistence the manager needs."""

    async def create_submission(
        self,
        chain_id: int,
        contract_address: str,
        epoch: int,
        signers: Sequence[str],
        report: Mapping[str, Any],
    ) -> int: ...

    async def add_submission_tx(
        self,
        submission_id: int,
        *,
        nonce: int,
        tx_hash: str,
        raw_tx: bytes,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
    ) -> int: ...

    async def transition_submission(
        self,
        submission_id: int,
        state: str,
        detail: str | None = None,
        receipt: Mapping[str, Any] | None = None,
        tx_hash: str | None = None,
    ) -> Any: ...

    async def get_submission(self, submission_id: int) -> SubmissionRow | None: ...

    async def live_submissions(
        self, chain_id: int, contract_address: str
    ) -> Sequence[SubmissionRow]: ...

    async def submission_for_epoch(
        self, chain_id: int, contract_address: str, epoch: int
    ) -> SubmissionRow | None: ...

    async def submission_txs(self, submission_id: int) -> Sequence[SubmissionTxRow]: ...


# ------------------------------------------------------------------ policy and results


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """Fees, replacement and confirmation settings (from ``PublisherConfig``)."""

    max_fee_wei: int
    priority_fee_wei: int
    fee_bump_percent: int = 15
    replace_after_s: float = 120.0
    confirmations: int = 1
    receipt_timeout_s: float = 600.0
    poll_interval_s: float = 1.0
    gas_margin_percent: int = 25

    def __post_init__(self) -> None:
        if self.priority_fee_wei > self.max_fee_wei:
            raise PublishError("priority fee must not exceed the max fee cap")
        if self.fee_bump_percent < 10:
            raise PublishError("fee_bump_percent must be >= 10 (nodes refuse smaller replacements)")
        if self.confirmations < 1:
            raise PublishError("receipt_confirmations must be >= 1")

    @classmethod
    def from_config(cls, config: PublisherConfig, *, poll_interval_s: float = 1.0) -> FeePolicy:
        return cls(
            max_fee_wei=int(config.max_fee_gwei * GWEI),
            priority_fee_wei=int(config.priority_fee_gwei * GWEI),
            fee_bump_percent=config.fee_bump_percent,
            replace_after_s=config.replace_after_s,
            confirmations=config.receipt_confirmations,
            receipt_timeout_s=config.receipt_timeout_s,
            poll_interval_s=poll_interval_s,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one epoch ended up on chain."""

    epoch: int
    #: "confirmed" (our transaction), "already_on_chain" (stored before or by another sender)
    status: str
    submission_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    gas_used: int | None = None


class SimulatedCrash(Exception):
    """Raised by test hooks to stop the manager between two steps."""


#: Called at "created", "signed" (stored, not yet sent) and "broadcast" (sent, no receipt yet).
StepHook = Callable[[str, int], Awaitable[None] | None]


# ------------------------------------------------------------------ the manager


class TxManager:
    """Submits reports from one sender to one DifficultyOracle, exactly once per epoch."""

    def __init__(
        self,
        *,
        w3: AsyncWeb3[Any],
        oracle: OracleContract,
        store: SubmissionStore,
        sender: KeystoreAccount,
        chain_id: int,
        policy: FeePolicy,
        hook: StepHook | None = None,
    ) -> None:
        self.w3 = w3
        self.oracle = oracle
        self.store = store
        self.sender = sender
        self.chain_id = chain_id
        self.policy = policy
        self._hook = hook
        self._contract_key = oracle.address.lower()

    # -------------------------------------------------------------- public API

    async def submit(
        self, report: Report, signatures: Sequence[ReportSignature], header: bytes
    ) -> Outcome:
        """Land ``report`` (signed by ``signatures``, backed by ``header``) exactly once.

        Finishes any live submission first (nonces are serial), returns at once if the
        epoch is already on chain, resumes a live submission of the same epoch, else
        simulates, stores, signs, broadcasts and drives a new one. Raises
        ``ContractReverted`` for a refusal, ``TxNotConfirmed`` on timeout (the
        submission stays live for ``reconcile``).
        """
        bound = log.bind(epoch=report.epoch, contract=self.oracle.address)
        for other in await self.store.live_submissions(self.chain_id, self._contract_key):
            if other.epoch != report.epoch:
                await self._drive(other)
        on_chain = await self._on_chain_outcome(report)
        if on_chain is not None:
            existing = await self.store.submission_for_epoch(
                self.chain_id, self._contract_key, report.epoch
            )
            if existing is not None and existing.state in ("signed", "broadcast", "mined"):
                return await self._drive(existing)
            bound.info("epoch_already_on_chain")
            return on_chain
        existing = await self.store.submission_for_epoch(
            self.chain_id, self._contract_key, report.epoch
        )
        if existing is not None and existing.state in ("signed", "broadcast", "mined"):
            return await self._drive(existing)
        if existing is not None and existing.state == "confirmed":
            raise PublishError(
                f"epoch {report.epoch}: the store says submission {existing.id} confirmed, "
                "but the contract does not hold it (wrong chain or contract?)"
            )
        packed = pack_signatures(signatures)
        await self.oracle.simulate_submit(report, packed, header, sender=self.sender.address)
        calldata = self.oracle.submit_calldata(report, packed, header)
        gas = await self._estimate_gas(calldata)
        stored_report = {
            **report.as_dict(),
            "signatures_hex": packed.hex(),
            "header_hex": header.hex(),
            "gas": gas,
        }
        submission_id = await self.store.create_submission(
            self.chain_id,
            self._contract_key,
            report.epoch,
            [s.signer for s in sorted(signatures, key=lambda s: int(s.signer, 16))],
            stored_report,
        )
        bound.info("submission_created", submission_id=submission_id, gas=gas)
        await self._step("created", submission_id)
        nonce = await self.w3.eth.get_transaction_count(self.sender.address, "pending")
        max_fee, priority = await self._initial_fees()
        raw, tx_hash = await self._sign_and_store(
            submission_id, stored_report, nonce, max_fee, priority
        )
        await self._step("signed", submission_id)
        await self._broadcast(raw, tx_hash)
        await self.store.transition_submission(submission_id, "broadcast", tx_hash=tx_hash)
        bound.info("tx_broadcast", submission_id=submission_id, tx_hash=tx_hash, nonce=nonce)
        await self._step("broadcast", submission_id)
        row = await self.store.get_submission(submission_id)
        assert row is not None  # we just created it
        return await self._drive(row)

    async def reconcile(self) -> list[Outcome]:
        """On start: settle every live submission, contract state first, then its transactions."""
        outcomes = []
        for row in await self.store.live_submissions(self.chain_id, self._contract_key):
            log.info("reconcile_submission", submission_id=row.id, epoch=row.epoch, state=row.state)
            outcomes.append(await self._drive(row))
        return outcomes

    # -------------------------------------------------------------- driving one submission

    async def _drive(self, row: SubmissionRow) -> Outcome:
        """Wait for, replace, re-send and confirm one live submission until it is settled."""
        report = Report.from_dict(row.report)
        deadline = time.monotonic() + self.policy.receipt_timeout_s
        last_send = time.monotonic()
        state = row.state
        while True:
            try:
                settled = await self._advance(row, report, state, last_send)
            except TRANSIENT_ERRORS as exc:
                log.warning("rpc_unavailable", submission_id=row.id, error=type(exc).__name__)
                settled = None
            if isinstance(settled, Outcome):
                return settled
            if isinstance(settled, tuple):
                state, last_send = settled
            if time.monotonic() > deadline:
                raise TxNotConfirmed(
                    f"epoch {report.epoch}: submission {row.id} not confirmed within "
                    f"{self.policy.receipt_timeout_s}s (state {state}); reconcile will resume it"
                )
            await asyncio.sleep(self.policy.poll_interval_s)

    async def _advance(
        self, row: SubmissionRow, report: Report, state: str, last_send: float
    ) -> Outcome | tuple[str, float] | None:
        """One poll: returns an Outcome when settled, else the (state, last_send) to carry on."""
        txs = list(await self.store.submission_txs(row.id))
        mined = await self._find_receipt(txs)
        if mined is not None:
            return await self._on_receipt(row, report, state, mined)
        on_chain = await self._on_chain_outcome(report)
        if not txs:
            # Crashed after creating the submission, before any transaction was stored.
            detail = "no transaction was stored before the restart"
            if on_chain is not None:
                detail = "epoch stored on chain by another transaction"
            await self.store.transition_submission(row.id, "abandoned", detail=detail)
            if on_chain is not None:
                return on_chain
            raise PublishError(
                f"epoch {report.epoch}: submission {row.id} abandoned ({detail}); submit again"
            )
        latest = txs[-1]
        chain_nonce = await self.w3.eth.get_transaction_count(self.sender.address, "latest")
        if chain_nonce > latest.nonce:
            # Our nonce is used, yet none of our hashes has a receipt: re-check once (a
            # receipt can lag), then conclude another transaction took the nonce.
            mined = await self._find_receipt(txs)
            if mined is not None:
                return await self._on_receipt(row, report, state, mined)
            if on_chain is not None:
                await self.store.transition_submission(
                    row.id, "abandoned", detail="epoch stored on chain by another transaction"
                )
                return on_chain
            await self.store.transition_submission(
                row.id, "failed", detail=f"nonce {latest.nonce} used by a transaction not ours"
            )
            raise PublishError(
                f"epoch {report.epoch}: nonce {latest.nonce} taken by another transaction"
            )
        now = time.monotonic()
        if state == "signed":
            await self._broadcast(latest.raw_tx, latest.tx_hash)
            await self.store.transition_submission(row.id, "broadcast", tx_hash=latest.tx_hash)
            log.info("tx_broadcast", submission_id=row.id, tx_hash=latest.tx_hash, resumed=True)
            return ("broadcast", now)
        if now - last_send >= self.policy.replace_after_s:
            await self._replace_or_resend(row, latest)
            return ("broadcast", now)
        if not await self._node_knows(latest.tx_hash):
            log.warning("tx_not_in_mempool_resending", submission_id=row.id, tx_hash=latest.tx_hash)
            await self._broadcast(latest.raw_tx, latest.tx_hash)
        return None

    async def _on_receipt(
        self, row: SubmissionRow, report: Report, state: str, mined: tuple[str, Any]
    ) -> Outcome | tuple[str, float] | None:
        tx_hash, receipt = mined
        receipt_json = _receipt_json(receipt)
        if state == "signed":
            await self.store.transition_submission(row.id, "broadcast", tx_hash=tx_hash)
            state = "broadcast"
        if receipt["status"] != 1:
            reverted = await self._revert_reason(tx_hash, receipt)
            await self.store.transition_submission(
                row.id, "reverted", detail=str(reverted), receipt=receipt_json, tx_hash=tx_hash
            )
            log.error("tx_reverted", submission_id=row.id, tx_hash=tx_hash, error=reverted.name)
            raise reverted
        if state != "mined":
            await self.store.transition_submission(
                row.id, "mined", receipt=receipt_json, tx_hash=tx_hash
            )
            log.info(
                "tx_mined", submission_id=row.id, tx_hash=tx_hash, block=receipt["blockNumber"]
            )
        head = await self.w3.eth.block_number
        if head - receipt["blockNumber"] + 1 < self.policy.confirmations:
            return ("mined", time.monotonic())
        await self.store.transition_submission(
            row.id, "confirmed", receipt=receipt_json, tx_hash=tx_hash
        )
        log.info("tx_confirmed", submission_id=row.id, epoch=report.epoch, tx_hash=tx_hash)
        return Outcome(
            epoch=report.epoch,
            status="confirmed",
            submission_id=row.id,
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    # -------------------------------------------------------------- chain helpers

    async def _on_chain_outcome(self, report: Report) -> Outcome | None:
        """``already_on_chain`` if the contract holds this exact report; refuses a rival block."""
        stored = await self.oracle.retarget(report.epoch)
        if stored is None:
            return None
        if stored.block_hash_hex != report.block_hash_hex:
            raise PublishError(
                f"epoch {report.epoch} is on chain with block {stored.block_hash_hex}, "
                f"not {report.block_hash_hex}; refusing to publish"
            )
        return Outcome(epoch=report.epoch, status="already_on_chain")

    async def _find_receipt(self, txs: Sequence[SubmissionTxRow]) -> tuple[str, Any] | None:
        for tx in reversed(txs):
            try:
                receipt = await self.w3.eth.get_transaction_receipt(tx.tx_hash)  # type: ignore[arg-type]
            except (TransactionNotFound, TimeExhausted):
                continue
            if receipt is not None and receipt.get("blockNumber") is not None:
                return tx.tx_hash, receipt
        return None

    async def _node_knows(self, tx_hash: str) -> bool:
        try:
            await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    async def _broadcast(self, raw: bytes, tx_hash: str) -> None:
        """Send raw bytes; "already known" and friends are fine, the poll loop sorts them out."""
        try:
            await self.w3.eth.send_raw_transaction(raw)
        except Web3RPCError as exc:
            message = str(exc).lower()
            benign = ("already known", "already imported", "nonce too low", "known transaction")
            if any(text in message for text in benign):
                log.info("broadcast_duplicate", tx_hash=tx_hash, reason=message[:120])
                return
            if "underpriced" in message:
                log.warning("broadcast_underpriced", tx_hash=tx_hash)
                return
            raise PublishError(f"node refused transaction {tx_hash}: {exc}") from exc

    async def _estimate_gas(self, calldata: bytes) -> int:
        try:
            estimate = await self.w3.eth.estimate_gas(
                {"from": self.sender.address, "to": self.oracle.address, "data": calldata}
            )
        except ContractLogicError as exc:
            raise decode_revert(str(exc.data)) from exc
        return int(estimate) * (100 + self.policy.gas_margin_percent) // 100

    async def _initial_fees(self) -> tuple[int, int]:
        """maxFee = min(cap, 2 x next base fee + tip): room for the base fee to double."""
        block = await self.w3.eth.get_block("pending")
        base_fee = int(block.get("baseFeePerGas") or 0)
        priority = self.policy.priority_fee_wei
        max_fee = min(self.policy.max_fee_wei, 2 * base_fee + priority)
        if base_fee + priority > self.policy.max_fee_wei:
            log.warning("base_fee_above_cap", base_fee=base_fee, cap=self.policy.max_fee_wei)
        return max(max_fee, priority), priority

    async def _sign_and_store(
        self,
        submission_id: int,
        stored_report: Mapping[str, Any],
        nonce: int,
        max_fee: int,
        priority: int,
    ) -> tuple[bytes, str]:
        """Sign the submit transaction and write it to the store; nothing is sent here."""
        report = Report.from_dict(stored_report)
        calldata = self.oracle.submit_calldata(
            report,
            bytes.fromhex(stored_report["signatures_hex"]),
            bytes.fromhex(stored_report["header_hex"]),
        )
        raw, tx_hash = self.sender.sign_transaction(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": self.oracle.address,
                "value": 0,
                "data": calldata,
                "gas": int(stored_report["gas"]),
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority,
            }
        )
        await self.store.add_submission_tx(
            submission_id,
            nonce=nonce,
            tx_hash=tx_hash,
            raw_tx=raw,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=priority,
        )
        log.info("tx_signed_and_stored", submission_id=submission_id, tx_hash=tx_hash, nonce=nonce,
                 max_fee_per_gas=max_fee, max_priority_fee_per_gas=priority)  # fmt: skip
        return raw, tx_hash

    async def _replace_or_resend(self, row: SubmissionRow, latest: SubmissionTxRow) -> None:
        """Not mined in time: same nonce, fees bumped (capped); at the cap, the same bytes again."""
        bump = 100 + self.policy.fee_bump_percent
        cap = self.policy.max_fee_wei
        block = await self.w3.eth.get_block("pending")
        base_fee = int(block.get("baseFeePerGas") or 0)
        priority = min(-(-latest.max_priority_fee_per_gas * bump // 100), cap)
        max_fee = min(max(-(-latest.max_fee_per_gas * bump // 100), 2 * base_fee + priority), cap)
        # Nodes accept a replacement only if both fees rise by >= 10%.
        if (
            max_fee * 10 < latest.max_fee_per_gas * 11
            or priority * 10 < latest.max_priority_fee_per_gas * 11
        ):
            log.warning(
                "fee_cap_reached_resending", submission_id=row.id, tx_hash=latest.tx_hash, cap=cap
            )
            await self._broadcast(latest.raw_tx, latest.tx_hash)
            return
        raw, tx_hash = await self._sign_and_store(
            row.id, row.report, latest.nonce, max_fee, priority
        )
        await self._broadcast(raw, tx_hash)
        await self.store.transition_submission(
            row.id, "broadcast", detail="fee bump", tx_hash=tx_hash
        )
        log.info(
            "tx_replaced",
            submission_id=row.id,
            old=latest.tx_hash,
            new=tx_hash,
            max_fee_per_gas=max_fee,
        )

    async def _revert_reason(self, tx_hash: str, receipt: Any) -> ContractReverted:
        """Decode why a mined transaction reverted: the node's trace, else a replay at its block."""
        try:
            trace = await self.w3.provider.make_request("debug_traceTransaction", [tx_hash, {}])
            result = trace.get("result") or {}
            data = result.get("returnValue")
            if result.get("failed") and isinstance(data, str) and data:
                return decode_revert(data if data.startswith("0x") else "0x" + data)
        except RPC_ERRORS:
            pass
        tx = await self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        try:
            await self.w3.eth.call(
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

    async def _step(self, name: str, submission_id: int) -> None:
        if self._hook is None:
            return
        result = self._hook(name, submission_id)
        if inspect.isawaitable(result):
            await result


def _receipt_json(receipt: Any) -> dict[str, Any]:
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
