"""The transaction manager against a real anvil node and the real repository (SQLite and Postgres).

Every scenario ends with the same check: exactly one ``ReportAccepted`` for the
epoch on chain, and the store agreeing with the chain about which transaction
put it there. The contract (v2) is anchored at the epoch before (a genesis
checkpoint from real mainnet data) and every report carries its chain-bound
proof (the real headers at 2016e-1 and 2016e); the correction path
(``replace``) is exercised on a regtest-mode contract, where a competing block
for an epoch can be mined. Crashes are simulated by a step observer that raises between two
steps (``tests/fixtures/crashhooks.py``); the "restarted" manager is a new
instance with a new connection and only the database in common. Node trouble
is real: automine off for stuck transactions, ``anvil_dropTransaction`` for a
dropped one, and an anvil restart with ``--state`` (the mempool does not
survive it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from structlog.testing import capture_logs

from oracle.bitcoin.header import parse_header
from oracle.errors import PublishError
from oracle.publish.anchor import Checkpoint
from oracle.publish.contract import ContractReverted, OracleContract, connect
from oracle.publish.fees import FeePolicy
from oracle.publish.ports import Step, StepObserver
from oracle.publish.signing import Report, ReportSignature
from oracle.publish.txmanager import Outcome, TxManager
from oracle.store.repository import Repository
from tests.fixtures.anvil import (
    CHAIN_ID,
    AnvilNode,
    ChainAccounts,
    OnChain,
    mainnet_proof,
    mainnet_retarget_headers,
)
from tests.fixtures.crashhooks import CrashAt, OnStep, SimulatedCrash

pytestmark = pytest.mark.anvil

HEADERS = mainnet_retarget_headers()
EPOCH = 400
GWEI = 10**9
FAST = FeePolicy(
    max_fee_wei=500 * GWEI,
    priority_fee_wei=1 * GWEI,
    fee_bump_percent=50,
    replace_after_s=1.0,
    confirmations=1,
    receipt_timeout_s=60.0,
    poll_interval_s=0.05,
)


@dataclass
class Rig:
    node: AnvilNode
    onchain: OnChain
    oracle: OracleContract
    repository: Repository
    accounts: ChainAccounts
    report: Report
    signatures: list[ReportSignature]
    proof: bytes
    connections: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for w3 in [*self.connections, self.onchain.w3]:
            await w3.provider.disconnect()

    def manager(self, policy: FeePolicy = FAST, observer: StepObserver | None = None) -> TxManager:
        """A fresh manager (new connection): what a restarted process would build."""
        w3 = connect(self.node.url)
        self.connections.append(w3)
        return TxManager(
            w3=w3,
            oracle=OracleContract(w3, self.oracle.address),
            store=self.repository,
            sender=self.accounts.new_owner,
            chain_id=CHAIN_ID,
            policy=policy,
            observer=observer,
        )

    async def submit(self, manager: TxManager) -> Outcome:
        return await manager.submit(self.report, self.signatures, self.proof)

    async def accepted_events(self) -> list[Any]:
        logs = await self.oracle.contract.events.ReportAccepted().get_logs(from_block=0)
        return [log for log in logs if log["args"]["epoch"] == EPOCH]

    async def assert_exactly_once(self, outcome: Outcome) -> None:
        events = await self.accepted_events()
        assert len(events) == 1
        assert "0x" + events[0]["transactionHash"].hex().removeprefix("0x") == outcome.tx_hash
        submission = await self.repository.submission_for_epoch(
            CHAIN_ID, self.oracle.address, EPOCH
        )
        assert submission is not None and submission.state == "confirmed"
        txs = await self.repository.submission_txs(submission.id)
        assert outcome.tx_hash in [tx.tx_hash for tx in txs]
        stored = await self.oracle.retarget(EPOCH)
        assert stored is not None and stored.block_hash_hex == self.report.block_hash_hex
        # And a later submit of the same epoch sends nothing.
        nonce = await self.onchain.w3.eth.get_transaction_count(
            self.accounts.new_owner.address, "pending"
        )
        again = await self.submit(self.manager())
        assert again.status == "already_on_chain" or again.tx_hash == outcome.tx_hash
        assert (
            await self.onchain.w3.eth.get_transaction_count(
                self.accounts.new_owner.address, "pending"
            )
            == nonce
        )
        assert len(await self.accepted_events()) == 1

    def automine(self, enabled: bool) -> None:
        self.node.call("evm_setAutomine", enabled)

    def mine(self, blocks: int = 1) -> None:
        self.node.call("anvil_mine", hex(blocks))

    async def txs(self) -> list[Any]:
        submission = await self.repository.submission_for_epoch(
            CHAIN_ID, self.oracle.address, EPOCH
        )
        return (
            [] if submission is None else list(await self.repository.submission_txs(submission.id))
        )

    async def state(self) -> str | None:
        submission = await self.repository.submission_for_epoch(
            CHAIN_ID, self.oracle.address, EPOCH
        )
        return None if submission is None else submission.state


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 20.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def mainnet_checkpoint(epoch: int) -> Checkpoint:
    """A genesis at a real mainnet epoch, seeded with the bits of the 5 epochs before."""
    header = parse_header(HEADERS[epoch])
    seeds = tuple(parse_header(HEADERS[e]).bits for e in range(max(0, epoch - 5), epoch))
    return Checkpoint(epoch, header.block_hash_hex, header.bits, header.time, seeds)


async def make_rig(node: AnvilNode, accounts: ChainAccounts, repository: Repository) -> Rig:
    onchain = OnChain(node, accounts)
    oracle = await onchain.deploy(genesis=mainnet_checkpoint(EPOCH - 1), threshold=3)
    report = Report.for_epoch(EPOCH, parse_header(HEADERS[EPOCH]), await oracle.config_version())
    signatures = [
        s.sign_report(report, chain_id=CHAIN_ID, contract_address=oracle.address)
        for s in accounts.signers[:3]
    ]
    proof = mainnet_proof(EPOCH)
    return Rig(node, onchain, oracle, repository, accounts, report, signatures, proof)


@pytest.fixture
async def rig(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> AsyncIterator[Rig]:
    rig = await make_rig(anvil_factory(), test_accounts, repository)
    try:
        yield rig
    finally:
        await rig.close()  # the HTTP sessions of every connection the test opened


# ------------------------------------------------------------------ the plain path


async def test_submit_stores_before_broadcast_and_confirms(rig: Rig) -> None:
    seen: dict[str, Any] = {}

    async def probe(name: Step, submission_id: int) -> None:
        if name == "signed":  # stored, not yet sent: the node must not know the tx yet
            txs = await rig.txs()
            seen["stored"] = [tx.tx_hash for tx in txs]
            seen["node_knew"] = [
                rig.node.call("eth_getTransactionByHash", tx.tx_hash) for tx in txs
            ]

    outcome = await rig.submit(rig.manager(observer=OnStep(probe)))
    assert outcome.status == "confirmed" and outcome.gas_used is not None
    assert seen["stored"] == [outcome.tx_hash] and seen["node_knew"] == [None]
    submission = await rig.repository.submission_for_epoch(CHAIN_ID, rig.oracle.address, EPOCH)
    assert submission is not None
    events = await rig.repository.submission_events(submission.id)
    assert [e.to_state for e in events] == ["signed", "broadcast", "mined", "confirmed"]
    await rig.assert_exactly_once(outcome)


async def test_receipt_waits_for_the_configured_confirmations(rig: Rig) -> None:
    policy = replace(FAST, confirmations=3)
    task = asyncio.create_task(rig.submit(rig.manager(policy)))
    await wait_until(lambda: _is(rig.state, "mined"), "the tx to be mined")
    await asyncio.sleep(0.3)
    assert not task.done()
    rig.mine(2)
    outcome = await asyncio.wait_for(task, 20)
    assert outcome.status == "confirmed"
    await rig.assert_exactly_once(outcome)


async def _is(getter: Callable[[], Awaitable[Any]], value: Any) -> bool:
    return await getter() == value


async def test_a_refused_report_is_decoded_and_nothing_is_stored(rig: Rig) -> None:
    two = rig.signatures[:2]
    with pytest.raises(ContractReverted) as caught:
        await rig.manager().submit(rig.report, two, rig.proof)
    assert (caught.value.name, caught.value.args_by_name) == (
        "TooFewSignatures",
        {"count": 2, "threshold": 3},
    )
    assert await rig.state() is None


# ------------------------------------------------------------------ node trouble


async def test_stuck_transaction_is_replaced_with_bumped_fees(rig: Rig) -> None:
    rig.automine(False)
    task = asyncio.create_task(rig.submit(rig.manager()))
    await wait_until(lambda: _count(rig.txs, 1), "the first tx to be stored")
    first = (await rig.txs())[0]
    # A block whose base fee is above the first tx's max fee: it cannot be included.
    rig.node.call("anvil_setNextBlockBaseFeePerGas", hex(first.max_fee_per_gas + 1))
    rig.mine(1)
    assert rig.node.call("eth_getTransactionReceipt", first.tx_hash) is None
    await wait_until(lambda: _count(rig.txs, 2), "a replacement tx", timeout_s=10)
    second = (await rig.txs())[1]
    assert second.nonce == first.nonce
    assert second.max_fee_per_gas >= first.max_fee_per_gas * 3 // 2
    assert second.max_priority_fee_per_gas >= first.max_priority_fee_per_gas * 3 // 2
    rig.mine(1)
    outcome = await asyncio.wait_for(task, 20)
    assert outcome.tx_hash == second.tx_hash
    assert rig.node.call("eth_getTransactionReceipt", first.tx_hash) is None
    await rig.assert_exactly_once(outcome)


async def test_fee_cap_is_never_exceeded(rig: Rig) -> None:
    rig.automine(False)
    cap = 5 * GWEI
    capped = replace(FAST, max_fee_wei=cap, replace_after_s=0.3)
    task = asyncio.create_task(rig.submit(rig.manager(capped)))
    await wait_until(lambda: _count(rig.txs, 1), "the first tx")
    await asyncio.sleep(2.0)  # several replacement rounds
    txs = await rig.txs()
    assert all(tx.max_fee_per_gas <= cap for tx in txs)
    # Bumped until the cap; after that the same bytes are re-sent (no smaller-than-10% bumps).
    assert len(txs) >= 2 and txs[-1].max_fee_per_gas == cap
    assert len({tx.nonce for tx in txs}) == 1
    rig.mine(1)
    outcome = await asyncio.wait_for(task, 20)
    await rig.assert_exactly_once(outcome)


async def test_dropped_transaction_is_resent_as_the_same_bytes(rig: Rig) -> None:
    rig.automine(False)
    # long replace_after_s: a loaded machine must not turn this into the replacement path
    task = asyncio.create_task(rig.submit(rig.manager(replace(FAST, replace_after_s=60.0))))
    await wait_until(lambda: _is(rig.state, "broadcast"), "the broadcast")
    (tx,) = await rig.txs()
    assert rig.node.call("eth_getTransactionByHash", tx.tx_hash) is not None
    rig.node.call("anvil_dropTransaction", tx.tx_hash)
    assert rig.node.call("eth_getTransactionByHash", tx.tx_hash) is None
    await wait_until(
        lambda: _async(rig.node.call("eth_getTransactionByHash", tx.tx_hash) is not None),
        "the re-send",
        5,
    )
    rig.mine(1)
    outcome = await asyncio.wait_for(task, 20)
    assert outcome.tx_hash == tx.tx_hash
    assert [t.tx_hash for t in await rig.txs()] == [tx.tx_hash]
    await rig.assert_exactly_once(outcome)


async def test_node_restart_while_waiting_for_the_receipt(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory(persistent=True)
    rig = await make_rig(node, test_accounts, repository)
    try:
        await _restart_scenario(rig, node)
    finally:
        await rig.close()


async def _restart_scenario(rig: Rig, node: AnvilNode) -> None:
    rig.automine(False)
    # Replacement is another path (tested above); under load a restart can outlast
    # FAST's 1 s, so this scenario waits long enough that only the re-send applies.
    patient = replace(FAST, replace_after_s=60.0)
    task = asyncio.create_task(rig.submit(rig.manager(patient)))
    await wait_until(lambda: _is(rig.state, "broadcast"), "the broadcast")
    (tx,) = await rig.txs()
    with capture_logs() as logs:
        await asyncio.to_thread(node.restart)  # graceful stop dumps state; the mempool is gone
        assert rig.node.call("eth_getCode", rig.oracle.address, "latest") != "0x"
        outcome = await asyncio.wait_for(task, 30)  # the restarted node automines the re-sent bytes
    assert "tx_not_in_mempool_resending" in [entry["event"] for entry in logs]
    assert outcome.status == "confirmed" and outcome.tx_hash == tx.tx_hash
    assert [t.tx_hash for t in await rig.txs()] == [tx.tx_hash]
    await rig.assert_exactly_once(outcome)


# ------------------------------------------------------------------ crashes and restarts


async def test_crash_between_signing_and_broadcast(rig: Rig) -> None:
    with pytest.raises(SimulatedCrash):
        await rig.submit(rig.manager(observer=CrashAt("signed")))
    (tx,) = await rig.txs()
    assert await rig.state() == "signed"
    assert rig.node.call("eth_getTransactionByHash", tx.tx_hash) is None
    (outcome,) = await rig.manager().reconcile()
    assert outcome.status == "confirmed" and outcome.tx_hash == tx.tx_hash
    await rig.assert_exactly_once(outcome)


async def test_crash_between_broadcast_and_receipt(rig: Rig) -> None:
    rig.automine(False)
    with pytest.raises(SimulatedCrash):
        await rig.submit(rig.manager(observer=CrashAt("broadcast")))
    (tx,) = await rig.txs()
    assert rig.node.call("eth_getTransactionByHash", tx.tx_hash) is not None
    task = asyncio.create_task(rig.manager().reconcile())
    await asyncio.sleep(0.3)
    assert not task.done()
    rig.mine(1)
    (outcome,) = await asyncio.wait_for(task, 20)
    assert outcome.tx_hash == tx.tx_hash
    await rig.assert_exactly_once(outcome)


async def test_crash_after_broadcast_with_the_tx_already_mined(rig: Rig) -> None:
    with pytest.raises(SimulatedCrash):
        await rig.submit(rig.manager(observer=CrashAt("broadcast")))
    (tx,) = await rig.txs()
    assert await rig.oracle.retarget(EPOCH) is not None  # automined meanwhile
    (outcome,) = await rig.manager().reconcile()
    assert (outcome.status, outcome.tx_hash) == ("confirmed", tx.tx_hash)
    await rig.assert_exactly_once(outcome)


async def test_crash_before_any_transaction_was_stored(rig: Rig) -> None:
    with pytest.raises(SimulatedCrash):
        await rig.submit(rig.manager(observer=CrashAt("created")))
    assert await rig.txs() == []
    with pytest.raises(PublishError, match="abandoned"):
        await rig.manager().reconcile()
    assert await rig.state() is None or await rig.state() == "abandoned"
    outcome = await rig.submit(rig.manager())
    assert outcome.status == "confirmed"
    await rig.assert_exactly_once(outcome)


async def test_reverted_transaction_is_decoded_and_recorded(rig: Rig) -> None:
    """Another operator's transaction for the same epoch lands first in the same block.

    It is sent after ours with a higher tip (anvil orders a block by fees): sent before,
    our simulation on the pending block would already see it and nothing would be sent."""
    rig.automine(False)
    task = asyncio.create_task(rig.submit(rig.manager()))
    await wait_until(lambda: _is(rig.state, "broadcast"), "our broadcast")
    accounts = rig.accounts
    packed = rig.onchain.sign(rig.report, accounts.signers[:3], rig.oracle.address)
    rival_raw, _ = accounts.deployer.sign_transaction(
        {
            "type": 2,
            "chainId": CHAIN_ID,
            "nonce": await rig.onchain.w3.eth.get_transaction_count(
                accounts.deployer.address, "pending"
            ),
            "to": rig.oracle.address,
            "data": rig.oracle.submit_calldata(rig.report, packed, rig.proof),
            "gas": 300_000,
            "maxFeePerGas": 100 * GWEI,
            "maxPriorityFeePerGas": 20 * GWEI,
            "value": 0,
        }
    )
    await rig.onchain.w3.eth.send_raw_transaction(rival_raw)
    rig.mine(1)
    with pytest.raises(ContractReverted) as caught:
        await asyncio.wait_for(task, 20)
    assert (caught.value.name, caught.value.args_by_name) == (
        "ReportAlreadyAccepted",
        {"epoch": EPOCH},
    )
    assert await rig.state() == "reverted"
    submission = await rig.repository.submission_for_epoch(CHAIN_ID, rig.oracle.address, EPOCH)
    assert submission is not None
    events = await rig.repository.submission_events(submission.id)
    assert "ReportAlreadyAccepted" in (events[-1].detail or "")
    assert len(await rig.accepted_events()) == 1
    again = await rig.submit(rig.manager())
    assert again.status == "already_on_chain"


async def _count(getter: Callable[[], Awaitable[list[Any]]], n: int) -> bool:
    return len(await getter()) >= n


async def _async(value: bool) -> bool:
    return value
