"""Daemon benchmarks (issue 6): retarget -> publishing transaction broadcast, and idle memory.

Run:  .venv/bin/python benchmarks/bench_daemon.py [--retargets 25] [--check]

Latency: regtest bitcoind + anvil + the real contract + a migrated Postgres
database; the daemon (`Service`, confirmations 0, quorum 1) runs in-process.
For each retarget the chain is mined to 2016e-1 and the daemon is let settle;
then the retarget block is mined. The clock starts when an independent ZMQ
subscriber (its own socket and thread) receives the block's ``hashblock`` and
stops at the ``sent_at`` the transaction manager stored for the epoch's
transaction (written right after ``eth_sendRawTransaction`` returned). Bars:
p50 <= 150 ms, p99 <= 500 ms over >= 20 retargets.

Memory: the real `bme-oracle run` process, idle for 20 s after its first pass
(API up, ZMQ connected, scheduler running, publisher connected); VmRSS from
/proc. Bar: <= 150 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.devstack.nodes import Anvil, Bitcoind  # noqa: E402
from oracle.devstack.stack import deploy_dev_contract, make_dev_keys, publisher_config  # noqa: E402
from oracle.logs import setup_logging  # noqa: E402
from oracle.service import Service  # noqa: E402
from oracle.store import migrate  # noqa: E402
from tests.e2e.helpers import daemon_config  # noqa: E402

P50_BAR_MS, P99_BAR_MS, RSS_BAR_MB = 150.0, 500.0, 150.0


class NotificationClock:
    """Independent hashblock subscriber: block hash -> wall-clock receive time."""

    def __init__(self, url: str) -> None:
        self.times: dict[str, float] = {}
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.SUBSCRIBE, b"hashblock")
        self._sock.setsockopt(zmq.RCVHWM, 0)
        self._sock.connect(url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._sock.poll(50):
                _topic, body, _seq = self._sock.recv_multipart()
                self.times.setdefault(body.hex(), time.time())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close(linger=0)
        self._ctx.term()


@dataclasses.dataclass
class _Node:  # what tests.e2e.helpers.daemon_config reads from a node
    url: str
    user: str
    password: str
    zmq_url: str


async def _postgres_db() -> tuple[str, str]:
    from tests.fixtures.postgres import create_database, sqlalchemy_url

    name = await create_database()
    url = sqlalchemy_url(name)
    await migrate.upgrade(url)
    return name, url


async def latency(retargets: int, work: Path) -> list[float]:
    from tests.fixtures.postgres import drop_database

    btc, evm = Bitcoind(datadir=work / "btc"), Anvil()
    btc.start()
    evm.start()
    name, db_url = await _postgres_db()
    clock = NotificationClock(btc.zmq_url)
    try:
        keys = make_dev_keys(work / "keys")
        address = await deploy_dev_contract(evm.url, keys)
        node = _Node(btc.rpc_url, btc.rpc_user, btc.rpc_password, btc.zmq_url)
        config = daemon_config(db_url, node, quorum=1, confirmations=0)  # type: ignore[arg-type]
        config = dataclasses.replace(
            config,
            publisher=publisher_config(evm.url, address, keys),
            api=dataclasses.replace(config.api, enabled=False),
        )
        service = Service(config)
        ready = asyncio.Event()

        async def on_ready(_: Service) -> None:
            ready.set()

        service.on_ready = on_ready
        task = asyncio.create_task(service.run())
        await asyncio.wait_for(ready.wait(), 60)
        samples: list[float] = []
        for _ in range(retargets):
            height = int(btc.call("getblockcount"))
            boundary = (height // 2016 + 1) * 2016
            await asyncio.to_thread(btc.mine, boundary - 1 - height)
            await asyncio.sleep(1.0)  # let the daemon drain the burst of 2015 tips
            (block_hash,) = await asyncio.to_thread(btc.mine, 1)
            epoch = boundary // 2016
            sent_at = await _sent_at(service, address, epoch)
            samples.append((sent_at - clock.times[block_hash]) * 1000)
        service.stop_event.set()
        await task
        return samples
    finally:
        clock.close()
        evm.stop()
        btc.stop()
        await drop_database(name)


async def _sent_at(service: Service, address: str, epoch: int, timeout_s: float = 30) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        submission = await service.repository.submission_for_epoch(31337, address, epoch)
        if submission is not None:
            txs = await service.repository.submission_txs(submission.id)
            sent = [tx.sent_at for tx in txs if tx.sent_at is not None]
            if sent:
                return min(sent).timestamp()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"epoch {epoch}: no transaction broadcast within {timeout_s} s")


def idle_rss_mb(work: Path) -> float:
    btc = Bitcoind(datadir=work / "btc-idle")
    btc.start()
    db = work / "idle.sqlite"
    try:
        subprocess.run(
            [
                str(ROOT / ".venv/bin/bme-oracle"),
                "db",
                "upgrade",
                "--db",
                f"sqlite+aiosqlite:///{db}",
            ],
            check=True,
            capture_output=True,
        )
        config = work / "idle.toml"
        config.write_text(
            f'[network]\nname = "regtest"\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
            f'[bitcoind]\nurl = "{btc.rpc_url}"\nrpc_user = "{btc.rpc_user}"\n'
            f'zmq_hashblock = "{btc.zmq_url}"\n[crosscheck]\nquorum = 1\nconfirmations = 0\n'
            f'[api]\nport = 0\n[logging]\nformat = "json"\nlevel = "warning"\n'
        )
        env = {**os.environ, "ORACLE_BITCOIND__RPC_PASSWORD": btc.rpc_password}
        proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/bme-oracle"), "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            btc.mine(3)
            time.sleep(20)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            rss_kb = int(
                next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
            )
            return rss_kb / 1024
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        btc.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retargets", type=int, default=25)
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = parser.parse_args()
    setup_logging(fmt="console", level="error")
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        samples = asyncio.run(latency(args.retargets, Path(tmp)))
        rss = idle_rss_mb(Path(tmp))
    p50, p99 = statistics.median(samples), percentile(samples, 0.99)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(
        f"retarget announced by ZMQ -> publishing tx broadcast, {len(samples)} retargets, "
        f"confirmations 0: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(samples):.1f} ms "
        f"(bars {P50_BAR_MS:.0f} / {P99_BAR_MS:.0f} ms)"
    )
    print(f"idle daemon resident memory: {rss:.1f} MB (bar {RSS_BAR_MB:.0f} MB)")
    ok = p50 <= P50_BAR_MS and p99 <= P99_BAR_MS and rss <= RSS_BAR_MB
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
