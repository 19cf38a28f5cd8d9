"""A confirmed publication that an EVM reorg dropped is sent again.

Where it sits: the ``TxManager`` owns one ``ReorgWatch`` (``manager.reorgs``) and this
module drives a reopened submission with the manager's own steps (``_drive``,
``_sign_and_store``, ``_broadcast``); the service runs ``recheck`` as a scheduled job
under its pass lock (a few lines in ``oracle.service`` marked "issue 12 item 7").

A submission is ``confirmed`` after ``receipt_confirmations`` blocks (3 on public
chains by default, ``fees.default_confirmations``), but a deeper reorg can still drop
its transaction. So each recheck looks at the ``RECENT`` most recently confirmed
submissions whose receipt block is not final yet: at or above the chain's
``finalized`` block where the node knows that tag, else within ``WATCH_BLOCKS`` of the
head. For each:

* one of its transactions still has a receipt (possibly in another block after the
  reorg): nothing to do;
* none has, and the contract holds its block for the epoch (another operator's
  transaction stored it on the new branch): nothing to do;
* none has, and the contract holds nothing for the epoch: the publication was dropped.
  Logged and alerted (``PUBLICATION_REORGED``, warning), the submission is moved back
  to ``broadcast`` (``Repository.reopen_submission``) and driven again as any live
  one: the same signed bytes are re-sent (a node usually puts a reorged transaction
  back into its mempool anyway; then it is simply mined again), or, when its nonce was
  used meanwhile, the stored report is signed again at the next nonce.
* none has, and the contract holds *another* block for the epoch: not ours to fix
  here (the monitor's read-back alerts on it); logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import structlog

from oracle.errors import OracleError
from oracle.publish.evmnode import RPC_ERRORS, find_receipt
from oracle.publish.ports import SubmissionRow
from oracle.store.states import SubmissionState

if TYPE_CHECKING:
    from oracle.publish.txmanager import Outcome, TxManager

log = structlog.get_logger(__name__)

PUBLICATION_REORGED = "publication_reorged"
#: Confirmed submissions are watched until this deep when the node has no ``finalized`` tag.
WATCH_BLOCKS = 64
#: How many of the most recently confirmed submissions each recheck looks at.
RECENT = 8
#: How a node without the ``finalized`` tag (or an unreachable one) answers.
_NO_FINALIZED: tuple[type[BaseException], ...] = (*RPC_ERRORS, ValueError, KeyError)
#: What ends one recheck (or one submission's) quietly: the next round tries again.
_SKIPPED: tuple[type[BaseException], ...] = (OracleError, *RPC_ERRORS)


class ReopeningStore(Protocol):
    """The store methods the watch needs on top of ``ports.SubmissionStore``."""

    async def recent_confirmed_submissions(
        self, chain_id: int, contract_address: str, limit: int = ...
    ) -> list[Any]: ...

    async def reopen_submission(self, submission_id: int, detail: str) -> SubmissionRow: ...


class ReorgWatch:
    """Rechecks recently confirmed submissions; re-sends one a reorg dropped."""

    def __init__(self, manager: TxManager, *, watch_blocks: int = WATCH_BLOCKS) -> None:
        self.manager = manager
        self.watch_blocks = watch_blocks

    async def recheck(self) -> list[Outcome]:
        """One round over the non-final confirmed submissions; the outcomes of re-sends."""
        manager = self.manager
        store: Any = manager.store
        if not hasattr(store, "reopen_submission"):  # a store without it: nothing to watch
            return []
        reopening: ReopeningStore = store
        try:
            recent = await reopening.recent_confirmed_submissions(
                manager.chain_id, manager.oracle.address.lower(), RECENT
            )
            if not recent:
                return []
            final = await self._final_block()
        except _SKIPPED as exc:  # the store or the node is down: the next round tries again
            log.warning("reorg_recheck_skipped", error=str(exc) or type(exc).__name__)
            return []
        outcomes = []
        for row in recent:
            try:
                outcome = await self._recheck(row, reopening, final)
            except _SKIPPED as exc:  # one submission's trouble must not stop the others
                log.warning(
                    "reorg_recheck_failed",
                    submission_id=row.id,
                    error=str(exc) or type(exc).__name__,
                )
                continue
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def _final_block(self) -> int:
        """The newest block no reorg is expected to drop."""
        w3 = self.manager.w3
        head = int(await w3.eth.block_number)
        try:
            finalized = int((await w3.eth.get_block("finalized"))["number"])
        except _NO_FINALIZED:
            return head - self.watch_blocks
        return finalized

    async def _recheck(
        self, row: SubmissionRow, store: ReopeningStore, final: int
    ) -> Outcome | None:
        manager = self.manager
        txs = list(await manager.store.submission_txs(row.id))
        blocks = [
            int(receipt["blockNumber"])
            for tx in txs
            if isinstance(receipt := getattr(tx, "receipt", None), dict)
            and receipt.get("blockNumber") is not None
        ]
        if not blocks or max(blocks) <= final:
            return None  # final (or never had a receipt stored: nothing to compare)
        if await find_receipt(manager.w3, [tx.tx_hash for tx in txs]) is not None:
            return None
        stored = await manager.oracle.retarget(row.epoch)
        if stored is not None:
            if stored.block_hash_hex != row.block_hash_hex:
                log.error(
                    "publication_reorged_rival_on_chain",
                    submission_id=row.id,
                    epoch=row.epoch,
                    on_chain=stored.block_hash_hex,
                )
            return None
        detail = (
            f"epoch {row.epoch}: the confirmed transaction of submission {row.id} is gone "
            f"after an EVM reorg (it was in block {max(blocks)}); sending it again"
        )
        log.error(PUBLICATION_REORGED, submission_id=row.id, epoch=row.epoch, detail=detail)
        alerts = manager.nonces.alerts
        if alerts is not None:
            await alerts.alert(
                PUBLICATION_REORGED,
                detail,
                key=f"epoch:{row.epoch}",
                severity="warning",
                epoch=row.epoch,
                submission_id=row.id,
            )
        reopened = await store.reopen_submission(row.id, detail)
        await self._resign_if_nonce_taken(reopened, txs)
        outcome = await manager._drive(reopened)
        log.info("publication_resent_after_reorg", epoch=row.epoch, tx_hash=outcome.tx_hash)
        return outcome

    async def _resign_if_nonce_taken(self, row: SubmissionRow, txs: list[Any]) -> None:
        """The dropped transaction's nonce was used meanwhile: sign the stored report again
        at the next nonce (the old bytes can never be mined now)."""
        manager = self.manager
        latest = txs[-1]
        address = manager.sender.address
        if int(await manager.w3.eth.get_transaction_count(address, "latest")) <= latest.nonce:
            return  # the nonce is free again: ``drive`` re-sends the same bytes
        nonce = int(await manager.w3.eth.get_transaction_count(address, "pending"))
        max_fee, priority = await manager._initial_fees()
        raw, tx_hash = await manager._sign_and_store(row.id, row.report, nonce, max_fee, priority)
        await manager._broadcast(raw, tx_hash)
        await manager.store.transition_submission(
            row.id,
            SubmissionState.BROADCAST,
            detail=f"re-signed at nonce {nonce}: nonce {latest.nonce} was used after the reorg",
            tx_hash=tx_hash,
        )
        log.warning("publication_resigned_after_reorg", submission_id=row.id, nonce=nonce)
