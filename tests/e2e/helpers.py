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
from dataclasses import dataclass
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
from oracle.devstack.stack import DEV_THRESHOLD, DevKeys, deploy_dev_contract
from oracle.publish.anchor import (
    DEFAULT_CHALLENGE_WINDOW_S,
    DEFAULT_GOVERNANCE_DELAY_S,
    Checkpoint,
)
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
    return await deploy_dev_contract(
        evm_url,
        keys,
        genesis=regtest_genesis(node),
        threshold=threshold,
        challenge_window_s=challenge_window_s,
        governance_delay_s=DEFAULT_GOVERNANCE_DELAY_S,
    )


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


class PublicationPasses:
    """Records every publication pass of an in-process service as it completes (the tip
    height it ran for), so a test waits for "a pass after X" instead of sleeping."""

    def __init__(self, service: Service) -> None:
        self.done: list[int] = []
        pipeline = service.parts.pipeline
        original = pipeline.publish_confirmed

        async def recorded(tip_height: int) -> Any:
            try:
                return await original(tip_height)
            finally:
                self.done.append(tip_height)

        pipeline.publish_confirmed = recorded  # type: ignore[method-assign]

    async def after(self, height: int, timeout_s: float = 60.0, count: int = 1) -> None:
        """Wait until ``count`` passes for a tip at or above ``height`` have completed."""

        async def seen() -> bool:
            return sum(h >= height for h in self.done) >= count

        await wait_for(seen, timeout_s, f"{count} publication pass(es) at height >= {height}")


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


def wait_until(predicate: Callable[[], T | None], timeout_s: float = 60.0, what: str = "") -> T:
    """Poll ``predicate`` (blocking) until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        time.sleep(0.02)  # polling the condition, not a blind wait


# ---------------------------------------------------------------- an EVM RPC gate


@dataclass(frozen=True)
class Hold:
    """Which JSON-RPC request an ``EvmGate`` stops (once), to freeze a daemon at one step.

    The first request for ``method`` (whose params include ``param``, if given) after a
    request for ``after`` (whose answer had a non-null result, with ``after_result``) is
    held: never forwarded (``forward`` False: the daemon is stopped just before that call
    reaches the node) or forwarded with its answer held back (``forward`` True: the node
    acted, the daemon does not know yet)."""

    method: str
    forward: bool = False
    param: object = None
    after: str | None = None
    after_result: bool = False


class EvmGate:
    """A JSON-RPC proxy in front of an EVM node, in a thread of the test process.

    Every request is forwarded as is, except the one an armed ``Hold`` matches: that one
    waits until ``release()``; ``held`` is set when it arrived. A test kills the daemon
    while it waits on the held call, which lands the kill exactly between two steps of
    the transaction manager, from outside the process.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading

        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = gate.relay(body)
                if reply is None:  # held and not forwarded: the caller is dead by now
                    self.close_connection = True
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    super().handle()

            def log_message(self, *_args: object) -> None:
                """Quiet: a test's stderr shows the oracle's logs, not each request."""

        self.upstream = upstream
        self.held = threading.Event()
        self.held_request: dict[str, Any] | None = None
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._hold: Hold | None = None
        self._after_seen = False
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def arm(self, hold: Hold) -> None:
        with self._lock:
            self._hold, self._after_seen = hold, hold.after is None
            self.held_request = None
            self.held.clear()
            self._release.clear()

    def release(self) -> None:
        """Let a held request go on (and any later one pass); disarms."""
        with self._lock:
            self._hold = None
        self._release.set()

    def _forward(self, body: bytes) -> bytes:
        request = urllib.request.Request(self.upstream, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            data: bytes = response.read()
            return data

    def relay(self, body: bytes) -> bytes | None:
        try:
            call = json.loads(body)
        except ValueError:
            call = None
        method = call.get("method") if isinstance(call, dict) else None
        params = call.get("params") if isinstance(call, dict) else None
        with self._lock:
            hold = self._hold
            matched = (
                hold is not None
                and self._after_seen
                and self.held_request is None
                and method == hold.method
                and (hold.param is None or hold.param in (params or []))
            )
            if matched:
                self.held_request = call  # once per arming
        if not matched:
            reply = self._forward(body)
            if hold is not None and method == hold.after and not self._after_seen:
                result = json.loads(reply).get("result") if hold.after_result else True
                if result is not None:
                    with self._lock:
                        self._after_seen = True
            return reply
        assert hold is not None
        reply = self._forward(body) if hold.forward else None
        self.held.set()
        self._release.wait(timeout=120)
        return reply

    def __enter__(self) -> EvmGate:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def evm_rpc(url: str, method: str, *params: Any) -> Any:
    """One JSON-RPC call to an EVM node with the standard library (independent of web3)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.loads(response.read())
    if reply.get("error"):
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass(frozen=True)
class ContractTx:
    """One transaction some sender sent to a contract, as mined."""

    block: int
    tx_hash: str
    sender: str
    nonce: int
    input: bytes
    status: int


def contract_transactions(evm_url: str, address: str, from_block: int = 0) -> list[ContractTx]:
    """Every transaction mined in blocks ``from_block``.. whose ``to`` is ``address``, from
    any sender, reverted ones included: read block by block, not from the contract's
    events (which a contract may deduplicate or leave out)."""
    found = []
    target = address.lower()
    latest = int(evm_rpc(evm_url, "eth_blockNumber"), 16)
    for number in range(from_block, latest + 1):
        block = evm_rpc(evm_url, "eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            if (tx.get("to") or "").lower() != target:
                continue
            receipt = evm_rpc(evm_url, "eth_getTransactionReceipt", tx["hash"])
            found.append(
                ContractTx(
                    block=number,
                    tx_hash=tx["hash"],
                    sender=tx["from"].lower(),
                    nonce=int(tx["nonce"], 16),
                    input=bytes.fromhex(tx["input"].removeprefix("0x")),
                    status=int(receipt["status"], 16),
                )
            )
    return found
