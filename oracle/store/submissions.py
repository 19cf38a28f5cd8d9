"""Repository section: durable state of the on-chain transaction manager.

Store stage of DESIGN.md ("store nonce and tx hash before sending"). A
submission is one report for one contract, epoch and block (``submit``, or
``replace`` after a reorg: the stored report says which); each signed attempt
is a ``submission_txs`` row written *before* broadcast; every state change is a
``submission_events`` row. Two partial unique indexes allow at most one live
submission per (chain, contract, epoch) and at most one live or confirmed one per
(chain, contract, epoch, block), so a block is never published twice and an
epoch never has two transactions in flight, across crashes and restarts.

States: signed -> broadcast -> mined -> confirmed (terminal, success; only
``reopen_submission`` moves it back to broadcast, when an EVM reorg dropped its
transaction); reverted / failed / abandoned are terminal failures after which a
new submission for the epoch may be created. Retried writes recognise themselves
by a token chosen before the first attempt, so nothing is recorded twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.errors import InputError, StoreConflict
from oracle.store import validate
from oracle.store._sql import RepositoryBase, insert_for, jsonable
from oracle.store.models import Submission, SubmissionEvent, SubmissionTx
from oracle.store.records import SubmissionEventRecord, SubmissionRecord, SubmissionTxRecord
from oracle.store.states import (
    EXCLUSIVE_SUBMISSION_STATES,
    LIVE_SUBMISSION_STATES,
    SUBMISSION_STATES,
    TERMINAL_SUBMISSION_STATES,
    SubmissionState,
)
from oracle.store.types import UINT256_MAX, utcnow

#: Allowed transitions; a live state may repeat (e.g. broadcast of a replacement tx).
TRANSITIONS: dict[str, frozenset[str]] = {
    SubmissionState.SIGNED: frozenset(
        {
            SubmissionState.SIGNED,
            SubmissionState.BROADCAST,
            SubmissionState.FAILED,
            SubmissionState.ABANDONED,
        }
    ),
    SubmissionState.BROADCAST: frozenset(
        {
            SubmissionState.BROADCAST,
            SubmissionState.MINED,
            SubmissionState.REVERTED,
            SubmissionState.FAILED,
            SubmissionState.ABANDONED,
        }
    ),
    SubmissionState.MINED: frozenset(
        {
            SubmissionState.MINED,
            SubmissionState.BROADCAST,
            SubmissionState.CONFIRMED,
            SubmissionState.REVERTED,
            SubmissionState.FAILED,
            SubmissionState.ABANDONED,
        }
    ),
}


def _record(row: Submission) -> SubmissionRecord:
    return SubmissionRecord(
        row.id,
        row.chain_id,
        row.contract_address,
        row.epoch,
        tuple(row.signers),
        row.report,
        SubmissionState(row.state),
        row.created_at,
        row.updated_at,
        row.block_hash_hex,
    )


def _tx_record(row: SubmissionTx) -> SubmissionTxRecord:
    return SubmissionTxRecord(
        row.id,
        row.submission_id,
        row.nonce,
        row.tx_hash,
        row.raw_tx,
        row.max_fee_per_gas,
        row.max_priority_fee_per_gas,
        row.created_at,
        row.sent_at,
        row.receipt,
        row.gas_used,
    )


def _wei(value: Any, what: str) -> int:
    return validate.non_negative_int(value, what, maximum=UINT256_MAX)


async def _locked(session: AsyncSession, submission_id: int) -> Submission:
    row = (await session.scalars(
        select(Submission).where(Submission.id == submission_id).with_for_update()
    )).first()  # fmt: skip
    if row is None:
        raise StoreConflict(f"no submission with id {submission_id}")
    return row


class SubmissionsMixin(RepositoryBase):
    """Submissions, their transactions and their state transitions."""

    async def create_submission(
        self,
        chain_id: int,
        contract_address: str,
        epoch: int,
        signers: Sequence[str],
        report: Mapping[str, Any],
        *,
        block_hash_hex: str | None = None,
    ) -> int:
        """Create a submission in state ``signed``; returns its id.

        The block is ``block_hash_hex``, by default the report's. StoreConflict when a live
        submission for this contract and epoch, or a confirmed one for this block, exists.
        """
        chain = validate.non_negative_int(chain_id, "chain_id")
        address = validate.address(contract_address, "contract_address")
        epoch = validate.epoch(epoch)
        signer_list = [validate.address(s, "signer") for s in signers]
        if not signer_list:
            raise InputError("a submission needs at least one signer")
        report_json = jsonable(dict(report), "report")
        block_hash = validate.block_hash_hex(block_hash_hex or report_json.get("block_hash_hex"))
        token = uuid.uuid4().hex

        async def write(session: AsyncSession) -> int:
            now = utcnow()
            # No conflict target: either partial unique index (or the token) may refuse it.
            stmt = insert_for(session, Submission).on_conflict_do_nothing().returning(Submission.id)
            new_id = (await session.execute(stmt, {
                "chain_id": chain, "contract_address": address, "epoch": epoch,
                "block_hash_hex": block_hash, "signers": signer_list, "report": report_json,
                "state": SubmissionState.SIGNED, "client_token": token, "created_at": now,
                "updated_at": now,
            })).scalar()  # fmt: skip
            if new_id is None:
                existing = (await session.scalars(select(Submission).where(
                    Submission.chain_id == chain, Submission.contract_address == address,
                    Submission.epoch == epoch, or_(
                        Submission.state.in_(LIVE_SUBMISSION_STATES),
                        (Submission.block_hash_hex == block_hash)
                        & Submission.state.in_(EXCLUSIVE_SUBMISSION_STATES),
                    ),
                ).order_by(Submission.id))).first()  # fmt: skip
                if existing is None:  # pragma: no cover - a client_token collision
                    raise StoreConflict(f"submission token {token} already used")
                if existing.client_token == token:  # our own earlier attempt did commit
                    return existing.id
                raise StoreConflict(
                    f"submission {existing.id} ({existing.state}, block "
                    f"{existing.block_hash_hex}) already exists for chain {chain} "
                    f"contract {address} epoch {epoch}"
                )
            session.add(
                SubmissionEvent(
                    submission_id=new_id,
                    from_state=None,
                    to_state=SubmissionState.SIGNED,
                    at=now,
                    token=token,
                )
            )
            return int(new_id)

        return await self._tx("create_submission", write)

    async def add_submission_tx(
        self,
        submission_id: int,
        *,
        nonce: int,
        tx_hash: str,
        raw_tx: bytes,
        max_fee_per_gas: int,
        max_priority_fee_per_gas: int,
    ) -> int:
        """Store a signed attempt before it is broadcast; idempotent per tx hash. Returns its id."""
        sid = validate.non_negative_int(submission_id, "submission_id")
        max_fee = _wei(max_fee_per_gas, "max_fee_per_gas")
        priority_fee = _wei(max_priority_fee_per_gas, "max_priority_fee_per_gas")
        if priority_fee > max_fee:
            raise InputError("max_priority_fee_per_gas should not exceed max_fee_per_gas")
        if not isinstance(raw_tx, (bytes, bytearray)) or not raw_tx:
            raise InputError(f"raw_tx should be non-empty bytes, got {raw_tx!r:.60}")
        values: dict[str, object] = {
            "submission_id": sid,
            "nonce": validate.non_negative_int(nonce, "nonce", maximum=2**63 - 1),
            "tx_hash": validate.tx_hash(tx_hash),
            "raw_tx": bytes(raw_tx),
            "max_fee_per_gas": max_fee,
            "max_priority_fee_per_gas": priority_fee,
        }

        async def write(session: AsyncSession) -> int:
            submission = await _locked(session, sid)
            existing = (await session.scalars(select(SubmissionTx).where(
                SubmissionTx.tx_hash == values["tx_hash"]))).first()  # fmt: skip
            if existing is not None:
                same = all(getattr(existing, k) == v for k, v in values.items())
                if not same:
                    raise StoreConflict(
                        f"tx {values['tx_hash']} is already stored with other "
                        f"fields (submission {existing.submission_id})"
                    )
                return existing.id
            if submission.state not in LIVE_SUBMISSION_STATES:
                raise StoreConflict(
                    f"submission {submission.id} is {submission.state}; no new transactions"
                )
            row = SubmissionTx(**values, created_at=utcnow())
            session.add(row)
            await session.flush()
            return row.id

        return await self._tx("add_submission_tx", write)

    async def transition_submission(
        self,
        submission_id: int,
        state: str,
        detail: str | None = None,
        receipt: Mapping[str, Any] | None = None,
        tx_hash: str | None = None,
    ) -> SubmissionRecord:
        """Move a submission to ``state`` and record the event.

        ``tx_hash`` names the attempt concerned: moving to ``broadcast`` stamps its
        ``sent_at``; a ``receipt`` is stored on it with its ``gasUsed``. Repeating a
        terminal state is a no-op; leaving a terminal state or an illegal transition
        is a StoreConflict.
        """
        if state not in SUBMISSION_STATES:
            raise InputError(
                f"state should be one of {', '.join(SUBMISSION_STATES)}, got {state!r}"
            )
        tx = validate.tx_hash(tx_hash) if tx_hash is not None else None
        receipt_json = jsonable(dict(receipt), "receipt") if receipt is not None else None
        if receipt_json is not None and tx is None:
            tx = validate.tx_hash(receipt_json.get("transactionHash"))
        token = uuid.uuid4().hex

        async def write(session: AsyncSession) -> SubmissionRecord:
            row = await _locked(session, submission_id)
            if (await session.scalars(select(SubmissionEvent.id).where(
                    SubmissionEvent.token == token))).first() is not None:  # fmt: skip
                return _record(row)  # this very transition already committed
            if row.state in TERMINAL_SUBMISSION_STATES:
                if row.state == state:
                    return _record(row)
                raise StoreConflict(
                    f"submission {row.id} is {row.state} (terminal); cannot move to {state}"
                )
            if state not in TRANSITIONS[row.state]:
                raise StoreConflict(
                    f"submission {row.id}: illegal transition {row.state} -> {state}"
                )
            now = utcnow()
            if tx is not None:
                await _update_tx(session, row.id, tx, state, receipt_json, now)
            session.add(
                SubmissionEvent(
                    submission_id=row.id,
                    from_state=row.state,
                    to_state=state,
                    tx_hash=tx,
                    detail=detail,
                    at=now,
                    token=token,
                )
            )
            row.state, row.updated_at = state, now
            return _record(row)

        return await self._tx("transition_submission", write)

    async def reopen_submission(self, submission_id: int, detail: str) -> SubmissionRecord:
        """Move a ``confirmed`` submission back to ``broadcast``: an EVM reorg dropped its
        transaction (``oracle.publish.reorgs``), so the manager drives it again. The one
        way out of a terminal state; StoreConflict unless it is confirmed (or another live
        submission of its epoch exists)."""
        token = uuid.uuid4().hex

        async def write(session: AsyncSession) -> SubmissionRecord:
            row = await _locked(session, submission_id)
            if (await session.scalars(select(SubmissionEvent.id).where(
                    SubmissionEvent.token == token))).first() is not None:  # fmt: skip
                return _record(row)
            if row.state != SubmissionState.CONFIRMED:
                raise StoreConflict(f"submission {row.id} is {row.state}, not confirmed")
            now = utcnow()
            session.add(SubmissionEvent(
                submission_id=row.id, from_state=row.state, to_state=SubmissionState.BROADCAST,
                detail=detail, at=now, token=token,
            ))  # fmt: skip
            row.state, row.updated_at = SubmissionState.BROADCAST, now
            return _record(row)

        return await self._tx("reopen_submission", write)

    async def recent_confirmed_submissions(
        self, chain_id: int, contract_address: str, limit: int = 8
    ) -> list[SubmissionRecord]:
        """The ``limit`` most recently confirmed submissions to a contract, newest first."""
        address = validate.address(contract_address, "contract_address")

        async def read(session: AsyncSession) -> list[SubmissionRecord]:
            query = select(Submission).where(
                Submission.chain_id == chain_id, Submission.contract_address == address,
                Submission.state == SubmissionState.CONFIRMED,
            )  # fmt: skip
            newest = query.order_by(Submission.updated_at.desc(), Submission.id.desc())
            rows = (await session.scalars(newest.limit(limit))).all()
            return [_record(r) for r in rows]

        return await self._read1("recent_confirmed_submissions", read)

    async def get_submission(self, submission_id: int) -> SubmissionRecord | None:
        async def read(session: AsyncSession) -> SubmissionRecord | None:
            row = await session.get(Submission, submission_id)
            return _record(row) if row else None

        return await self._read1("get_submission", read)

    async def live_submissions(
        self, chain_id: int, contract_address: str
    ) -> list[SubmissionRecord]:
        """Submissions still to be driven (signed, broadcast, mined), by epoch."""
        address = validate.address(contract_address, "contract_address")

        async def read(session: AsyncSession) -> list[SubmissionRecord]:
            rows = (await session.scalars(select(Submission).where(
                Submission.chain_id == chain_id, Submission.contract_address == address,
                Submission.state.in_(LIVE_SUBMISSION_STATES),
            ).order_by(Submission.epoch, Submission.id))).all()  # fmt: skip
            return [_record(r) for r in rows]

        return await self._read1("live_submissions", read)

    async def submission_for_epoch(
        self,
        chain_id: int,
        contract_address: str,
        epoch: int,
        block_hash_hex: str | None = None,
    ) -> SubmissionRecord | None:
        """The epoch's live submission, else its newest confirmed one, else its newest failed
        one, else None; only those of ``block_hash_hex`` when it is given."""
        address = validate.address(contract_address, "contract_address")
        epoch = validate.epoch(epoch)
        block = validate.block_hash_hex(block_hash_hex) if block_hash_hex else None

        async def read(session: AsyncSession) -> SubmissionRecord | None:
            query = select(Submission).where(
                Submission.chain_id == chain_id, Submission.contract_address == address,
                Submission.epoch == epoch,
            )  # fmt: skip
            if block is not None:
                query = query.where(Submission.block_hash_hex == block)
            rows = (await session.scalars(query.order_by(Submission.id.desc()))).all()
            live = [r for r in rows if r.state in LIVE_SUBMISSION_STATES]
            exclusive = [r for r in rows if r.state in EXCLUSIVE_SUBMISSION_STATES]
            chosen = live or exclusive or rows
            return _record(chosen[0]) if chosen else None

        return await self._read1("submission_for_epoch", read)

    async def submission_txs(self, submission_id: int) -> list[SubmissionTxRecord]:
        """Every stored attempt of a submission, oldest first."""

        async def read(session: AsyncSession) -> list[SubmissionTxRecord]:
            query = select(SubmissionTx).where(SubmissionTx.submission_id == submission_id)
            rows = (await session.scalars(query.order_by(SubmissionTx.id))).all()
            return [_tx_record(r) for r in rows]

        return await self._read1("submission_txs", read)

    async def submission_events(self, submission_id: int) -> list[SubmissionEventRecord]:
        """Every state transition of a submission, oldest first."""

        async def read(session: AsyncSession) -> list[SubmissionEventRecord]:
            query = select(SubmissionEvent).where(SubmissionEvent.submission_id == submission_id)
            rows = (await session.scalars(query.order_by(SubmissionEvent.id))).all()
            return [
                SubmissionEventRecord(
                    r.submission_id,
                    None if r.from_state is None else SubmissionState(r.from_state),
                    SubmissionState(r.to_state),
                    r.tx_hash,
                    r.detail,
                    r.at,
                )
                for r in rows
            ]

        return await self._read1("submission_events", read)


async def _update_tx(
    session: AsyncSession,
    submission_id: int,
    tx_hash: str,
    state: str,
    receipt: dict[str, Any] | None,
    now: Any,
) -> None:
    row = (await session.scalars(select(SubmissionTx).where(
        SubmissionTx.submission_id == submission_id, SubmissionTx.tx_hash == tx_hash,
    ))).first()  # fmt: skip
    if row is None:
        raise StoreConflict(
            f"submission {submission_id} has no stored tx {tx_hash}; "
            "store it with add_submission_tx before broadcasting"
        )
    if state == SubmissionState.BROADCAST and row.sent_at is None:
        row.sent_at = now
    if receipt is not None:
        row.receipt = receipt
        gas = receipt.get("gasUsed")
        if gas is not None:
            row.gas_used = _wei(int(gas, 0) if isinstance(gas, str) else gas, "receipt.gasUsed")
