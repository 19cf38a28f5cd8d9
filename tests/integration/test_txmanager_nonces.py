"""Nonce gaps, another sender on the key, and EVM reorgs (issue 12 item 7), on a real anvil.

The manager, the store (SQLite and Postgres) and the node are real; the faults are
real node operations: ``anvil_dropTransaction`` loses a lower nonce (a gap), another
process's transaction takes our nonce (a conflict), and ``evm_snapshot``/``evm_revert``
is an EVM reorg that drops a block holding a confirmed publication.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from structlog.testing import capture_logs

from oracle.errors import PublishError
from oracle.publish.ports import Step
from oracle.publish.txmanager import TxManager
from oracle.store.repository import Repository
from tests.fixtures.anvil import AnvilNode, ChainAccounts
from tests.fixtures.crashhooks import OnStep
from tests.integration.test_txmanager import EPOCH, FAST, GWEI, Rig, _is, make_rig, wait_until

pytestmark = pytest.mark.anvil


@pytest.fixture
async def rig(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> AsyncIterator[Rig]:
    rig = await make_rig(anvil_factory(), test_accounts, repository)
    try:
        yield rig
    finally:
        await rig.close()


@dataclass
class Alerts:
    """Records what the manager would have sent to the monitor's ``Alerter``."""

    raised: list[dict[str, Any]] = field(default_factory=list)

    async def alert(
        self, kind: str, message: str, *, key: str = "", severity: str = "error", **fields: Any
    ) -> bool:
        self.raised.append(
            {"kind": kind, "message": message, "key": key, "severity": severity, **fields}
        )
        return True


def watched(manager: TxManager) -> Alerts:
    alerts = Alerts()
    manager.nonces.alerts = alerts
    return alerts


def self_transfer(rig: Rig, nonce: int, *, tip_gwei: int = 1, value: int = 0) -> tuple[str, str]:
    """A transaction of the sender's key sent by someone else: (raw hex, hash)."""
    sender = rig.accounts.new_owner
    raw, tx_hash = sender.sign_transaction(
        {
            "type": 2,
            "chainId": rig.node.chain_id,
            "nonce": nonce,
            "to": sender.address,
            "value": value,
            "gas": 21_000,
            "maxFeePerGas": 400 * GWEI,
            "maxPriorityFeePerGas": tip_gwei * GWEI,
        }
    )
    return "0x" + raw.hex(), tx_hash


def nonce(rig: Rig, tag: str = "latest") -> int:
    return int(rig.node.call("eth_getTransactionCount", rig.accounts.new_owner.address, tag), 16)


async def test_a_missing_lower_nonce_is_filled_and_the_submission_lands(rig: Rig) -> None:
    rig.automine(False)
    lost = nonce(rig, "pending")
    raw, lost_hash = self_transfer(rig, lost)
    rig.node.call("eth_sendRawTransaction", raw)  # sent earlier, never mined
    # Patient: no fee bump rounds, and a deadline the old code runs into.
    patient = replace(FAST, replace_after_s=60.0, receipt_timeout_s=30.0)
    task = asyncio.create_task(rig.submit(rig.manager(patient)))
    await wait_until(lambda: _is(rig.state, "broadcast"), "the broadcast")
    (ours,) = await rig.txs()
    assert ours.nonce == lost + 1  # behind the pending one
    with capture_logs() as logs:
        rig.node.call("anvil_dropTransaction", lost_hash)  # the node loses the lower nonce
        assert nonce(rig, "pending") == lost  # ours cannot be mined now: a gap
        rig.automine(True)
        outcome = await asyncio.wait_for(task, 40)
    assert outcome.status == "confirmed" and outcome.tx_hash == ours.tx_hash
    filled = [e for e in logs if e["event"] == "nonce_gap_filled"]
    assert [(e["nonce"], e["blocked_nonce"], e["how"]) for e in filled] == [
        (lost, lost + 1, "zero-value self-transfer")
    ]
    filler = rig.node.call("eth_getTransactionByHash", filled[0]["tx_hash"])
    sender = rig.accounts.new_owner.address.lower()
    assert (filler["from"], filler["to"], filler["value"]) == (sender, sender, "0x0")
    assert nonce(rig) == lost + 2
    await rig.assert_exactly_once(outcome)


async def test_another_sender_taking_our_nonce_is_alerted(rig: Rig) -> None:
    rig.automine(False)
    manager = rig.manager()
    alerts = watched(manager)

    async def elsewhere(step: Step, _submission_id: int) -> None:
        if step == "signed":  # stored, not yet sent: another process sends at our nonce
            (tx,) = await rig.txs()
            raw, _ = self_transfer(rig, tx.nonce, tip_gwei=50, value=1)
            rig.node.call("eth_sendRawTransaction", raw)

    manager._observer = OnStep(elsewhere)
    task = asyncio.create_task(rig.submit(manager))

    async def alerted() -> bool:
        return bool(alerts.raised)

    # The node refuses ours as an underpriced replacement of a transaction not ours.
    await wait_until(alerted, "the replacement-underpriced alert")
    first = alerts.raised[0]
    assert (first["kind"], first["severity"]) == ("sender_nonce_conflict", "critical")
    assert "underpriced replacement" in first["message"]
    assert first["key"] == rig.accounts.new_owner.address
    rig.mine(1)  # the other transaction is mined: our nonce is gone
    with pytest.raises(PublishError, match="taken by another transaction"):
        await asyncio.wait_for(task, 20)
    assert await rig.state() == "failed"
    last = alerts.raised[-1]
    assert last["kind"] == "sender_nonce_conflict"
    assert last["nonce"] == (await rig.txs())[0].nonce
    assert "was used by a transaction not ours" in last["message"]
    assert {a["kind"] for a in alerts.raised} == {"sender_nonce_conflict"}
    assert await rig.oracle.retarget(EPOCH) is None
    rig.automine(True)
    outcome = await rig.submit(rig.manager())  # a fresh nonce: it lands
    assert outcome.status == "confirmed"


async def test_a_confirmed_publication_dropped_by_an_evm_reorg_is_sent_again(rig: Rig) -> None:
    before = rig.onchain.snapshot()
    manager = rig.manager()
    alerts = watched(manager)
    outcome = await rig.submit(manager)
    assert outcome.status == "confirmed"
    assert await manager.reorgs.recheck() == []  # still on chain: nothing to do
    rig.onchain.revert(before)  # the reorg: the block with our transaction is gone
    assert rig.node.call("eth_getTransactionReceipt", outcome.tx_hash) is None
    assert await rig.oracle.retarget(EPOCH) is None
    (again,) = await manager.reorgs.recheck()
    assert (again.status, again.tx_hash) == ("confirmed", outcome.tx_hash)  # the same bytes
    assert [a["kind"] for a in alerts.raised] == ["publication_reorged"]
    submission = await rig.repository.submission_for_epoch(
        rig.node.chain_id, rig.oracle.address, EPOCH
    )
    assert submission is not None and submission.state == "confirmed"
    events = await rig.repository.submission_events(submission.id)
    assert [e.to_state for e in events] == [
        "signed", "broadcast", "mined", "confirmed", "broadcast", "mined", "confirmed",
    ]  # fmt: skip
    assert "EVM reorg" in (events[4].detail or "")
    assert await manager.reorgs.recheck() == []
    await rig.assert_exactly_once(again)


async def test_after_a_reorg_a_used_nonce_is_replaced_by_a_fresh_one(rig: Rig) -> None:
    before = rig.onchain.snapshot()
    manager = rig.manager()
    outcome = await rig.submit(manager)
    (old,) = await rig.txs()
    rig.onchain.revert(before)
    raw, _ = self_transfer(rig, old.nonce)  # the sender's nonce is used on the new branch
    rig.node.call("eth_sendRawTransaction", raw)
    await wait_until(_nonce_past(rig, old.nonce), "the other transaction mined")
    (again,) = await manager.reorgs.recheck()
    assert again.status == "confirmed" and again.tx_hash != outcome.tx_hash
    txs = await rig.txs()
    assert [tx.nonce for tx in txs] == [old.nonce, old.nonce + 1]
    assert again.tx_hash == txs[-1].tx_hash
    await rig.assert_exactly_once(again)


def _nonce_past(rig: Rig, used: int) -> Any:
    async def check() -> bool:
        return nonce(rig) > used

    return check
