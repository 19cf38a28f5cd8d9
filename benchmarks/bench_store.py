"""Store benchmark: a full replay's worth of writes, and the latest-value read (issue 4 bars).

Bars (Postgres): writing 500 epochs x 3 sources of observations, the 500 agreed
retargets and their BME14/28/84 values in < 2 s; reading the latest agreed
retarget with its indices in < 5 ms.

Run:  .venv/bin/python benchmarks/bench_store.py            # fresh Postgres database, dropped after
      .venv/bin/python benchmarks/bench_store.py --sqlite   # a fresh SQLite file, for comparison
      .venv/bin/python benchmarks/bench_store.py --check    # exit 1 if a bar is missed

Two write modes are timed on fresh databases: "batched" (one transaction per
stage for the whole replay: observations, agreed retargets, index values) and
"per epoch" (three transactions per epoch, as the live pipeline writes).
Headers are the real mainnet retarget headers (epochs 0..413) continued by
self-consistent synthetic headers (the store checks each header hashes to its
block hash), so the data has the real shape. BME values are computed before
the clock starts: only storage is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import statistics
import struct
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.bitcoin.header import parse_header  # noqa: E402
from oracle.index.bme import BmeValue, EpochTarget, bme_series  # noqa: E402
from oracle.store import migrate  # noqa: E402
from oracle.store.records import AgreedInput, ObservationInput  # noqa: E402
from oracle.store.repository import Repository, open_repository  # noqa: E402

EPOCHS = 500
SOURCES = ("bitcoind", "esplora", "blockchain_com")
N_DAYS = (14, 28, 84)
READS = 500
ADMIN_DSN = os.environ.get("ORACLE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DATA = ROOT / "tests" / "data" / "epoch_boundary_headers_0_832608.csv"
WRITE_BAR_S, READ_BAR_MS = 2.0, 5.0


def headers() -> list[AgreedInput]:
    """500 retarget headers: real ones, then synthetic continuations two weeks apart."""
    real = []
    with DATA.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["role"] == "first":
                real.append(parse_header(bytes.fromhex(row["header_hex"])))
    result = [
        AgreedInput(i, i * 2016, h.block_hash_hex, h.bits, h.time, h.raw, SOURCES)
        for i, h in enumerate(real[:EPOCHS])
    ]
    last = real[-1]
    for epoch in range(len(result), EPOCHS):
        time_ = last.time + (epoch - len(real) + 1) * 1_209_600
        raw = last.raw[:68] + struct.pack("<III", time_, last.bits, epoch)
        parsed = parse_header(raw)
        result.append(
            AgreedInput(
                epoch, epoch * 2016, parsed.block_hash_hex, parsed.bits, parsed.time, raw, SOURCES
            )
        )
    return result


def observations(items: list[AgreedInput]) -> list[ObservationInput]:
    return [
        ObservationInput(
            epoch=h.epoch,
            source=s,
            height=h.height,
            block_hash_hex=h.block_hash_hex,
            bits=h.bits,
            time=h.time,
            raw_header=h.raw_header,
        )
        for h in items
        for s in SOURCES
    ]


def index_values(items: list[AgreedInput]) -> list[BmeValue]:
    history = [EpochTarget.from_bits(h.epoch, h.bits, h.time) for h in items]
    return [v for n in N_DAYS for v in bme_series(n, history).values()]


async def write_batched(repo: Repository, items: list[AgreedInput]) -> float:
    obs, values = observations(items), index_values(items)
    start = time.perf_counter()
    await repo.record_observations("mainnet", obs)
    await repo.record_agreed_many("mainnet", items)
    await repo.upsert_index_values("mainnet", values)
    return time.perf_counter() - start


async def write_per_epoch(repo: Repository, items: list[AgreedInput]) -> float:
    obs, values = observations(items), index_values(items)
    obs_by_epoch: dict[int, list[ObservationInput]] = {}
    for o in obs:
        obs_by_epoch.setdefault(o.epoch, []).append(o)
    values_by_epoch: dict[int, list[BmeValue]] = {}
    for v in values:
        values_by_epoch.setdefault(v.epoch, []).append(v)
    start = time.perf_counter()
    for item in items:
        await repo.record_observations("mainnet", obs_by_epoch[item.epoch])
        await repo.record_agreed_many("mainnet", [item])
        await repo.upsert_index_values("mainnet", values_by_epoch.get(item.epoch, []))
    return time.perf_counter() - start


async def read_latest(repo: Repository) -> list[float]:
    timings = []
    for _ in range(READS):
        start = time.perf_counter()
        latest = await repo.latest_agreed_with_indices("mainnet", N_DAYS)
        timings.append((time.perf_counter() - start) * 1000)
        assert latest is not None and latest.retarget.epoch == EPOCHS - 1
        assert sorted(latest.indices) == list(N_DAYS)
    return timings


async def fresh_database(sqlite: bool, workdir: Path) -> tuple[str, str | None]:
    if sqlite:
        return f"sqlite+aiosqlite:///{workdir / f'{uuid.uuid4().hex}.sqlite'}", None
    name = f"bme_bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    base = ADMIN_DSN.rpartition("/")[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}", name


async def drop(name: str | None) -> None:
    if name:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await connection.close()


@dataclass
class Result:
    backend: str
    index_values: int
    batched_s: list[float] = field(default_factory=list)
    per_epoch_s: list[float] = field(default_factory=list)
    reads_ms: list[float] = field(default_factory=list)

    def report(self) -> str:
        reads = sorted(self.reads_ms)
        batched, per_epoch = self.batched_s, self.per_epoch_s
        return "\n".join([
            f"machine: {platform.machine()}, {os.cpu_count()} cpus, "
            f"python {platform.python_version()}, load average {os.getloadavg()[0]:.1f}",
            f"backend: {self.backend}; {EPOCHS} epochs, {EPOCHS * len(SOURCES)} observations, "
            f"{self.index_values} index values, {len(batched)} rounds",
            f"write, batched (3 transactions):       best {min(batched):.3f} s, "
            f"median {statistics.median(batched):.3f} s",
            f"write, per epoch (1500 transactions):  best {min(per_epoch):.3f} s, "
            f"median {statistics.median(per_epoch):.3f} s",
            f"read latest agreed + BME14/28/84 ({len(reads)}x): median "
            f"{statistics.median(reads):.2f} ms, p95 {reads[int(len(reads) * 0.95)]:.2f} ms",
        ])  # fmt: skip

    def bars_met(self) -> bool:
        return (statistics.median(self.batched_s) < WRITE_BAR_S
                and statistics.median(self.reads_ms) < READ_BAR_MS)  # fmt: skip


async def run(sqlite: bool, rounds: int) -> Result:
    items = headers()
    result = Result("sqlite" if sqlite else "postgres", len(index_values(items)))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for batched in (True, False):
                url, name = await fresh_database(sqlite, Path(tmp))
                try:
                    await migrate.upgrade(url)
                    repo = await open_repository(url)
                    try:
                        if batched:
                            result.batched_s.append(await write_batched(repo, items))
                            result.reads_ms.extend(await read_latest(repo))
                        else:
                            result.per_epoch_s.append(await write_per_epoch(repo, items))
                    finally:
                        await repo.close()
                finally:
                    await drop(name)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="benchmark a SQLite file instead")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = parser.parse_args()
    result = asyncio.run(run(args.sqlite, args.rounds))
    print(result.report())
    met = result.bars_met()
    print(
        f"bars (median write < {WRITE_BAR_S} s, median read < {READ_BAR_MS} ms): "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
