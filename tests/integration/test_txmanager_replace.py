"""The correction path against a real anvil and the real repository (SQLite and Postgres).

A regtest-mode DifficultyOracle (the dev chain id allows it) anchored at a mined
genesis header: epoch 1 is submitted with one retarget block, then a competing
block for epoch 1 (same parent, another nonce: what a Bitcoin reorg produces)
goes through ``replace`` with the same exactly-once machinery, inside the
challenge window; after the window the contract refuses and ``plan_epoch`` says a
re-anchor by governance is needed. The planning reads (``plan_epoch``,
``correction_outlook``) are checked here against the same contract.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from oracle.bitcoin.header import Header, parse_header
from oracle.errors import PublishDeferred, ReanchorRequired
from oracle.publish.anchor import Checkpoint, build_proof
from oracle.publish.contract import ContractReverted, OracleContract, connect
from oracle.publish.plan import correction_outlook, plan_epoch
from oracle.publish.signing import Report
from oracle.publish.txmanager import Outcome, TxManager
from oracle.store.repository import Repository
from tests.fixtures.anvil import CHAIN_ID, AnvilNode, ChainAccounts, OnChain, regtest_header
from tests.fixtures.crashhooks import CrashAt, SimulatedCrash
from tests.integration.test_txmanager import FAST

pytestmark = pytest.mark.anvil

BITS = 0x207FFFFF  # regtest: never retargets
WINDOW_S = 3600


def _child(parent: Header, *, time_: int, salt: int) -> Header:
    prev = bytes.fromhex(parent.block_hash_hex)[::-1]  # the digest, internal byte order
    return parse_header(regtest_header(bits=BITS, time=time_, prev_hash_le=prev, salt=salt))


@dataclass
class Fork:
    """A regtest genesis (epoch 0), the last header of epoch 0 and two rival retargets."""

    genesis: Header
    last: Header
    first: Header  # the retarget block published first
    second: Header  # the block that replaces it after the "reorg"

    @classmethod
    def mine(cls) -> Fork:
        start = int(time.time()) - 10_000
        genesis = parse_header(regtest_header(bits=BITS, time=start, salt=1))
        last = _child(genesis, time_=start + 600, salt=2)
        return cls(
            genesis,
            last,
            _child(last, time_=start + 1200, salt=3),
            _child(last, time_=start + 1260, salt=4),
        )

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(0, self.genesis.block_hash_hex, BITS, self.genesis.time, ())

    def proof(self, retarget: Header) -> bytes:
        return build_proof(1, self.last.raw, retarget.raw)


@dataclass
class ReplaceRig:
    node: AnvilNode
    onchain: OnChain
    oracle: OracleContract
    repository: Repository
    accounts: ChainAccounts
    fork: Fork
    connections: list[Any] = field(default_factory=list)

    def manager(self, observer: Any = None) -> TxManager:
        w3 = connect(self.node.url)
        self.connections.append(w3)
        return TxManager(
            w3=w3,
            oracle=OracleContract(w3, self.oracle.address),
            store=self.repository,
            sender=self.accounts.new_owner,
            chain_id=CHAIN_ID,
            policy=FAST,
            observer=observer,
        )

    async def land(
        self, retarget: Header, function: str, manager: TxManager | None = None
    ) -> Outcome:
        report = Report.for_epoch(1, retarget, await self.oracle.config_version())
        signatures = [
            s.sign_report(report, chain_id=CHAIN_ID, contract_address=self.oracle.address)
            for s in self.accounts.signers[:3]
        ]
        return await (manager or self.manager()).submit(
            report, signatures, self.fork.proof(retarget), function=function
        )

    async def replaced_events(self) -> list[Any]:
        return list(await self.oracle.contract.events.EpochReplaced().get_logs(from_block=0))

    async def nonce(self) -> int:
        return int(
            await self.onchain.w3.eth.get_transaction_count(
                self.accounts.new_owner.address, "pending"
            )
        )


@pytest.fixture
async def rig(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> AsyncIterator[ReplaceRig]:
    node = anvil_factory()
    onchain = OnChain(node, test_accounts)
    fork = Fork.mine()
    oracle = await onchain.deploy(
        genesis=fork.checkpoint(), network="regtest", threshold=3, challenge_window_s=WINDOW_S
    )
    rig = ReplaceRig(node, onchain, oracle, repository, test_accounts, fork)
    try:
        yield rig
    finally:
        for w3 in [*rig.connections, onchain.w3]:
            await w3.provider.disconnect()


async def test_the_latest_epoch_is_replaced_once_inside_its_window(rig: ReplaceRig) -> None:
    fork = rig.fork
    first = await rig.land(fork.first, "submit")
    assert (first.status, first.function) == ("confirmed", "submit")
    plan = await plan_epoch(rig.oracle, 1, fork.second.block_hash_hex)
    assert plan.action == "replace" and plan.on_chain_hex == fork.first.block_hash_hex
    assert plan.window_closes_at > 0
    outlook = await correction_outlook(rig.oracle, 1, fork.first.block_hash_hex, confirmations=6)
    assert outlook.replaceable and "challenge window is open until" in outlook.detail

    second = await rig.land(fork.second, "replace")
    assert (second.status, second.function) == ("confirmed", "replace")
    assert second.tx_hash != first.tx_hash
    (event,) = await rig.replaced_events()
    assert bytes(event["args"]["oldHash"]).hex() == fork.first.block_hash_hex
    assert bytes(event["args"]["newHash"]).hex() == fork.second.block_hash_hex
    stored = await rig.oracle.retarget(1)
    assert stored is not None and stored.block_hash_hex == fork.second.block_hash_hex

    # one confirmed submission per block; the replacement rebuilds from what it stored
    by_block = {
        block: await rig.repository.submission_for_epoch(CHAIN_ID, rig.oracle.address, 1, block)
        for block in (fork.first.block_hash_hex, fork.second.block_hash_hex)
    }
    assert {b: (s.state, s.function) for b, s in by_block.items() if s} == {
        fork.first.block_hash_hex: ("confirmed", "submit"),
        fork.second.block_hash_hex: ("confirmed", "replace"),
    }
    replaced = by_block[fork.second.block_hash_hex]
    assert replaced is not None
    assert replaced.report["proof_hex"] == fork.proof(fork.second).hex()
    assert (await plan_epoch(rig.oracle, 1, fork.second.block_hash_hex)).action == "on_chain"

    # repeating either is a no-op: nothing is sent
    nonce = await rig.nonce()
    assert (await rig.land(fork.second, "replace")).status == "already_on_chain"
    assert await rig.nonce() == nonce
    assert len(await rig.replaced_events()) == 1


async def test_a_crashed_replacement_is_finished_by_reconcile(rig: ReplaceRig) -> None:
    fork = rig.fork
    await rig.land(fork.first, "submit")
    with pytest.raises(SimulatedCrash):
        await rig.land(fork.second, "replace", rig.manager(observer=CrashAt("signed")))
    live = await rig.repository.live_submissions(CHAIN_ID, rig.oracle.address)
    assert [(s.block_hash_hex, s.function, s.state) for s in live] == [
        (fork.second.block_hash_hex, "replace", "signed")
    ]
    (outcome,) = await rig.manager().reconcile()
    assert (outcome.status, outcome.function) == ("confirmed", "replace")
    assert len(await rig.replaced_events()) == 1
    stored = await rig.oracle.retarget(1)
    assert stored is not None and stored.block_hash_hex == fork.second.block_hash_hex


async def test_after_the_window_the_block_is_final_and_nothing_is_sent(rig: ReplaceRig) -> None:
    fork = rig.fork
    await rig.land(fork.first, "submit")
    rig.node.call("evm_increaseTime", hex(WINDOW_S + 1))
    rig.node.call("evm_mine")
    with pytest.raises(ReanchorRequired, match="challenge window of epoch 1 has closed"):
        await plan_epoch(rig.oracle, 1, fork.second.block_hash_hex)
    outlook = await correction_outlook(rig.oracle, 1, fork.first.block_hash_hex, confirmations=6)
    assert not outlook.replaceable and "re-anchor by governance" in outlook.detail
    nonce = await rig.nonce()
    with pytest.raises(ContractReverted) as caught:  # the manager's simulation refuses it
        await rig.land(fork.second, "replace")
    assert caught.value.name == "ReplacementWindowClosed"
    assert await rig.nonce() == nonce
    assert (
        await rig.repository.submission_for_epoch(
            CHAIN_ID, rig.oracle.address, 1, fork.second.block_hash_hex
        )
        is None
    )
    assert await rig.replaced_events() == []


async def test_plan_follows_the_contracts_order_and_genesis(rig: ReplaceRig) -> None:
    fork = rig.fork
    assert (await plan_epoch(rig.oracle, 1, fork.first.block_hash_hex)).action == "submit"
    with pytest.raises(PublishDeferred, match="epoch 1 first"):
        await plan_epoch(rig.oracle, 2, "ab" * 32)
    genesis = await plan_epoch(rig.oracle, 0, fork.genesis.block_hash_hex)
    assert genesis.action == "on_chain"
    with pytest.raises(ReanchorRequired, match="genesis checkpoint"):
        await plan_epoch(rig.oracle, 0, "ab" * 32)
    await rig.land(fork.first, "submit")
    assert (await plan_epoch(rig.oracle, 2, "ab" * 32)).action == "submit"
