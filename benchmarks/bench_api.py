"""API benchmark: the read endpoints of `bme-oracle run` over the whole mainnet history, with wrk.

Run:  .venv/bin/python benchmarks/bench_api.py                 # every endpoint, 3 x 5 s each
      .venv/bin/python benchmarks/bench_api.py --check         # exit 1 if a bar is missed
      .venv/bin/python benchmarks/bench_api.py --path /v1/status --rounds 1

Bar: >= 2,000 requests/s and p99 <= 50 ms with 50 keep-alive
clients for each of the ``BAR_PATHS``, best of 3 rounds; ``/metrics`` and
``/health`` are measured and reported. Also reported (item 6): the daemon's
resident memory idle with the full snapshot loaded, and after the load.

Set-up, all real and offline:

1. a fresh SQLite database filled by the real CLI: ``bme-oracle db upgrade``,
   then ``bme-oracle replay --checkpoints`` over epochs 0..413 (the 414 mainnet
   retargets of the bundled checkpoints, with BME14/28/84);
2. two "public block APIs" for the daemon: Esplora sources (default rate
   limit, 1 request/s each) pointing at a local HTTP server that serves the
   real mainnet headers of ``tests/data`` in Esplora's format, its tip at
   832,607 (the last block of epoch 412: ``/v1/status`` is locked in);
   there is no bitcoind, so ``/v1/status`` is computed from public APIs alone;
3. ``bme-oracle run --config ...`` (quorum 2, no publisher) as a subprocess;
   the load waits until ``/v1/status`` answers 200 (its first chain reading);
4. ``/v1/attestations/{e}`` is served only by a node that signs reports, which
   needs an EVM node and a contract; it is measured on the same application
   (``oracle.api.build_app``, same snapshot code) started by this script over
   the same database, with a ``[publisher]`` section and real EIP-712
   signatures of three throwaway keys stored for epochs 400..413.

wrk 4.1 (Debian package): 2 threads, 50 connections, keep-alive, ``--latency``.
Client and server share the machine's cores, so every figure includes wrk's cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent / "bme-oracle"
BAR_REQ_PER_S = 2000.0
BAR_P99_MS = 50.0
RSS_BAR_MB = 150.0
TIP_HEIGHT = 832_607
CHAIN_ID = 31337
#: A day after the retarget of epoch 400 (block 806,400, time 1,693,967,242).
AT_TIME = 1_694_053_642
BAR_PATHS = (
    "/v1/retargets",
    "/v1/retargets/411",
    "/v1/index/14",
    f"/v1/index/84?at={AT_TIME}",
    "/v1/index/84/history",
    "/v1/difficulty/history",
    "/v1/status",
    "/v1/disagreements",
    "/v1/attestations/411",
)
REPORT_PATHS = ("/v1/index/84/history?format=csv", "/metrics", "/health")
SIGNING_PATHS = ("/v1/attestations/",)


# -- set-up ------------------------------------------------------------------------------------


def cli(*args: str) -> str:
    result = subprocess.run(
        [str(BIN), *args], capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"bme-oracle {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def replay_history(url: str) -> dict[str, object]:
    cli("db", "upgrade", "--db", url)
    started = time.perf_counter()
    epochs = ("--from-epoch", "0", "--to-epoch", "413")
    summary = json.loads(cli("replay", "--checkpoints", *epochs, "--db", url, "--json"))
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return summary


async def store_signatures(url: str, contract: str) -> int:
    """Real EIP-712 signatures of three throwaway keys over the reports of epochs 400..413."""
    from oracle.publish.signing import KeystoreAccount, Report
    from oracle.sources.checkpoints import mainnet_checkpoints
    from oracle.store.repository import open_repository

    keys = [KeystoreAccount(secrets.token_bytes(32)) for _ in range(3)]
    headers = mainnet_checkpoints()
    repository = await open_repository(url)
    stored = 0
    try:
        for epoch in range(400, 414):
            report = Report.for_epoch(epoch, headers[epoch * 2016], config_version=1)
            for key in keys:
                signature = key.sign_report(report, chain_id=CHAIN_ID, contract_address=contract)
                stored += await repository.save_attestation(
                    chain_id=CHAIN_ID,
                    contract_address=contract,
                    epoch=epoch,
                    signer=signature.signer,
                    report=report.as_dict(),
                    signature_hex="0x" + signature.signature.hex(),
                )
    finally:
        await repository.close()
    return stored


@contextlib.contextmanager
def esplora_server(tip_height: int) -> Iterator[str]:
    """The local Esplora with the real mainnet headers, served from a thread of this process."""
    from tests.fixtures.restreplay import ReplayServer, mainnet_esplora_routes

    loop = asyncio.new_event_loop()
    server = ReplayServer(kind="esplora", tip_height=tip_height)
    server.routes.update(mainnet_esplora_routes())
    started = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        await server.start()
        started.set()
        await stop.wait()
        await server.stop()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    if not started.wait(30):
        raise SystemExit("the local Esplora server did not start")
    try:
        yield server.url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def daemon_config(path: Path, *, url: str, esplora_url: str, port: int) -> None:
    sources = "".join(
        f'\n[[sources]]\nname = "{name}"\nkind = "esplora"\nbase_url = "{esplora_url}"\n'
        for name in ("esplora-a", "esplora-b")
    )
    path.write_text(
        f'[network]\nname = "mainnet"\n\n[database]\nurl = "{url}"\n\n'
        "[bitcoind]\nenabled = false\n\n[crosscheck]\nquorum = 2\nconfirmations = 6\n\n"
        f'[api]\nhost = "127.0.0.1"\nport = {port}\n\n[logging]\nformat = "json"\n'
        f'level = "warning"\n{sources}'
    )


def free_port() -> int:
    from tests.fixtures.bitcoind import free_port as pick

    return pick()


def http_get(url: str, timeout_s: float = 10.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float, what: str) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise SystemExit(f"{what}: process exited {process.returncode}:\n{output[-3000:]}")
        status, body = http_get(url, 5)
        if status == 200:
            return body
        time.sleep(0.2)
    raise SystemExit(f"{what}: {url} did not answer 200 within {timeout_s} s")


def rss_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of ``pid`` in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the signing node's API (attestations) -------------------------------------------------------


async def serve_signing(url: str, contract: str, port: int) -> None:
    """The API application of a node that signs reports (no daemon: no EVM node needed)."""
    from oracle.api import ApiContext, start_api
    from oracle.config import Config, PublisherConfig
    from oracle.logs import setup_logging
    from oracle.monitor.health import SourceHealth, gather_readiness
    from oracle.monitor.metrics import Metrics
    from oracle.store.repository import open_repository

    setup_logging(fmt="json", level="warning")
    repository = await open_repository(url)
    config = Config(
        publisher=PublisherConfig(enabled=True, chain_id=CHAIN_ID, contract_address=contract)
    )

    async def readiness():  # type: ignore[no-untyped-def]
        return await gather_readiness(
            ping_database=repository.ping,
            reach_chain=None,
            sources=[SourceHealth("esplora-a", True)],
            quorum=1,
        )

    context = ApiContext(
        repository=repository,
        config=config,
        metrics=Metrics("mainnet"),
        network="mainnet",
        readiness=readiness,
    )
    runner, _ = await start_api(context, host="127.0.0.1", port=port)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    try:
        await done.wait()
    finally:
        await runner.cleanup()
        await repository.close()


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Round:
    req_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non_2xx: int

    @property
    def meets_bar(self) -> bool:
        return (
            self.req_per_s >= BAR_REQ_PER_S
            and self.p99_ms <= BAR_P99_MS
            and not self.errors
            and not self.non_2xx
        )


def wrk(url: str, *, clients: int, seconds: float) -> Round:
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    out = subprocess.run(
        [binary, "-t2", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    def percentile(name: str) -> float:
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Round(
        req_per_s=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=percentile("50"),
        p99_ms=percentile("99"),
        requests=int(number(r"(\d+) requests in")),
        errors=sum(int(x) for x in errors.groups()) if errors else 0,
        non_2xx=int(number(r"Non-2xx or 3xx responses:\s+(\d+)")),
    )


def best(rounds: list[Round]) -> Round:
    """The fastest round that meets the bar, else the fastest."""
    passing = [r for r in rounds if r.meets_bar]
    return max(passing or rounds, key=lambda r: r.req_per_s)


def measure(
    base: str, path: str, *, clients: int, seconds: float, rounds: int
) -> tuple[Round, list[Round], int]:
    status, body = http_get(base + path)
    if status != 200:
        raise SystemExit(f"{path}: {status} {body[:300]!r}")
    for _ in range(50):  # warm-up: render and memoise what the path needs
        http_get(base + path)
    results = [wrk(base + path, clients=clients, seconds=seconds) for _ in range(rounds)]
    return best(results), results, len(body)


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve-signing", nargs=3, metavar=("DB_URL", "CONTRACT", "PORT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--path", action="append", help="only these paths (repeatable)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if args.serve_signing:
        url, contract, port = args.serve_signing
        asyncio.run(serve_signing(url, contract, int(port)))
        return 0
    paths = tuple(args.path or (*BAR_PATHS, *REPORT_PATHS))
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        return run(Path(tmp), paths, args)


def run(work: Path, paths: tuple[str, ...], args: argparse.Namespace) -> int:
    url = f"sqlite+aiosqlite:///{work / 'oracle.sqlite'}"
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    replayed = replay_history(url)
    print(f"replayed {replayed['agreed']} epochs into SQLite in {replayed['wall_s']} s", flush=True)
    contract = "0x" + secrets.token_hex(20)
    print(f"stored {asyncio.run(store_signatures(url, contract))} signatures", flush=True)
    figures: dict[str, dict[str, object]] = {}
    failed: list[str] = []
    with esplora_server(TIP_HEIGHT) as esplora_url:
        port, signing_port = free_port(), free_port()
        config = work / "oracle.toml"
        daemon_config(config, url=url, esplora_url=esplora_url, port=port)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        daemon = subprocess.Popen([str(BIN), "run", "--config", str(config)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
        signing = subprocess.Popen(
            [sys.executable, __file__, "--serve-signing", url, contract, str(signing_port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            started = time.monotonic()
            wait_for(base + "/health", daemon, 60, "bme-oracle run")
            status = json.loads(wait_for(base + "/v1/status", daemon, 120, "/v1/status"))
            print(
                f"daemon up; first /v1/status after {time.monotonic() - started:.1f} s "
                f"(tip {status['tip']['height']}, locked_in {status['locked_in']}, "
                f"next bits {status['next_bits']})",
                flush=True,
            )
            wait_for(f"http://127.0.0.1:{signing_port}/health", signing, 60, "signing API")
            time.sleep(5)  # idle: the snapshot is loaded, the first chain reading done
            idle_rss, _ = rss_mb(daemon.pid)
            print(f"idle daemon resident memory (VmRSS): {idle_rss:.1f} MB", flush=True)
            for path in paths:
                target = (
                    f"http://127.0.0.1:{signing_port}" if path.startswith(SIGNING_PATHS) else base
                )
                chosen, rounds, size = measure(
                    target, path, clients=args.clients, seconds=args.seconds, rounds=args.rounds
                )
                barred = path in BAR_PATHS
                verdict = ("meets" if chosen.meets_bar else "MISSES") if barred else "(no bar)"
                print(
                    f"{path:<34} {chosen.req_per_s:>8.0f} req/s  p50 {chosen.p50_ms:6.2f} ms  "
                    f"p99 {chosen.p99_ms:6.2f} ms  {size:>7} B  rounds "
                    + "/".join(f"{r.req_per_s:.0f}" for r in rounds)
                    + f"  {verdict}",
                    flush=True,
                )
                figures[path] = {"best": chosen.__dict__, "rounds": [r.__dict__ for r in rounds]}
                if barred and not chosen.meets_bar:
                    failed.append(path)
            loaded_rss, peak_rss = rss_mb(daemon.pid)
            print(
                f"daemon resident memory after the load: {loaded_rss:.1f} MB "
                f"(peak {peak_rss:.1f} MB); idle {idle_rss:.1f} MB, bar {RSS_BAR_MB:.0f} MB",
                flush=True,
            )
        finally:
            stop(daemon)
            stop(signing)
    if idle_rss > RSS_BAR_MB:
        failed.append("idle RSS")
    if args.json:
        print(json.dumps({"figures": figures, "idle_rss_mb": idle_rss, "failed": failed}))
    print("every bar met" if not failed else f"MISSED: {', '.join(failed)}")
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
