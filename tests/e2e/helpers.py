"""Shared pieces of the end-to-end tests: daemon configs, a regtest-anchored contract, a
webhook receiver, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from oracle.config import (
    ApiConfig,
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    MonitorConfig,
    NetworkConfig,
    Secret,
)
from oracle.devstack.clock import follow_bitcoin_time
from oracle.devstack.stack import DEV_THRESHOLD, DevKeys
from oracle.publish.anchor import DEFAULT_CHALLENGE_WINDOW_S, Checkpoint
from oracle.service import Service
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.rpc import RpcCredentials
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory

T = TypeVar("T")
BIN = Path(sys.executable).parent / "bme-oracle"


def node_source(node: BitcoindNode, name: str, *, zmq: bool = True) -> BitcoindSource:
    return BitcoindSource(
        name=name,
        url=node.url,
        credentials=RpcCredentials(user=node.user, password=node.password),
        zmq_hashblock=node.zmq_url if zmq else "",
        poll_interval_s=1.0,
    )


def daemon_config(
    db_url: str,
    node: BitcoindNode,
    *,
    quorum: int,
    confirmations: int,
    webhooks: tuple[str, ...] = (),
    zmq_url: str | None = None,
) -> Config:
    return Config(
        network=NetworkConfig("regtest"),
        database=DatabaseConfig(url=db_url, write_retry_s=60.0),
        bitcoind=BitcoindConfig(
            url=node.url,
            rpc_user=node.user,
            rpc_password=Secret(node.password),
            zmq_hashblock=node.zmq_url if zmq_url is None else zmq_url,
            poll_interval_s=1.0,
            zmq_silence_s=5.0,
            timeout_s=5.0,
        ),
        crosscheck=CrossCheckConfig(
            quorum=quorum, confirmations=confirmations, use_checkpoints=False
        ),
        api=ApiConfig(enabled=True, host="127.0.0.1", port=0),
        monitor=MonitorConfig(webhooks=webhooks, alert_min_interval_s=0.5, webhook_retries=1),
    )


def regtest_genesis(node: BitcoindNode) -> Checkpoint:
    """The contract's genesis for a regtest chain: epoch 0, the node's genesis block."""
    block = str(node.rpc("getblockhash", 0))
    header = node.rpc("getblockheader", block)
    return Checkpoint(0, block, int(header["bits"], 16), int(header["time"]), ())


async def deploy_regtest_oracle(
    evm_url: str,
    keys: DevKeys,
    node: BitcoindNode,
    *,
    threshold: int = DEV_THRESHOLD,
    challenge_window_s: int = DEFAULT_CHALLENGE_WINDOW_S,
) -> str:
    """Fund the dev sender and deploy a regtest-mode DifficultyOracle for the dev signers,
    anchored at ``node``'s genesis block (what ``bme-oracle dev`` deploys)."""
    from oracle.devstack.nodes import json_rpc
    from oracle.publish.contract import connect, deploy_oracle
    from oracle.publish.signing import load_keystore, load_keystores

    sender = load_keystore(keys.sender, keys.password)
    signers = load_keystores(keys.signers, keys.password)
    json_rpc(evm_url, "anvil_setBalance", [sender.address, hex(10**21)], version="2.0")
    w3 = connect(evm_url)
    try:
        return await deploy_oracle(
            w3,
            sender,
            owner=sender.address,
            signers=sorted(s.address for s in signers),
            threshold=threshold,
            network="regtest",
            genesis=regtest_genesis(node),
            challenge_window_s=challenge_window_s,
            max_fee_wei=100 * 10**9,
            priority_fee_wei=10**9,
        )
    finally:
        await w3.provider.disconnect()  # type: ignore[attr-defined]


def follow_tip(node: BitcoindNode, evm_url: str) -> int:
    """Move anvil's clock up to the regtest tip's header time (fast-mined regtest runs
    ahead of the wall clock; the contract refuses headers more than 2 h after its clock)."""
    tip = node.rpc("getblockheader", node.rpc("getbestblockhash"))
    return follow_bitcoin_time(evm_url, int(tip["time"]))


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[asyncio.Task[int]]:
    """Run a Service in-process; on exit stop it and require exit status 0."""
    ready = asyncio.Event()

    async def on_ready(_service: Service) -> None:
        ready.set()

    service.on_ready = on_ready
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield task
    finally:
        service.stop_event.set()
        assert await asyncio.wait_for(task, 30) == 0


async def wait_for(
    predicate: Callable[[], Awaitable[T | None]], timeout_s: float = 60.0, what: str = ""
) -> T:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.1)


async def status_of(service: Service, epoch: int) -> str | None:
    record = await service.repository.get_retarget("regtest", epoch)
    return None if record is None else record.status


def peered_nodes(factory: NodeFactory) -> tuple[BitcoindNode, BitcoindNode]:
    a = factory(listen=True)
    b = factory(listen=True)
    b.rpc("addnode", f"127.0.0.1:{a.p2p_port}", "onetry")
    return a, b


class WebhookReceiver:
    """A real local HTTP endpoint collecting alert POSTs."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> WebhookReceiver:
        async def receive(request: web.Request) -> web.Response:
            self.alerts.append(await request.json())
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def kinds(self) -> set[str]:
        return {str(a.get("kind") or a.get("alert")) for a in self.alerts}


def http_get_json(url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def start_daemon(config_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN), "run", "--config", str(config_path)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"daemon exited with {proc.returncode}:\n{output[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout_s} s")


def terminate(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20
) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
