"""The transaction manager: land each signed report on chain exactly once, whatever happens.

Where it sits: ``publisher.py`` hands it a signed report, its chain-bound proof
(the raw headers at 2016e-1 and 2016e) and the contract function (``submit``, or
``replace`` for the correction path after a reorg); it owns the EVM side from
there. The rules (DESIGN.md "Publication rules", STYLE.md section 9):

* The submission (report, signatures, proof, function), its nonce and its
  signed raw transaction are written to the store BEFORE the first byte goes to
  the node, so a crash at any point leaves enough on disk to finish the job or
  prove it finished, and a fee bump after a restart rebuilds the same calldata.
  One submission per (contract, epoch, block): a replacement is another block.
* Fees are EIP-1559, capped at ``max_fee_gwei``. A transaction not mined within
  ``replace_after_s`` is replaced (same nonce) with fees bumped by
  ``fee_bump_percent``; at the cap it is re-sent unchanged.
* A transaction the node no longer knows (dropped from the mempool, node
  restarted) is re-sent as the same raw bytes; connection errors while the node
  is down are waited out until ``receipt_timeout_s``.
* A receipt counts after ``receipt_confirmations`` blocks; a reverted
  transaction is decoded to its custom error, recorded, and raised. Nonce gaps,
  another sender on the key (``nonces``) and confirmed publications dropped by an
  EVM reorg (``reorgs``) are handled by helpers it owns.
* ``reconcile()`` on start: for every live submission, the contract's state is
  checked first (the block already stored for its epoch -> done), then the
  stored transactions (mined? pending? lost -> re-send the same bytes; nonce
  taken by something else -> failed), so a block is never submitted twice.
* Simulations and gas estimates run on the "pending" block: the contract checks
  header times against ``block.timestamp``, which is the next block's.

The node calls (send, receipts, revert decoding) are ``evmnode``'s, the fee
arithmetic ``fees``'s; this module decides what to do with their answers.

The store is any ``ports.SubmissionStore`` (the real one is
``oracle.store.Repository``); states: signed -> broadcast -> mined -> confirmed,
or reverted / failed / abandoned. An optional ``ports.StepObserver`` is told when
``submit`` passes "created", "signed" and "broadcast" (the crash tests stop it
there); production passes none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle.errors import PublishError, TxNotConfirmed
from oracle.publish.contract import OracleContract, revert_from_exception
from oracle.publish.evmnode import (
    TRANSIENT_ERRORS,
    find_receipt,
    node_knows,
    pending_base_fee,
    receipt_json,
    revert_reason,
    send_raw,
)
from oracle.publish.fees import FeePolicy
from oracle.publish.nonces import NonceKeeper
from oracle.publish.ports import Step, StepObserver, SubmissionRow, SubmissionStore, SubmissionTxRow
from oracle.publish.reorgs import ReorgWatch
from oracle.publish.signing import KeystoreAccount, Report, ReportSignature, pack_signatures
from oracle.store.states import SubmissionState

log = structlog.get_logger(__name__)

# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one epoch ended up on chain."""

    epoch: int
    #: "confirmed" (our transaction), "already_on_chain" (stored before or by another
    #: sender), "before_genesis" (the contract starts later: nothing to publish)
    status: Literal["confirmed", "already_on_chain", "before_genesis"]
    submission_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    gas_used: int | None = None
    #: the contract function that stored (or would have stored) it
    function: str = "submit"


def _function(row: SubmissionRow) -> str:
    return str(row.report.get("function", "submit"))


def _is_live(row: SubmissionRow | None) -> bool:
    return row is not None and row.state in (
        SubmissionState.SIGNED,
        SubmissionState.BROADCAST,
        SubmissionState.MINED,
    )


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
        observer: StepObserver | None = None,
    ) -> None:
        self.w3 = w3
        self.oracle = oracle
        self.store = store
        self.sender = sender
        self.chain_id = chain_id
        self.policy = policy
        self._observer = observer
        self._contract_key = oracle.address.lower()
        # issue 12 item 7: nonce gaps and conflicts, re-sends after an EVM reorg
        self.nonces = NonceKeeper(self)
        self.reorgs = ReorgWatch(self)

    # -------------------------------------------------------------- public API

    async def submit(
        self,
        report: Report,
        signatures: Sequence[ReportSignature],
        proof: bytes,
        *,
        function: str = "submit",
    ) -> Outcome:
        """Land ``report`` (signed by ``signatures``, backed by the 160-byte ``proof``)
        exactly once through ``function`` ("submit", or "replace" for a reorg correction).

        Finishes any other live submission first (nonces are serial), returns at once if
        the contract holds this block for the epoch, resumes a live submission of the same
        block, else simulates, stores, signs, broadcasts and drives a new one. Raises
        ``ContractReverted`` for a refusal, ``TxNotConfirmed`` on timeout (the
        submission stays live for ``reconcile``).
        """
        bound = log.bind(epoch=report.epoch, contract=self.oracle.address, function=function)
        key = (report.epoch, report.block_hash_hex)
        for other in await self.store.live_submissions(self.chain_id, self._contract_key):
            if (other.epoch, other.block_hash_hex) != key:
                await self._drive(other)
        existing = await self.store.submission_for_epoch(
            self.chain_id, self._contract_key, report.epoch, report.block_hash_hex
        )
        if existing is not None and _is_live(existing):
            return await self._drive(existing)
        on_chain = await self._on_chain_outcome(report.epoch, report.block_hash_hex, function)
        if on_chain is not None:
            bound.info("epoch_already_on_chain")
            return on_chain
        if existing is not None and existing.state == SubmissionState.CONFIRMED:
            raise PublishError(
                f"epoch {report.epoch}: the store says submission {existing.id} of block "
                f"{report.block_hash_hex} confirmed, but the contract does not hold it "
                "(wrong chain or contract, or the block was replaced since)"
            )
        packed = pack_signatures(signatures)
        await self.oracle.simulate_submit(
            report, packed, proof, sender=self.sender.address, function=function
        )
        calldata = self.oracle.submit_calldata(report, packed, proof, function=function)
        gas = await self._estimate_gas(calldata)
        stored_report = {
            **report.as_dict(),
            "function": function,
            "signatures_hex": packed.hex(),
            "proof_hex": proof.hex(),
            "gas": gas,
        }
        submission_id = await self.store.create_submission(
            self.chain_id,
            self._contract_key,
            report.epoch,
            [s.signer for s in sorted(signatures, key=lambda s: int(s.signer, 16))],
            stored_report,
            block_hash_hex=report.block_hash_hex,
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
        await self.store.transition_submission(
            submission_id, SubmissionState.BROADCAST, tx_hash=tx_hash
        )
        bound.info("tx_broadcast", submission_id=submission_id, tx_hash=tx_hash, nonce=nonce)
        await self._step("broadcast", submission_id)
        row = await self.store.get_submission(submission_id)
        assert row is not None  # we just created it
        return await self._drive(row)

    async def settle(self, epoch: int, block_hash_hex: str) -> Outcome:
        """The contract holds ``block_hash_hex`` for ``epoch``: finish a live submission of
        that block, if any (its receipt names the transaction), else ``already_on_chain``."""
        existing = await self.store.submission_for_epoch(
            self.chain_id, self._contract_key, epoch, block_hash_hex
        )
        if existing is not None and _is_live(existing):
            return await self._drive(existing)
        return Outcome(epoch=epoch, status="already_on_chain")

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
        mined = await find_receipt(self.w3, [tx.tx_hash for tx in txs])
        if mined is not None:
            return await self._on_receipt(row, report, state, mined)
        on_chain = await self._on_chain_outcome(report.epoch, report.block_hash_hex, _function(row))
        if not txs:
            # Crashed after creating the submission, before any transaction was stored.
            detail = "no transaction was stored before the restart"
            if on_chain is not None:
                detail = "epoch stored on chain by another transaction"
            await self.store.transition_submission(row.id, SubmissionState.ABANDONED, detail=detail)
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
            mined = await find_receipt(self.w3, [tx.tx_hash for tx in txs])
            if mined is not None:
                return await self._on_receipt(row, report, state, mined)
            if on_chain is not None:
                await self.store.transition_submission(
                    row.id,
                    SubmissionState.ABANDONED,
                    detail="epoch stored on chain by another transaction",
                )
                return on_chain
            await self.store.transition_submission(
                row.id,
                SubmissionState.FAILED,
                detail=f"nonce {latest.nonce} used by a transaction not ours",
            )
            await self.nonces.conflict(  # issue 12 item 7
                f"nonce {latest.nonce} was used by a transaction not ours",
                nonce=latest.nonce, epoch=report.epoch, submission_id=row.id,
            )  # fmt: skip
            raise PublishError(
                f"epoch {report.epoch}: nonce {latest.nonce} taken by another transaction"
            )
        if chain_nonce < latest.nonce:  # issue 12 item 7: lower nonces missing -> fill them
            await self.nonces.fill_gap(row.id, latest.nonce, chain_nonce)
        now = time.monotonic()
        if state == SubmissionState.SIGNED:
            await self._broadcast(latest.raw_tx, latest.tx_hash)
            await self.store.transition_submission(
                row.id, SubmissionState.BROADCAST, tx_hash=latest.tx_hash
            )
            log.info("tx_broadcast", submission_id=row.id, tx_hash=latest.tx_hash, resumed=True)
            return (SubmissionState.BROADCAST, now)
        if now - last_send >= self.policy.replace_after_s:
            await self._replace_or_resend(row, latest)
            return (SubmissionState.BROADCAST, now)
        if not await node_knows(self.w3, latest.tx_hash):
            log.warning("tx_not_in_mempool_resending", submission_id=row.id, tx_hash=latest.tx_hash)
            await self._broadcast(latest.raw_tx, latest.tx_hash)
        return None

    async def _on_receipt(
        self, row: SubmissionRow, report: Report, state: str, mined: tuple[str, Any]
    ) -> Outcome | tuple[str, float] | None:
        tx_hash, receipt = mined
        stored_receipt = receipt_json(receipt)
        if state == SubmissionState.SIGNED:
            await self.store.transition_submission(
                row.id, SubmissionState.BROADCAST, tx_hash=tx_hash
            )
            state = SubmissionState.BROADCAST
        if receipt["status"] != 1:
            reverted = await revert_reason(self.w3, tx_hash, receipt)
            await self.store.transition_submission(
                row.id,
                SubmissionState.REVERTED,
                detail=str(reverted),
                receipt=stored_receipt,
                tx_hash=tx_hash,
            )
            log.error("tx_reverted", submission_id=row.id, tx_hash=tx_hash, error=reverted.name)
            raise reverted
        if state != SubmissionState.MINED:
            await self.store.transition_submission(
                row.id, SubmissionState.MINED, receipt=stored_receipt, tx_hash=tx_hash
            )
            log.info(
                "tx_mined", submission_id=row.id, tx_hash=tx_hash, block=receipt["blockNumber"]
            )
        head = await self.w3.eth.block_number
        if head - receipt["blockNumber"] + 1 < self.policy.confirmations:
            return (SubmissionState.MINED, time.monotonic())
        await self.store.transition_submission(
            row.id, SubmissionState.CONFIRMED, receipt=stored_receipt, tx_hash=tx_hash
        )
        log.info("tx_confirmed", submission_id=row.id, epoch=report.epoch, tx_hash=tx_hash)
        return Outcome(
            epoch=report.epoch,
            status="confirmed",
            submission_id=row.id,
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            function=_function(row),
        )

    # -------------------------------------------------------------- chain helpers

    async def _on_chain_outcome(
        self, epoch: int, block_hash_hex: str, function: str
    ) -> Outcome | None:
        """``already_on_chain`` if the contract holds this block for ``epoch``. Another block
        is what a ``replace`` replaces; for a ``submit`` it is a rival, refused."""
        stored = await self.oracle.retarget(epoch)
        if stored is None:
            return None
        if stored.block_hash_hex == block_hash_hex:
            return Outcome(epoch=epoch, status="already_on_chain", function=function)
        if function == "replace":
            return None
        raise PublishError(
            f"epoch {epoch} is on chain with block {stored.block_hash_hex}, "
            f"not {block_hash_hex}; refusing to publish"
        )

    async def _broadcast(self, raw: bytes, tx_hash: str) -> None:
        """Send raw bytes; "already known" and friends are fine, the poll loop sorts them out."""
        sent, reason = await send_raw(self.w3, raw, tx_hash)
        await self.nonces.on_broadcast(sent, reason, tx_hash)  # issue 12 item 7
        if sent == "duplicate":
            log.info("broadcast_duplicate", tx_hash=tx_hash, reason=reason)
        elif sent == "underpriced":
            log.warning("broadcast_underpriced", tx_hash=tx_hash)

    async def _estimate_gas(self, calldata: bytes) -> int:
        """On the pending block, as the simulation (the header-time rule reads its time)."""
        try:
            estimate = await self.w3.eth.estimate_gas(
                {"from": self.sender.address, "to": self.oracle.address, "data": calldata},
                "pending",
            )
        except (ContractLogicError, Web3RPCError) as exc:
            reverted = revert_from_exception(exc)
            if reverted is None:
                raise PublishError(f"gas estimate failed: {exc}") from exc
            raise reverted from exc
        return self.policy.gas_limit(int(estimate))

    async def _initial_fees(self) -> tuple[int, int]:
        """maxFee = min(cap, 2 x next base fee + tip): room for the base fee to double."""
        base_fee = await pending_base_fee(self.w3)
        if self.policy.above_cap(base_fee):
            log.warning("base_fee_above_cap", base_fee=base_fee, cap=self.policy.max_fee_wei)
        return self.policy.initial_fees(base_fee)

    async def _sign_and_store(
        self,
        submission_id: int,
        stored_report: Mapping[str, Any],
        nonce: int,
        max_fee: int,
        priority: int,
    ) -> tuple[bytes, str]:
        """Sign the submit (or replace) transaction from the stored report, signatures and
        proof, and write it to the store; nothing is sent here."""
        report = Report.from_dict(stored_report)
        if "proof_hex" not in stored_report:
            raise PublishError(
                f"epoch {report.epoch}: the stored submission has no proof (written before "
                "contract v2); it cannot be re-signed"
            )
        calldata = self.oracle.submit_calldata(
            report,
            bytes.fromhex(stored_report["signatures_hex"]),
            bytes.fromhex(stored_report["proof_hex"]),
            function=str(stored_report.get("function", "submit")),
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
        fees = self.policy.replacement_fees(
            latest.max_fee_per_gas,
            latest.max_priority_fee_per_gas,
            await pending_base_fee(self.w3),
        )
        if fees is None:
            log.warning(
                "fee_cap_reached_resending",
                submission_id=row.id,
                tx_hash=latest.tx_hash,
                cap=self.policy.max_fee_wei,
            )
            await self._broadcast(latest.raw_tx, latest.tx_hash)
            return
        max_fee, priority = fees
        raw, tx_hash = await self._sign_and_store(
            row.id, row.report, latest.nonce, max_fee, priority
        )
        await self._broadcast(raw, tx_hash)
        await self.store.transition_submission(
            row.id, SubmissionState.BROADCAST, detail="fee bump", tx_hash=tx_hash
        )
        log.info(
            "tx_replaced",
            submission_id=row.id,
            old=latest.tx_hash,
            new=tx_hash,
            max_fee_per_gas=max_fee,
        )

    async def _step(self, step: Step, submission_id: int) -> None:
        if self._observer is not None:
            await self._observer.on_step(step, submission_id)
