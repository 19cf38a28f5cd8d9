"""The sender's nonces: gaps filled, another sender using the key told.

Where it sits: the ``TxManager`` owns one ``NonceKeeper`` (``manager.nonces``) and
asks it at two points of driving a submission (``txmanager._advance`` and
``_broadcast``, each hook marked "issue 12 item 7").

**Gaps.** A transaction at nonce K is mined only after every lower nonce. When the
account's confirmed nonce (``eth_getTransactionCount`` "latest") is below K and the
node's "pending" count (the next nonce after the contiguous run it holds) is below
K too, the nonces in between are missing: typically the transaction of an earlier,
abandoned submission the node has since dropped (restart, mempool eviction), or a
manual transaction that never arrived. The submission would wait, bump fees and time
out forever. After the same gap was seen for ``GAP_GRACE_S`` (so a slow node or a
load-balanced endpoint is not mistaken for a gap), each missing nonce is filled:

* with the stored raw transaction of a *live* submission at that nonce, re-sent as
  the same bytes (it is ours and still wanted);
* else with a zero-value transfer from the sender to itself (21,000 gas) at the
  current fees (``FeePolicy.initial_fees``); stored transactions of ended
  submissions are not re-sent, as they would only revert or land a stale report.

Each fill is logged (``nonce_gap_filled``); a filler is not stored (it carries no
report), and a gap that comes back is filled again.

**Another sender.** Two signs that some other process signs with this key (another
host, a second daemon on another database, a manual transaction): the nonce of a
submission was used by a transaction that is none of ours (the manager marks the
submission failed), or the node refuses one of our transactions as a *replacement*
that is underpriced (a transaction not ours holds that nonce in the mempool; ours are
only ever replaced by higher fees). Both are logged (``sender_nonce_conflict``) and
alerted (critical, ``NONCE_CONFLICT``, keyed by the sender address) when the manager
was given an alert sink (``oracle.wiring`` passes the monitor's ``Alerter``). On one
host, the sender lock (``oracle.publish.senderlock``) prevents it up front.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from oracle.errors import PublishError
from oracle.publish.evmnode import pending_base_fee, send_raw

if TYPE_CHECKING:
    from oracle.publish.txmanager import TxManager

log = structlog.get_logger(__name__)

NONCE_CONFLICT = "sender_nonce_conflict"
#: Gas of a plain value transfer, the filler of a nonce gap.
SELF_TRANSFER_GAS = 21_000
#: A gap is filled once it was seen for this long (at least; see ``NonceKeeper.grace_s``).
GAP_GRACE_S = 3.0


class AlertSink(Protocol):
    """Where alerts go (``oracle.monitor.alerts.Alerter``)."""

    async def alert(
        self, kind: str, message: str, *, key: str = "", severity: str = "error", **fields: Any
    ) -> bool: ...


class NonceKeeper:
    """Gap filling and conflict alerts for one manager's sender."""

    def __init__(self, manager: TxManager, *, grace_s: float | None = None) -> None:
        self.manager = manager
        self.alerts: AlertSink | None = None
        self.grace_s = (
            grace_s if grace_s is not None else min(GAP_GRACE_S, 3 * manager.policy.poll_interval_s)
        )
        #: (first missing nonce, blocked nonce) -> when it was first seen
        self._gaps: dict[tuple[int, int], float] = {}

    @property
    def address(self) -> str:
        return str(self.manager.sender.address)

    # -------------------------------------------------------------- another sender

    async def conflict(self, detail: str, **context: Any) -> None:
        """Another process used this key: log and alert (critical)."""
        log.error(NONCE_CONFLICT, sender=self.address, detail=detail, **context)
        if self.alerts is not None:
            await self.alerts.alert(
                NONCE_CONFLICT,
                f"sender {self.address}: {detail}; another process is sending with this key "
                "(another host, another daemon or a manual transaction): run one daemon per "
                "sender key",
                key=self.address,
                severity="critical",
                sender=self.address,
                **context,
            )

    async def on_broadcast(self, sent: str, reason: str, tx_hash: str) -> None:
        """A replacement refused as underpriced: a transaction not ours holds the nonce."""
        if sent == "underpriced" and "replacement" in reason:
            await self.conflict(
                f"the node refused our transaction {tx_hash} as an underpriced replacement: "
                "a transaction that is not ours holds its nonce",
                tx_hash=tx_hash,
            )

    # -------------------------------------------------------------- gaps

    async def fill_gap(self, submission_id: int, nonce: int, confirmed: int) -> list[int]:
        """Fill the nonces below ``nonce`` the node holds no transaction for (see the module
        docstring); ``confirmed`` is the account's "latest" count. Returns the nonces filled."""
        if confirmed >= nonce:
            return []
        manager = self.manager
        pending = int(await manager.w3.eth.get_transaction_count(manager.sender.address, "pending"))
        first = max(pending, confirmed)
        if first >= nonce:
            self._gaps.clear()
            return []
        key, now = (first, nonce), time.monotonic()
        seen = self._gaps.setdefault(key, now)
        if now - seen < self.grace_s:
            return []
        self._gaps.pop(key, None)
        live = await self._live_raw_txs(exclude=submission_id)
        filled = []
        for missing in range(first, nonce):
            try:
                if missing in live:
                    raw, tx_hash = live[missing]
                    how = "stored transaction re-sent"
                else:
                    raw, tx_hash = await self._self_transfer(missing)
                    how = "zero-value self-transfer"
                sent, reason = await send_raw(manager.w3, raw, tx_hash)
            except PublishError as exc:
                log.warning("nonce_gap_fill_failed", nonce=missing, error=str(exc))
                break
            log.warning(
                "nonce_gap_filled",
                sender=self.address,
                nonce=missing,
                blocked_nonce=nonce,
                tx_hash=tx_hash,
                how=how,
                sent=sent,
                reason=reason or None,
            )
            filled.append(missing)
        return filled

    async def _self_transfer(self, nonce: int) -> tuple[bytes, str]:
        manager = self.manager
        max_fee, priority = manager.policy.initial_fees(await pending_base_fee(manager.w3))
        return manager.sender.sign_transaction(
            {
                "type": 2,
                "chainId": manager.chain_id,
                "nonce": nonce,
                "to": manager.sender.address,
                "value": 0,
                "gas": SELF_TRANSFER_GAS,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": priority,
            }
        )

    async def _live_raw_txs(self, *, exclude: int) -> dict[int, tuple[bytes, str]]:
        """nonce -> (raw, hash) of the latest stored attempt of every other live submission."""
        manager = self.manager
        found: dict[int, tuple[bytes, str]] = {}
        for row in await manager.store.live_submissions(
            manager.chain_id, manager.oracle.address.lower()
        ):
            if row.id == exclude:
                continue
            txs = list(await manager.store.submission_txs(row.id))
            if txs:
                found[txs[-1].nonce] = (txs[-1].raw_tx, txs[-1].tx_hash)
        return found
