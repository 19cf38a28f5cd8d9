"""Several independent operators: three oracle nodes, one contract, one report per epoch.

Real processes throughout: one regtest bitcoind (plus a second one on its own
chain for the lying-source test), one anvil with a DifficultyOracle (v2,
regtest mode, anchored at the regtest genesis: epoch 0 needs no report) of
three signers and threshold 2, and three daemons, each with its own Postgres
database, its own signer key, its own sender key and its own API. The first
two tests run real ``bme-oracle run`` subprocesses (one is SIGKILLed); the
others run the same ``Service`` in-process so the test can look inside
(peer backoff state) and serve fake peers from the same event loop.

A node's report for epoch e is submitted first by the operator of
``sorted(signers)[e % 3]``; the others wait ``submit_delay_s`` each in turn. The
same exchange carries the replacement of a published epoch orphaned by a reorg.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from eth_account import Account

from oracle import config as config_module
from oracle.monitor.alerts import webhook_label
from oracle.publish.contract import OracleContract, connect, deploy_oracle
from oracle.publish.signing import (
    KeystoreAccount,
    Report,
    load_keystore,
    recover_signer,
)
from oracle.service import Service
from oracle.store import migrate
from oracle.store.repository import open_repository
from tests.e2e.helpers import (
    BIN,
    WebhookReceiver,
    node_source,
    regtest_genesis,
    running,
    wait_for,
)
from tests.fixtures.anvil import KEYSTORE_PASSWORD, AnvilNode, fund, make_keystores
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory, free_port
from tests.fixtures.postgres import create_database, drop_database, sqlalchemy_url

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]

CHAIN_ID = 31337
THRESHOLD = 2
LIAR_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
#: Governance delay of the cluster's contract (the signer rotation test waits it out).
GOVERNANCE_DELAY_S = 60


# ---------------------------------------------------------------- the cluster


@dataclass
class Operator:
    """One independent operator: keys, database, API port and (once started) its daemon."""

    name: str
    signer: KeystoreAccount
    signer_keystore: Path
    sender: KeystoreAccount
    sender_keystore: Path
    db_name: str
    api_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    service: Service | None = None

    @property
    def db_url(self) -> str:
        return sqlalchemy_url(self.db_name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"


@dataclass
class Cluster:
    """Three operators sharing one bitcoind and one contract (threshold 2 of 3)."""

    bitcoind: BitcoindNode
    anvil: AnvilNode
    contract_address: str
    operators: list[Operator]
    password_file: Path
    workdir: Path
    oracle: OracleContract
    owner: KeystoreAccount
    extra_peers: list[str] = field(default_factory=list)

    def by_signer(self, address: str) -> Operator:
        return next(op for op in self.operators if op.signer.address == address)

    def designated(self, epoch: int, rank: int = 0) -> Operator:
        signers = sorted((op.signer.address for op in self.operators), key=lambda a: int(a, 16))
        return self.by_signer(signers[(epoch + rank) % len(signers)])

    def config_text(
        self,
        op: Operator,
        *,
        peers: Sequence[str] | None = None,
        quorum: int = 1,
        submit_delay_s: float = 2.0,
        poll_interval_s: float = 0.25,
        webhooks: Sequence[str] = (),
    ) -> str:
        if peers is None:
            peers = [o.url for o in self.operators if o is not op] + self.extra_peers
        node = self.bitcoind
        return f"""
[network]
name = "regtest"
[database]
url = "{op.db_url}"
write_retry_s = 30.0
[bitcoind]
url = "{node.url}"
rpc_user = "{node.user}"
zmq_hashblock = "{node.zmq_url}"
poll_interval_s = 1.0
timeout_s = 5.0
[crosscheck]
quorum = {quorum}
confirmations = 0
use_checkpoints = false
[publisher]
enabled = true
rpc_url = "{self.anvil.url}"
chain_id = {CHAIN_ID}
contract_address = "{self.contract_address}"
keystore_files = ["{op.signer_keystore}"]
keystore_password_file = "{self.password_file}"
sender_keystore_file = "{op.sender_keystore}"
replace_after_s = 10.0
receipt_confirmations = 1
receipt_timeout_s = 60.0
[peers]
urls = {json.dumps(list(peers))}
poll_interval_s = {poll_interval_s}
timeout_s = 1.0
max_response_bytes = 65536
submit_delay_s = {submit_delay_s}
[api]
host = "127.0.0.1"
port = {op.api_port}
[monitor]
webhooks = {json.dumps(list(webhooks))}
alert_min_interval_s = 0.5
webhook_retries = 1
[logging]
format = "json"
level = "info"
[service]
shutdown_timeout_s = 5.0
"""

    def write_config(self, op: Operator, **options: Any) -> Path:
        path = self.workdir / f"{op.name}.toml"
        path.write_text(self.config_text(op, **options), encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        return {"ORACLE_BITCOIND__RPC_PASSWORD": self.bitcoind.password}

    def start_process(self, op: Operator, **options: Any) -> None:
        """``bme-oracle run`` for ``op`` (output to a file: a full pipe would block it)."""
        path = self.write_config(op, **options)
        import os

        with op.log_path.open("ab") as log_file:
            op.proc = subprocess.Popen(
                [str(BIN), "run", "--config", str(path)],
                env={**os.environ, **self.env()},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def service(
        self, op: Operator, *, extra_sources: Sequence[Any] = (), **options: Any
    ) -> Service:
        """The same daemon in-process (its configuration read from the same TOML)."""
        path = self.write_config(op, **options)
        config = config_module.load(path, self.env())
        op.service = Service(config, extra_sources=list(extra_sources))
        return op.service

    def stop_processes(self) -> None:
        for op in self.operators:
            proc, op.proc = op.proc, None
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {op.name}\n{op.log_path.read_text(errors='replace')[-3000:]}"
            for op in self.operators
            if op.log_path.exists()
        )

    # -- reading the outcome ------------------------------------------------------------------

    async def accepted(self, event: str = "ReportAccepted") -> dict[int, list[Any]]:
        """Every ReportAccepted (or ``event``) event of the contract, by epoch."""
        logs = await getattr(self.oracle.contract.events, event)().get_logs(from_block=0)
        found: dict[int, list[Any]] = {}
        for entry in logs:
            found.setdefault(int(entry["args"]["epoch"]), []).append(entry)
        return found

    async def contract_transactions(self) -> list[Any]:
        """Every transaction sent to the contract (anvil mines one block per transaction)."""
        w3 = self.oracle.w3
        found = []
        for number in range(await w3.eth.block_number + 1):
            block = await w3.eth.get_block(number, full_transactions=True)
            found += [tx for tx in block["transactions"] if tx["to"] == self.contract_address]
        return found

    async def on_chain(self, epoch: int) -> bool:
        return await self.oracle.retarget(epoch) is not None

    async def submission(self, epoch: int, event: str = "ReportAccepted") -> tuple[str, list[str]]:
        """(sender, signers) of the one transaction that stored (or replaced) ``epoch``."""
        (entry,) = (await self.accepted(event))[epoch]
        tx = await self.oracle.w3.eth.get_transaction(entry["transactionHash"])
        _fn, args = self.oracle.contract.decode_function_input(tx["input"])
        fields = args["report"]
        if not isinstance(fields, dict):
            names = ("epoch", "blockHash", "bits", "time", "configVersion")
            fields = dict(zip(names, fields, strict=True))
        report = Report(
            epoch=int(fields["epoch"]),
            block_hash_hex=bytes(fields["blockHash"]).hex(),
            bits=int(fields["bits"]),
            time=int(fields["time"]),
            config_version=int(fields["configVersion"]),
        )
        packed = bytes(args["signatures"])
        signers = [
            recover_signer(
                report,
                packed[i : i + 65],
                chain_id=CHAIN_ID,
                contract_address=self.contract_address,
            )
            for i in range(0, len(packed), 65)
        ]
        return str(tx["from"]), signers

    async def database_status(self, op: Operator, epoch: int) -> tuple[str | None, str | None]:
        repository = await open_repository(op.db_url)
        try:
            record = await repository.get_retarget("regtest", epoch)
            if record is None:
                return None, None
            return record.status, record.block_hash_hex
        finally:
            await repository.close()

    async def attestations(self, op: Operator, epoch: int) -> list[Any]:
        repository = await open_repository(op.db_url)
        try:
            return await repository.attestations_for_epoch(CHAIN_ID, self.contract_address, epoch)
        finally:
            await repository.close()


async def make_cluster(node: BitcoindNode, anvil: AnvilNode, workdir: Path) -> Cluster:
    """Keys, a funded contract (3 signers, threshold 2) and three migrated databases.

    Shared with ``benchmarks/bench_multinode.py``; ``close_cluster`` undoes it."""
    paths = make_keystores(workdir / "keys", 7)
    password_file = workdir / "keys" / "password"
    password_file.write_text(KEYSTORE_PASSWORD, encoding="utf-8")
    accounts = [load_keystore(path, KEYSTORE_PASSWORD) for path in paths]
    deployer = accounts[0]
    for account in (deployer, *accounts[4:]):
        fund(anvil.url, account.address)
    w3 = connect(anvil.url)
    address = await deploy_oracle(
        w3,
        deployer,
        owner=deployer.address,
        signers=sorted((a.address for a in accounts[1:4]), key=lambda a: int(a, 16)),
        threshold=THRESHOLD,
        network="regtest",
        genesis=regtest_genesis(node),
        governance_delay_s=GOVERNANCE_DELAY_S,
        max_fee_wei=100 * 10**9,
        priority_fee_wei=10**9,
    )
    first = await create_database()
    await migrate.upgrade(sqlalchemy_url(first))  # once; the others are copies of it
    names = [first, *[await create_database(template=first) for _ in range(2)]]
    operators = [
        Operator(
            name=f"op{i}",
            signer=accounts[1 + i],
            signer_keystore=paths[1 + i],
            sender=accounts[4 + i],
            sender_keystore=paths[4 + i],
            db_name=names[i],
            api_port=free_port(),
            workdir=workdir,
        )
        for i in range(3)
    ]
    return Cluster(
        bitcoind=node,
        anvil=anvil,
        contract_address=address,
        operators=operators,
        password_file=password_file,
        workdir=workdir,
        oracle=OracleContract(w3, address),
        owner=deployer,
    )


async def close_cluster(cluster: Cluster) -> None:
    cluster.stop_processes()
    await cluster.oracle.w3.provider.disconnect()  # type: ignore[attr-defined]
    for op in cluster.operators:
        await drop_database(op.db_name)


@pytest_asyncio.fixture
async def cluster(
    bitcoind_factory: NodeFactory,
    anvil_factory: Callable[..., AnvilNode],
    tmp_path: Path,
) -> AsyncIterator[Cluster]:
    """A fresh bitcoind, anvil, contract (3 signers, threshold 2) and three operators."""
    world = await make_cluster(bitcoind_factory(), anvil_factory(), tmp_path)
    try:
        yield world
    finally:
        await close_cluster(world)


async def _wait_http(op: Operator, cluster: Cluster, timeout_s: float = 60.0) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if op.proc is not None and op.proc.poll() is not None:
                raise AssertionError(f"{op.name} exited {op.proc.returncode}\n{cluster.logs()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{op.url}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{op.name} API did not answer\n{cluster.logs()}")


async def _get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


async def _published_everywhere(cluster: Cluster, epoch: int, ops: Sequence[Operator]) -> bool:
    for op in ops:
        status, _hash = await cluster.database_status(op, epoch)
        if status != "published":
            return False
    return True


def _block_hash(node: BitcoindNode, epoch: int) -> str:
    return str(node.rpc("getblockhash", epoch * 2016))


# ---------------------------------------------------------------- tests: real processes


async def test_three_daemons_publish_each_epoch_once_with_two_of_three(cluster: Cluster) -> None:
    for op in cluster.operators:
        cluster.start_process(op)
    await asyncio.gather(*(_wait_http(op, cluster) for op in cluster.operators))
    try:
        # Epoch 0 is the contract's genesis: on chain from the start, recorded by each node.
        await wait_for(
            lambda: _published_everywhere(cluster, 0, cluster.operators), 30, "epoch 0 recorded"
        )
        before = len(await cluster.contract_transactions())
        await asyncio.to_thread(cluster.bitcoind.mine, 2016)
        await wait_for(lambda: cluster.on_chain(1), 60, "epoch 1 on chain")
        await wait_for(
            lambda: _published_everywhere(cluster, 1, cluster.operators), 30, "epoch 1 recorded"
        )
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    accepted = await cluster.accepted()
    assert sorted(accepted) == [1] and all(len(v) == 1 for v in accepted.values()), accepted
    signer_set = {op.signer.address for op in cluster.operators}
    for op in cluster.operators:  # nobody signs the genesis
        status, body = await _get_json(f"{op.url}/v1/attestations/0")
        assert status == 200 and body["attestations"] == [], body
    on_chain = await cluster.oracle.retarget(1)
    assert on_chain is not None and on_chain.block_hash_hex == _block_hash(cluster.bitcoind, 1)
    sender, signers = await cluster.submission(1)
    # the designated operator submitted at once, with exactly threshold signatures
    assert sender == cluster.designated(1).sender.address
    assert len(signers) == THRESHOLD and set(signers) <= signer_set
    assert signers == sorted(signers, key=lambda a: int(a, 16))
    # every node serves its own signature, and only that, over the agreed report
    for op in cluster.operators:
        status, body = await _get_json(f"{op.url}/v1/attestations/1")
        assert status == 200, body
        (item,) = body["attestations"]
        assert item["signer"] == op.signer.address
        assert item["report"]["block_hash_hex"] == on_chain.block_hash_hex
        assert item["report"]["config_version"] == 1
        assert "key" not in json.dumps(body).lower()
    # the waiting operators stopped once the contract had the epoch: after all their turns,
    # the contract has received exactly one transaction for epoch 1 (nobody paid gas twice)
    await asyncio.sleep(2 * 2.0 + 1)
    assert len(await cluster.contract_transactions()) == before + 1
    cluster.stop_processes()
    for op in cluster.operators:
        text = op.log_path.read_text()
        assert KEYSTORE_PASSWORD not in text and cluster.bitcoind.password not in text


async def test_designated_submitter_killed_before_submitting(cluster: Cluster) -> None:
    """The designated operator of epoch 1 signs, serves its signature, and is SIGKILLed.

    It polls only an unreachable peer, so it can never hold the threshold itself and
    cannot submit before it dies; the next operator in turn submits after its delay."""
    delay_s = 3.0
    doomed = cluster.designated(1)
    second = cluster.designated(1, rank=1)
    third = cluster.designated(1, rank=2)
    dead_peer = f"http://127.0.0.1:{free_port()}"
    for op in cluster.operators:
        peers = [dead_peer] if op is doomed else None
        cluster.start_process(op, peers=peers, submit_delay_s=delay_s)
    await asyncio.gather(*(_wait_http(op, cluster) for op in cluster.operators))
    await wait_for(lambda: _published_everywhere(cluster, 0, cluster.operators), 60, "epoch 0")
    before = len(await cluster.contract_transactions())

    async def doomed_signed() -> bool:
        _status, body = await _get_json(f"{doomed.url}/v1/attestations/1")
        return bool(body.get("attestations"))

    await asyncio.to_thread(cluster.bitcoind.mine, 2016)
    mined_at = time.monotonic()
    await wait_for(doomed_signed, 30, "the designated submitter signed epoch 1")

    async def collected_from_doomed() -> bool:
        collected = await cluster.attestations(second, 1)
        return doomed.signer.address.lower() in {a.signer for a in collected}

    await wait_for(collected_from_doomed, 30, "its signature collected by the next operator")
    assert not await cluster.on_chain(1)  # nobody has submitted yet
    assert doomed.proc is not None
    doomed.proc.send_signal(signal.SIGKILL)
    doomed.proc.wait()
    try:
        await wait_for(lambda: cluster.on_chain(1), 60, "epoch 1 on chain")
    except AssertionError:
        raise AssertionError(cluster.logs()) from None
    landed_after_s = time.monotonic() - mined_at
    accepted = await cluster.accepted()
    assert len(accepted[1]) == 1, accepted
    sender, signers = await cluster.submission(1)
    assert sender == second.sender.address, "the next operator in turn submitted"
    assert landed_after_s >= delay_s * 0.9
    assert len(signers) == THRESHOLD
    await wait_for(
        lambda: _published_everywhere(cluster, 1, [second, third]), 30, "recorded by the others"
    )
    await asyncio.sleep(delay_s + 1)  # the third operator's turn passes: still one report
    assert len((await cluster.accepted())[1]) == 1
    assert len(await cluster.contract_transactions()) == before + 1  # one for epoch 1


# ---------------------------------------------------------------- tests: in-process daemons


async def test_node_with_a_lying_source_does_not_sign_the_others_publish(
    cluster: Cluster, bitcoind_factory: NodeFactory
) -> None:
    liar = bitcoind_factory()
    honest_a, honest_b, lying = cluster.operators
    services = [
        cluster.service(honest_a, submit_delay_s=1.0),
        cluster.service(honest_b, submit_delay_s=1.0),
        cluster.service(
            lying,
            quorum=2,
            submit_delay_s=1.0,
            extra_sources=[node_source(liar, "liar")],
        ),
    ]
    async with running(services[0]), running(services[1]), running(services[2]):
        await wait_for(lambda: _published_everywhere(cluster, 0, cluster.operators), 60, "epoch 0")
        await asyncio.to_thread(liar.mine, 2016 + 2, LIAR_ADDRESS)
        await asyncio.to_thread(cluster.bitcoind.mine, 2016)
        await wait_for(lambda: cluster.on_chain(1), 60, "epoch 1 on chain without the liar")
        await wait_for(
            lambda: _published_everywhere(cluster, 1, [honest_a, honest_b]), 30, "published"
        )
        disputes = await services[2].repository.list_disagreements("regtest", epoch=1)
        assert disputes, "the lying node saw its sources disagree"
        assert await services[2].repository.get_retarget("regtest", 1) is None or (
            (await services[2].repository.get_retarget("regtest", 1)).status  # type: ignore[union-attr]
            not in {"agreed", "published"}
        )
        status, body = await _get_json(f"{lying.url}/v1/attestations/1")
        assert status == 200 and body["attestations"] == []
    honest = _block_hash(cluster.bitcoind, 1)
    lie = str(liar.rpc("getblockhash", 2016))
    assert honest != lie
    on_chain = await cluster.oracle.retarget(1)
    assert on_chain is not None and on_chain.block_hash_hex == honest
    accepted = await cluster.accepted()
    assert len(accepted[1]) == 1
    _sender, signers = await cluster.submission(1)
    assert lying.signer.address not in signers
    for op in cluster.operators:  # no wrong value anywhere: no database, no signature
        status_value, block = await cluster.database_status(op, 1)
        if status_value in {"agreed", "published"}:
            assert block == honest
        for attestation in await cluster.attestations(op, 1):
            assert attestation.report["block_hash_hex"] == honest


class FakePeer:
    """A small HTTP peer speaking the attestation format, with a chosen behaviour."""

    def __init__(self, behaviour: Callable[[web.Request], Any]) -> None:
        self._behaviour = behaviour
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.requests = 0

    async def __aenter__(self) -> FakePeer:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.requests += 1
            return await self._behaviour(request)

        app = web.Application()
        app.router.add_get("/v1/attestations/{epoch}", handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def _signing_peer(
    cluster: Cluster, key: KeystoreAccount, *, forge: bool, claim: str | None = None
) -> Callable[[web.Request], Any]:
    """Serves ``key``'s signature over the real report of the epoch, or (``forge``) over one
    whose block hash is not the real one; ``claim`` names another signer than ``key``."""

    async def behave(request: web.Request) -> web.Response:
        epoch = int(request.match_info["epoch"])
        real = await asyncio.to_thread(_block_hash, cluster.bitcoind, epoch)
        header = await asyncio.to_thread(cluster.bitcoind.rpc, "getblockheader", real)
        report = Report(
            epoch=epoch,
            block_hash_hex=real[:-1] + ("0" if real[-1] != "0" else "1") if forge else real,
            bits=int(header["bits"], 16),
            time=int(header["time"]),
            config_version=await cluster.oracle.config_version(),
        )
        signature = key.sign_report(
            report, chain_id=CHAIN_ID, contract_address=cluster.contract_address
        )
        body = {
            "epoch": epoch,
            "chain_id": CHAIN_ID,
            "contract_address": cluster.contract_address,
            "attestations": [
                {
                    "signer": claim or key.address,
                    "report": report.as_dict(),
                    "signature": "0x" + signature.signature.hex(),
                }
            ],
        }
        return web.json_response(body)

    return behave


async def test_a_peer_signing_a_forged_report_is_detected_and_the_honest_report_lands(
    cluster: Cluster,
) -> None:
    honest_a, honest_b, forging = cluster.operators
    async with (
        WebhookReceiver() as hooks,
        FakePeer(_signing_peer(cluster, forging.signer, forge=True)) as forger,
    ):
        services = [
            cluster.service(
                op,
                peers=[other.url, forger.url],
                submit_delay_s=1.0,
                webhooks=[hooks.url],
            )
            for op, other in ((honest_a, honest_b), (honest_b, honest_a))
        ]
        async with running(services[0]), running(services[1]):
            await wait_for(
                lambda: _published_everywhere(cluster, 0, [honest_a, honest_b]), 60, "epoch 0"
            )
            await asyncio.to_thread(cluster.bitcoind.mine, 2016)
            await wait_for(lambda: cluster.on_chain(1), 60, "epoch 1 on chain")

            async def conflict_alert() -> bool:
                return "peer_conflict" in hooks.kinds()

            await wait_for(conflict_alert, 30, "peer_conflict alert")
            # The alert may come from either honest node (whichever polled the forger first);
            # wait until one of them has stored the evidence, then read it there.
            found: list[tuple[Any, dict[str, Any]]] = []

            async def evidence_stored() -> bool:
                for node in (honest_a, honest_b):
                    status, body = await _get_json(
                        f"{node.url}/v1/disagreements?kind=conflicting_attestation"
                    )
                    if status == 200 and body["disagreements"]:
                        found.append((node, body))
                        return True
                return False

            await wait_for(evidence_stored, 30, "conflicting_attestation stored")
            witness, body = found[0]
            evidence = body["disagreements"][0]["evidence"]
            assert evidence["signer"].lower() == forging.signer.address.lower()
            signed = {item["report"]["signer"].lower(): item for item in evidence["reports"]}
            assert set(signed) == {forging.signer.address.lower(), witness.signer.address.lower()}
            for item in evidence["reports"]:  # both signed reports, each verifiable
                report = Report.from_dict(item["report"])
                recovered = recover_signer(
                    report,
                    bytes.fromhex(item["signature"][2:]),
                    chain_id=CHAIN_ID,
                    contract_address=cluster.contract_address,
                )
                assert recovered.lower() == item["report"]["signer"].lower()
            _status, metrics = await _text(f"{witness.url}/metrics")
            assert "bme_oracle_peer_conflicts_total" in metrics
    on_chain = await cluster.oracle.retarget(1)
    assert on_chain is not None
    assert on_chain.block_hash_hex == _block_hash(cluster.bitcoind, 1)
    _sender, signers = await cluster.submission(1)
    assert forging.signer.address not in signers
    for op in (honest_a, honest_b):  # the forged signature was never kept
        for attestation in await cluster.attestations(op, 1):
            assert attestation.report["block_hash_hex"] == on_chain.block_hash_hex
    assert all(len(v) == 1 for v in (await cluster.accepted()).values())


async def _text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def test_peers_down_slow_garbage_or_oversized_do_not_disturb_the_others(
    cluster: Cluster,
) -> None:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.json_response({})

    async def garbage(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x00not json{", content_type="application/json")

    async def wrong_shape(_request: web.Request) -> web.Response:
        return web.json_response({"attestations": "nope", "epoch": "x"})

    async def oversized(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap is enforced while reading
        await response.prepare(request)
        for _ in range(64):
            await response.write(b" " * 16_384)
        await response.write_eof()
        return response

    dead = f"http://127.0.0.1:{free_port()}"
    outsider = KeystoreAccount(bytes(Account.create().key))  # not a signer of the contract
    claimed = cluster.operators[0].signer.address
    async with (
        FakePeer(slow) as slow_peer,
        FakePeer(garbage) as garbage_peer,
        FakePeer(wrong_shape) as shape_peer,
        FakePeer(oversized) as big_peer,
        FakePeer(_signing_peer(cluster, outsider, forge=True)) as stranger,
        FakePeer(_signing_peer(cluster, outsider, forge=False, claim=claimed)) as impostor,
    ):
        bad = [dead, slow_peer.url, garbage_peer.url, shape_peer.url, big_peer.url]
        cluster.extra_peers = [*bad, stranger.url, impostor.url]
        services = [cluster.service(op, submit_delay_s=1.0) for op in cluster.operators]
        async with running(services[0]), running(services[1]), running(services[2]):
            await wait_for(
                lambda: _published_everywhere(cluster, 0, cluster.operators), 60, "epoch 0"
            )
            await asyncio.to_thread(cluster.bitcoind.mine, 2016)
            mined_at = time.monotonic()
            await wait_for(lambda: cluster.on_chain(1), 30, "epoch 1 on chain")
            landed_s = time.monotonic() - mined_at
            await wait_for(
                lambda: _published_everywhere(cluster, 1, cluster.operators), 30, "published"
            )

            async def bad_peers_noted() -> bool:  # the slow one only after its 1 s timeout
                return all(
                    peer.failures > 0 or peer.next_try_at > 0
                    for service in services
                    for peer in service.publisher.coordinator.client.peers
                    if peer.url in bad
                )

            await wait_for(bad_peers_noted, 10, "every bad peer noted by every node")
            for service in services:
                peers = {p.url: p for p in service.publisher.coordinator.client.peers}
                for op in cluster.operators:  # every honest peer answered
                    if op.service is not service:
                        assert peers[op.url].failures == 0
            assert slow_peer.requests and garbage_peer.requests and big_peer.requests
            assert stranger.requests and impostor.requests
            for service in services:  # well-formed but worthless signatures: not kept, no
                # conflict (a non-signer's report is no evidence; an impostor's fails recovery)
                for epoch in (0, 1):
                    kept = await service.repository.attestations_for_epoch(
                        CHAIN_ID, cluster.contract_address, epoch
                    )
                    assert {a.signer for a in kept} <= {
                        op.signer.address.lower() for op in cluster.operators
                    }
                    assert all(a.source != webhook_label(impostor.url) for a in kept)
                assert not await service.repository.list_disagreements("regtest")
    # the slow peer (10 s) and the others never held publication up
    assert landed_s < 8.0, landed_s
    accepted = await cluster.accepted()
    assert sorted(accepted) == [1] and all(len(v) == 1 for v in accepted.values())


async def test_signer_rotated_out_on_chain_stops_counting_everywhere(cluster: Cluster) -> None:
    """The owner removes one operator's signer on chain (timelocked: announced, executed after
    the delay, which bumps the configuration version): the nodes follow the contract (its
    node stops signing, the others stop counting it and sign under the new version, turns
    are over the 2 left), no restart."""
    from oracle.publish.contract import send_and_wait

    kept_a, kept_b, removed = cluster.operators
    services = [cluster.service(op, submit_delay_s=1.0) for op in cluster.operators]
    async with running(services[0]), running(services[1]), running(services[2]):
        await wait_for(
            lambda: _published_everywhere(cluster, 0, cluster.operators), 60, "epoch 0 recorded"
        )
        remaining_signers = sorted(
            (kept_a.signer.address, kept_b.signer.address), key=lambda a: int(a, 16)
        )
        for function in ("scheduleSignerConfig", "executeSignerConfig"):
            data = cluster.oracle.contract.encode_abi(function, args=[remaining_signers, THRESHOLD])
            await send_and_wait(
                cluster.oracle.w3,
                cluster.owner,
                {"to": cluster.contract_address, "data": data},
                max_fee_wei=100 * 10**9,
                priority_fee_wei=10**9,
            )
            cluster.anvil.call("evm_increaseTime", hex(GOVERNANCE_DELAY_S + 1))
            cluster.anvil.call("evm_mine")
        assert await cluster.oracle.config_version() == 2
        await asyncio.sleep(2.5)  # the nodes re-read the signer set (SIGNER_SET_TTL_S)
        await asyncio.to_thread(cluster.bitcoind.mine, 2016)
        await wait_for(lambda: cluster.on_chain(1), 60, "epoch 1 on chain")
        status, body = await _get_json(f"{removed.url}/v1/attestations/1")
        assert status == 200 and body["attestations"] == []  # its key no longer counts
    sender, signers = await cluster.submission(1)
    assert sorted(signers) == sorted([kept_a.signer.address, kept_b.signer.address])
    remaining = sorted((kept_a, kept_b), key=lambda op: int(op.signer.address, 16))
    assert sender == remaining[1 % 2].sender.address  # turns over the two signers left
    assert len((await cluster.accepted())[1]) == 1


async def test_an_orphaned_publication_is_replaced_by_the_operators_together(
    cluster: Cluster,
) -> None:
    """A reorg orphans the published retarget of epoch 1 inside the challenge window: each
    node raises one critical alert, signs the new block, and exactly one ``replace`` lands,
    with two of three signatures; the peers' signatures over the old block (made before
    the reorg) are no conflict."""
    async with contextlib.AsyncExitStack() as stack:
        hooks = [await stack.enter_async_context(WebhookReceiver()) for _ in cluster.operators]
        services = [
            cluster.service(op, submit_delay_s=1.0, webhooks=[hook.url])
            for op, hook in zip(cluster.operators, hooks, strict=True)
        ]
        for service in services:
            await stack.enter_async_context(running(service))
        await wait_for(lambda: _published_everywhere(cluster, 0, cluster.operators), 60, "epoch 0")
        await asyncio.to_thread(cluster.bitcoind.mine, 2016)
        await wait_for(lambda: _published_everywhere(cluster, 1, cluster.operators), 60, "epoch 1")
        old = _block_hash(cluster.bitcoind, 1)
        before = len(await cluster.contract_transactions())
        cluster.bitcoind.rpc("invalidateblock", old)
        await asyncio.to_thread(cluster.bitcoind.mine, 2, LIAR_ADDRESS)  # longer: 2016', 2017'
        new = _block_hash(cluster.bitcoind, 1)
        assert new != old

        async def replaced_everywhere() -> bool:
            stored = await cluster.oracle.retarget(1)
            if stored is None or stored.block_hash_hex != new:
                return False
            for op in cluster.operators:
                if await cluster.database_status(op, 1) != ("published", new):
                    return False
            return True

        try:
            await wait_for(replaced_everywhere, 60, "epoch 1 replaced and recorded")
        except AssertionError:
            raise AssertionError(cluster.logs()) from None
        await asyncio.sleep(2 * 1.0 + 1)  # every operator's turn passes: still one replace
        for service in services:
            await service.parts.monitor.alerter.drain()
    replaced = await cluster.accepted("EpochReplaced")
    assert sorted(replaced) == [1] and len(replaced[1]) == 1, replaced
    assert bytes(replaced[1][0]["args"]["oldHash"]).hex() == old
    assert len(await cluster.contract_transactions()) == before + 1
    sender, signers = await cluster.submission(1, "EpochReplaced")
    assert sender == cluster.designated(1).sender.address
    assert len(signers) == THRESHOLD
    for hook in hooks:  # one critical alert per node, resolved by the replacement
        firing = [a for a in hook.alerts if a["status"] == "firing"]
        assert [a["kind"] for a in firing if a["severity"] == "critical"] == [
            "orphaned_published"
        ], firing
        assert "peer_conflict" not in hook.kinds()
    for op in cluster.operators:  # each node signed both blocks, in turn
        blocks = {a.report["block_hash_hex"] for a in await cluster.attestations(op, 1)
                  if a.source == "self"}  # fmt: skip
        assert blocks == {old, new}
