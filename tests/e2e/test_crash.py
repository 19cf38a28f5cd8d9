"""SIGKILL in every crash window of the pipeline: exactly one transaction per epoch, none missing.

The real `bme-oracle run` process reads two independent regtest nodes at quorum 2:
node A over RPC and ZMQ (``[bitcoind]``), node B, peered with A so both follow one
chain, as an Esplora API (``EsploraFacade``: B's RPC in the Esplora format, in the
test process). Its EVM RPC goes through ``EvmGate``, a proxy in front of a private
anvil. Each trial starts the daemon, mines one retarget on A and kills the daemon with
SIGKILL in one crash window (each window once, and four kills at a random point 0-0.5 s
after mining, in a seeded random order):

* ``before-submit``: the gate holds the gas estimate of a submission: agreed and stored,
  no submission yet;
* ``created``: the gate holds the nonce query that follows the stored submission
  (``eth_getTransactionCount`` "pending" after ``eth_estimateGas``): no transaction yet;
* ``signed``: the gate holds ``eth_sendRawTransaction``: signed and stored, never sent;
* ``sent``: the gate forwards it and holds the answer: on chain, the database says signed;
* ``broadcast``: automine off, the gate holds the first receipt query after the send:
  the transaction waits in the mempool (it is mined while the daemon is down);
* ``broadcast+mined``: the same with automine: mined, the receipt not recorded;
* ``mined``: the gate holds the ``eth_blockNumber`` after a receipt was found: the
  database says mined, not confirmed;
* ``confirmed``: the test polls the database and kills once the epoch just mined is
  confirmed (its publication may or may not be recorded yet).

A kill aimed at one window may land in another (a hold can catch the publication of the
epoch an earlier kill left behind, which the restarted daemon finishes first): what
counts is where it landed.

Where each kill landed is read after it, from the database (the newest submission,
its state and stored transactions, the epoch's retarget status) and the chain (those
transactions mined, pending or unknown), and kept as one ``Landing`` per kill: the
list is printed by every assertion, and must cover every window above, so the test
proves it exercised them. A last run finishes every epoch; then the chain and the
database must agree, and every transaction any sender sent to the contract (read
block by block, not from ReportAccepted events, which a contract may deduplicate)
must be one successful ``submit`` per epoch: no duplicate, reverted or not. None is
legitimate: the signed transaction is stored before its first byte is sent, so a crash
between sending and storing "broadcast" leaves its hash on disk, and the restarted
daemon finds that transaction's receipt instead of sending another; re-sends reuse the
stored bytes or its nonce (a replacement), so at most one of them can be mined. An
abandoned submission (the ``created`` window) never had a transaction stored or sent.

Fast-mined epochs run ahead of the wall clock, so anvil's clock follows the regtest
tip after each mining (the contract refuses headers more than 2 h after its own clock),
and B's clock is kept at A's tip time (B would refuse A's blocks as "time-too-new").
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from oracle.devstack.stack import make_dev_keys
from oracle.publish.contract import OracleContract, connect
from oracle.store.models import Retarget, Submission, SubmissionTx
from oracle.store.repository import open_repository
from tests.e2e.helpers import (
    EvmGate,
    Hold,
    contract_transactions,
    deploy_regtest_oracle,
    evm_rpc,
    follow_tip,
    start_daemon,
    terminate,
    wait_http,
)
from tests.fixtures.anvil import AnvilNode
from tests.fixtures.bitcoind import (
    BitcoindNode,
    EsploraFacade,
    NodeFactory,
    clock_at_least,
    free_port,
    peer,
)

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]
SEED = 20261122
HOLD_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Window:
    """A crash window: where the kill is aimed, and how it gets there."""

    name: str
    hold: Hold | None = None  # the gate stops the daemon at this request
    automine: bool = True  # False: the transaction stays in anvil's mempool


WINDOWS = (
    Window("before-submit", Hold("eth_estimateGas")),
    Window("created", Hold("eth_getTransactionCount", param="pending", after="eth_estimateGas")),
    Window("signed", Hold("eth_sendRawTransaction")),
    Window("sent", Hold("eth_sendRawTransaction", forward=True)),
    Window("broadcast", Hold("eth_getTransactionReceipt", after="eth_sendRawTransaction"), False),
    Window("broadcast+mined", Hold("eth_getTransactionReceipt", after="eth_sendRawTransaction")),
    Window("mined", Hold("eth_blockNumber", after="eth_getTransactionReceipt", after_result=True)),
    Window("confirmed"),
)
#: Kills at a random point 0-0.5 s after mining, wherever they land (recorded too).
ANYWHERE = Window("anywhere")
#: Every window once and four kills anywhere, in a seeded random order (~9 s each).
SCHEDULE = (*WINDOWS, *(ANYWHERE,) * 4)


@dataclass
class Landing:
    """Where one kill landed, read from the database and the chain after it."""

    kill: int
    aimed: str
    trigger: str  # what the test saw just before the kill
    before: str = "-"  # the newest submission just before the kill
    state: str = "?"  # the window it landed in (what ``WINDOWS`` names)
    submission: str = "-"  # the newest submission after it, and where its txs are
    retarget: str = "-"  # the epoch just mined and its status (none: not seen yet)
    contract_txs: int = 0  # mined transactions to the contract so far
    mempool: int = 0  # transactions waiting in anvil's mempool

    def __str__(self) -> str:
        return (
            f"kill {self.kill:2}: aimed {self.aimed:15} landed {self.state:15} "
            f"trigger {self.trigger:34} before {self.before:18} after {self.submission:30} "
            f"mined {self.retarget:13} contract txs {self.contract_txs:2} "
            f"mempool {self.mempool}"
        )


@dataclass
class Journal:
    landings: list[Landing] = field(default_factory=list)

    def __str__(self) -> str:
        return "where each kill landed:\n" + "\n".join(map(str, self.landings))


def write_config(
    path: Path,
    *,
    db_url: str,
    node: BitcoindNode,
    esplora: EsploraFacade,
    evm_url: str,
    address: str,
    keys: Any,
    port: int,
) -> None:
    signers = ", ".join(f'"{p}"' for p in keys.signers)
    path.write_text(
        f'[network]\nname = "regtest"\n'
        f'[database]\nurl = "{db_url}"\n'
        f'[bitcoind]\nurl = "{node.url}"\nrpc_user = "{node.user}"\n'
        f'zmq_hashblock = "{node.zmq_url}"\npoll_interval_s = 1.0\n'
        f'[[sources]]\nname = "esplora-b"\nkind = "esplora"\nbase_url = "{esplora.url}"\n'
        f"poll_interval_s = 0.5\nrate_limit_per_s = 200.0\nmax_retries = 5\n"
        f"[crosscheck]\nquorum = 2\nconfirmations = 0\nuse_checkpoints = false\n"
        f'[publisher]\nenabled = true\nrpc_url = "{evm_url}"\nchain_id = 31337\n'
        f'contract_address = "{address}"\nkeystore_files = [{signers}]\n'
        f'keystore_password_file = "{keys.password_file}"\nsender_keystore_file = "{keys.sender}"\n'
        f"replace_after_s = 5.0\nreceipt_timeout_s = 60.0\n"
        f'[api]\nport = {port}\n[logging]\nformat = "json"\nlevel = "warning"\n'
    )


def tx_place(evm_url: str, tx_hash: str) -> str:
    """Where the EVM node has a transaction: "mined", "pending" (mempool) or "unknown"."""
    tx = evm_rpc(evm_url, "eth_getTransactionByHash", tx_hash)
    if tx is None:
        return "unknown"
    return "pending" if tx.get("blockNumber") is None else "mined"


class Observer:
    """Reads the database and the chain around each kill (never through the gate)."""

    def __init__(self, db_url: str, evm_url: str, address: str) -> None:
        self.engine = create_async_engine(db_url, pool_pre_ping=True)
        self.evm_url = evm_url
        self.address = address
        self.scanned = 0
        self.contract_txs = 0

    async def submissions(self) -> list[tuple[Any, list[str]]]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Submission.id, Submission.epoch, Submission.state)
                    .where(Submission.contract_address == self.address.lower())
                    .order_by(Submission.id)
                )
            ).all()
            txs = (
                await conn.execute(
                    select(SubmissionTx.submission_id, SubmissionTx.tx_hash).order_by(
                        SubmissionTx.id
                    )
                )
            ).all()
        by_id: dict[int, list[str]] = {}
        for submission_id, tx_hash in txs:
            by_id.setdefault(submission_id, []).append(tx_hash)
        return [(row, by_id.get(row.id, [])) for row in rows]

    async def retarget_status(self, epoch: int) -> str:
        async with self.engine.connect() as conn:
            statuses = (
                await conn.execute(
                    select(Retarget.status).where(
                        Retarget.network == "regtest", Retarget.epoch == epoch
                    )
                )
            ).scalars()
            return "/".join(sorted(statuses)) or "none"

    async def newest(self) -> str:
        """The newest submission in short: its epoch, state and stored transactions."""
        rows = await self.submissions()
        if not rows:
            return "none"
        row, hashes = rows[-1]
        return f"e{row.epoch} {row.state} {len(hashes)} tx"

    async def confirmed(self, epoch: int) -> bool:
        rows = await self.submissions()
        return any(row.epoch == epoch and row.state == "confirmed" for row, _ in rows)

    def count_contract_txs(self) -> int:
        self.contract_txs += len(contract_transactions(self.evm_url, self.address, self.scanned))
        self.scanned = int(evm_rpc(self.evm_url, "eth_blockNumber"), 16) + 1
        return self.contract_txs

    async def landing(self, landing: Landing, epoch: int) -> Landing:
        """Fill in where the kill landed (the daemon is dead: nothing moves any more)."""
        submissions = await self.submissions()
        landing.retarget = f"e{epoch} {await self.retarget_status(epoch)}"
        landing.contract_txs = self.count_contract_txs()
        landing.mempool = int(evm_rpc(self.evm_url, "txpool_status")["pending"], 16)
        if not submissions:
            landing.state = "before-submit"
            return landing
        row, hashes = submissions[-1]
        places = [tx_place(self.evm_url, h) for h in hashes]
        landing.submission = f"e{row.epoch} {row.state} txs {','.join(places) or 'none'}"
        on_chain = "mined" in places
        waiting = "pending" in places
        if row.state in ("confirmed", "abandoned", "failed", "reverted") and row.epoch < epoch:
            landing.state = "before-submit"  # the last one is done; this epoch has none yet
        elif row.state == "signed":
            landing.state = "created" if not hashes else "sent" if on_chain or waiting else "signed"
        elif row.state == "broadcast":
            landing.state = (
                "broadcast+mined" if on_chain else "broadcast" if waiting else "broadcast-lost"
            )
        else:
            landing.state = str(row.state)
        return landing

    async def close(self) -> None:
        await self.engine.dispose()


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def two_nodes(bitcoind_factory: NodeFactory) -> Iterator[tuple[BitcoindNode, BitcoindNode]]:
    """Node A (mined on, listening) and node B, peered with A."""
    a = bitcoind_factory(listen=True)
    b = bitcoind_factory()
    peer(b, a)
    yield a, b


def mine_epoch(a: BitcoindNode, b: BitcoindNode, evm_url: str) -> int:
    """One more retarget on A; B follows it over P2P; anvil's clock follows the tip."""
    tip_time = int(a.rpc("getblockheader", a.rpc("getbestblockhash"))["time"])
    clock_at_least(b, tip_time + 600)  # ~336 s of block times per fast-mined epoch
    a.mine(2016)
    follow_tip(a, evm_url)
    return a.height() // 2016


async def test_sigkill_in_every_crash_window(
    two_nodes: tuple[BitcoindNode, BitcoindNode],
    anvil_factory: Callable[..., AnvilNode],
    pg_url: str,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    schedule = list(SCHEDULE)
    rng.shuffle(schedule)
    a, b = two_nodes
    anvil = anvil_factory()
    keys = make_dev_keys(tmp_path / "keys")
    address = await deploy_regtest_oracle(anvil.url, keys, a)
    port = free_port()
    config = tmp_path / "oracle.toml"
    env = {"ORACLE_BITCOIND__RPC_PASSWORD": a.password}
    journal = Journal()
    observer = Observer(pg_url, anvil.url, address)
    with EsploraFacade(b) as esplora, EvmGate(anvil.url) as gate:
        write_config(
            config,
            db_url=pg_url,
            node=a,
            esplora=esplora,
            evm_url=gate.url,
            address=address,
            keys=keys,
            port=port,
        )
        try:
            for number, window in enumerate(schedule, 1):
                await one_trial(number, window, rng, a, b, anvil, gate, observer, config, env,
                                port, journal)  # fmt: skip
            last_epoch = a.height() // 2016
            assert last_epoch == len(schedule), journal
            await finish(config, env, port, observer, last_epoch, journal)
            await check_everything(a, anvil, address, pg_url, last_epoch, journal)
        finally:
            await observer.close()
    landed = {landing.state for landing in journal.landings}
    missing = {w.name for w in WINDOWS} - landed
    assert not missing, f"no kill landed in {sorted(missing)}; {journal}"
    print(journal)


async def one_trial(
    number: int,
    window: Window,
    rng: random.Random,
    a: BitcoindNode,
    b: BitcoindNode,
    anvil: AnvilNode,
    gate: EvmGate,
    observer: Observer,
    config: Path,
    env: dict[str, str],
    port: int,
    journal: Journal,
) -> None:
    with start_daemon(config, env) as proc:  # closes its output pipe on the way out
        landing = Landing(kill=number, aimed=window.name, trigger="?")
        epoch = a.height() // 2016 + 1
        mining: asyncio.Future[int] | None = None
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc, timeout_s=60)
            if window.hold is not None:
                gate.arm(window.hold)
            if not window.automine:
                evm_rpc(anvil.url, "evm_setAutomine", False)
            mining = asyncio.ensure_future(asyncio.to_thread(mine_epoch, a, b, anvil.url))
            if window.hold is not None:
                if await asyncio.to_thread(gate.held.wait, HOLD_TIMEOUT_S):
                    held = gate.held_request or {}
                    landing.trigger = f"held {held.get('method')}"
                else:
                    landing.trigger = f"nothing held in {HOLD_TIMEOUT_S} s"
            elif window.name == "confirmed":

                async def confirmed() -> bool:
                    return await observer.confirmed(epoch)

                landing.trigger = await poll(confirmed, f"epoch {epoch} confirmed")
            else:
                await mining
                delay = rng.uniform(0.0, 0.5)
                await asyncio.sleep(delay)  # a random point, by design (not a wait)
                landing.trigger = f"{delay:.3f} s after mining"
            landing.before = await observer.newest()
        finally:
            kill(proc)
            gate.release()
            try:
                if mining is not None:
                    assert await mining == epoch
                journal.landings.append(await observer.landing(landing, epoch))
            finally:
                if not window.automine:  # the waiting transaction lands while it is down
                    evm_rpc(anvil.url, "evm_setAutomine", True)
                    evm_rpc(anvil.url, "evm_mine")


async def poll(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = HOLD_TIMEOUT_S
) -> str:
    """Poll an async predicate every 10 ms; ``what`` once true, else that it was not seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return what
        await asyncio.sleep(0.01)  # polling the condition, not a blind wait
    return f"not seen in {timeout_s} s: {what}"


async def finish(
    config: Path,
    env: dict[str, str],
    port: int,
    observer: Observer,
    last_epoch: int,
    journal: Journal,
) -> None:
    """A last run publishes every epoch and leaves no submission live."""

    async def all_published() -> bool:
        for epoch in range(last_epoch + 1):
            if await observer.retarget_status(epoch) != "published":
                return False
        rows = await observer.submissions()
        return not [r for r, _ in rows if r.state in ("signed", "broadcast", "mined")]

    with start_daemon(config, env) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc, timeout_s=60)
            seen = await poll(all_published, "every epoch published", timeout_s=120)
            assert seen == "every epoch published", f"{seen} after the crashes; {journal}"
        finally:
            assert terminate(proc) == 0, journal


async def check_everything(
    a: BitcoindNode,
    anvil: AnvilNode,
    address: str,
    pg_url: str,
    last_epoch: int,
    journal: Journal,
) -> None:
    w3 = connect(anvil.url)
    repo = await open_repository(pg_url)
    try:
        contract = OracleContract(w3, address)
        # Every transaction any sender sent to the contract, reverted ones included.
        sent = contract_transactions(anvil.url, address)
        described = [f"block {t.block} nonce {t.nonce} status {t.status}" for t in sent]
        assert all(t.status == 1 for t in sent), f"reverted: {described}; {journal}"
        epochs: list[int] = []
        for t in sent:
            function, args = contract.contract.decode_function_input(t.input)
            assert function.fn_name == "submit", (function.fn_name, journal)
            report = next(iter(args.values()))
            epochs.append(int(report["epoch"] if isinstance(report, dict) else report[0]))
        doubles = {e: n for e, n in Counter(epochs).items() if n > 1}
        assert not doubles, f"epochs sent more than once: {doubles}; {described}; {journal}"
        assert sorted(epochs) == list(range(1, last_epoch + 1)), (epochs, journal)
        assert evm_rpc(anvil.url, "txpool_status")["pending"] == "0x0", journal

        logs = await contract.contract.events.ReportAccepted().get_logs(from_block=0)
        assert sorted(int(e["args"]["epoch"]) for e in logs) == list(range(1, last_epoch + 1))
        for epoch in range(last_epoch + 1):
            record = await repo.get_retarget("regtest", epoch)
            on_chain = await contract.retarget(epoch)
            assert record is not None and record.status == "published", (epoch, journal)
            assert on_chain is not None and on_chain.block_hash_hex == record.block_hash_hex
            assert record.block_hash_hex == a.rpc("getblockhash", epoch * 2016)
            if epoch > 0:
                assert record.last_header is not None  # the proof's first half
                # quorum 2 of two independent nodes: both agreed on every epoch
                assert set(record.sources) == {"bitcoind", "esplora-b"}, (epoch, record.sources)
            submission = await repo.submission_for_epoch(31337, address, epoch)
            if submission is not None:  # an epoch found on chain by reconcile may have none
                assert submission.state == "confirmed", (epoch, submission.state, journal)
                assert submission.function == "submit"
    finally:
        await repo.close()
        await w3.provider.disconnect()  # type: ignore[attr-defined]
    # Every other submission was abandoned before any transaction of it was stored.
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(Submission.id, Submission.epoch, Submission.state).where(
                        Submission.contract_address == address.lower()
                    )
                )
            ).all()
            with_txs = set(
                (await conn.execute(select(SubmissionTx.submission_id).distinct())).scalars()
            )
    finally:
        await engine.dispose()
    per_epoch = Counter(r.epoch for r in rows if r.state == "confirmed")
    assert all(n == 1 for n in per_epoch.values()), (per_epoch, journal)
    others = [(r.id, r.epoch, r.state) for r in rows if r.state != "confirmed"]
    assert all(state == "abandoned" for _, _, state in others), (others, journal)
    assert not [o for o in others if o[0] in with_txs], (others, journal)
