"""The closed sets of states the oracle stores: retargets, submissions, disagreements.

``StrEnum`` members are the strings stored in the database (and compare equal
to them), so rows read back as plain text match the members; the tuples below
feed the tables' CHECK constraints and the partial unique indexes.
"""

from __future__ import annotations

from enum import StrEnum


class RetargetStatus(StrEnum):
    """Where a candidate retarget block stands (``retargets.status``)."""

    OBSERVED = "observed"  # some source served it; not agreed (yet)
    AGREED = "agreed"  # a quorum agreed and the oracle verified it
    PUBLISHED = "published"  # on chain, read back
    ORPHANED = "orphaned"  # left the best chain after being agreed or published


class SubmissionState(StrEnum):
    """The transaction manager's durable state of one submission (``submissions.state``)."""

    SIGNED = "signed"  # stored with its signed raw transaction, not sent yet
    BROADCAST = "broadcast"  # sent to the node, no receipt yet
    MINED = "mined"  # in a block, waiting for confirmations
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    FAILED = "failed"  # e.g. its nonce was taken by a transaction not ours
    ABANDONED = "abandoned"  # could not be resumed, or the epoch landed by another tx


class DisagreementKind(StrEnum):
    """What a stored disagreement is about (``disagreements.kind``)."""

    FIELD = "field"  # sources disagree on a field of a retarget
    CONFLICTING_ATTESTATION = "conflicting_attestation"  # a signer signed two reports


RETARGET_STATUSES = tuple(RetargetStatus)
#: Statuses of which a network+epoch may hold at most one row.
FINAL_RETARGET_STATUSES = (RetargetStatus.AGREED, RetargetStatus.PUBLISHED)
SUBMISSION_STATES = tuple(SubmissionState)
#: States the transaction manager still has to drive.
LIVE_SUBMISSION_STATES = (SubmissionState.SIGNED, SubmissionState.BROADCAST, SubmissionState.MINED)
#: States of which a contract+epoch+block may hold at most one submission: live ones plus a
#: confirmed one, so a block is never published twice to the same contract (a replacement
#: after a reorg carries another block; two live submissions of one epoch are refused too).
EXCLUSIVE_SUBMISSION_STATES = (*LIVE_SUBMISSION_STATES, SubmissionState.CONFIRMED)
TERMINAL_SUBMISSION_STATES = (
    SubmissionState.CONFIRMED,
    SubmissionState.REVERTED,
    SubmissionState.FAILED,
    SubmissionState.ABANDONED,
)
DISAGREEMENT_KINDS = tuple(DisagreementKind)
