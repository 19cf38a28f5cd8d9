"""The interfaces the transaction manager depends on: its store and its step observer.

Where it sits: ``txmanager.TxManager`` is written against these protocols, not against
``oracle.store``; the real store is ``oracle.store.Repository`` (its records are
``oracle.store.records.SubmissionRecord`` / ``SubmissionTxRecord``), tests may pass
anything with the same methods. Keeping them here lets the store and the manager be
read (and type-checked) without each other.

Submission states: signed -> broadcast -> mined -> confirmed, or reverted / failed /
abandoned; ``signed``, ``broadcast`` and ``mined`` are live (``reconcile`` resumes them).
A submission is one (contract, epoch, block): the stored report says whether it goes
through ``submit`` or, after a reorg, ``replace``, and carries the chain-bound proof.

``StepObserver`` is the manager's one extension point: it is told when a submission
reaches ``created`` (stored, no transaction yet), ``signed`` (transaction stored, not
yet sent) and ``broadcast`` (sent, no receipt yet). Production passes none; the crash
tests pass observers that raise there (``tests/fixtures/crashhooks.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

#: The points of ``TxManager.submit`` a ``StepObserver`` is told about, in order.
Step = Literal["created", "signed", "broadcast"]


class SubmissionRow(Protocol):
    """What the manager reads of a stored submission (``SubmissionRecord``)."""

    @property
    def id(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def block_hash_hex(self) -> str: ...
    @property
    def report(self) -> dict[str, Any]: ...
    @property
    def state(self) -> str: ...


class SubmissionTxRow(Protocol):
    """One stored signed attempt (``SubmissionTxRecord``)."""

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
        *,
        block_hash_hex: str | None = None,
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
    ) -> object: ...

    async def get_submission(self, submission_id: int) -> SubmissionRow | None: ...

    async def live_submissions(
        self, chain_id: int, contract_address: str
    ) -> Sequence[SubmissionRow]: ...

    async def submission_for_epoch(
        self,
        chain_id: int,
        contract_address: str,
        epoch: int,
        block_hash_hex: str | None = None,
    ) -> SubmissionRow | None: ...

    async def submission_txs(self, submission_id: int) -> Sequence[SubmissionTxRow]: ...


class StepObserver(Protocol):
    """Told when ``TxManager.submit`` passes a step; whatever it raises propagates."""

    async def on_step(self, step: Step, submission_id: int) -> None: ...
