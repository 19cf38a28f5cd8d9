"""Replay throughput (issue 6): epochs per second from the regtest node into Postgres with indices.

Run:  .venv/bin/python benchmarks/bench_replay.py [--epochs 50] [--check]

A real regtest bitcoind is mined through ``--epochs`` retargets; then
``bme-oracle replay``'s code path (``oracle.replay.run_replay``: fetch the
three headers of every epoch over RPC batches, verify, cross-check, store the
observation and the agreed retarget, recompute BME14/28/84) writes them into a
fresh, migrated Postgres database. A second replay over the same range must
change nothing (every epoch skipped as already agreed). Bar: >= 50 epochs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from oracle.config import (  # noqa: E402
    BitcoindConfig,
    Config,
    CrossCheckConfig,
    DatabaseConfig,
    NetworkConfig,
    Secret,
)
from oracle.devstack.nodes import Bitcoind  # noqa: E402
from oracle.logs import setup_logging  # noqa: E402
from oracle.replay import run_replay  # noqa: E402
from oracle.store import migrate  # noqa: E402

BAR_EPOCHS_PER_S = 50.0


async def bench(epochs: int, work: Path) -> tuple[dict[str, object], dict[str, object], float]:
    from tests.fixtures.postgres import create_database, drop_database, sqlalchemy_url

    node = Bitcoind(datadir=work / "btc")
    node.start()
    name = await create_database()
    try:
        started = time.perf_counter()
        node.mine(epochs * 2016)
        mined_s = time.perf_counter() - started
        url = sqlalchemy_url(name)
        await migrate.upgrade(url)
        config = Config(
            network=NetworkConfig("regtest"),
            database=DatabaseConfig(url=url),
            bitcoind=BitcoindConfig(
                url=node.rpc_url, rpc_user=node.rpc_user, rpc_password=Secret(node.rpc_password)
            ),
            crosscheck=CrossCheckConfig(quorum=1, confirmations=0, use_checkpoints=False),
        )
        config = dataclasses.replace(config)
        first = await run_replay(
            config, range(epochs + 1), publish=False, checkpoints=False, progress=False
        )
        again = await run_replay(
            config, range(epochs + 1), publish=False, checkpoints=False, progress=False
        )
        return first.as_dict(), again.as_dict(), mined_s
    finally:
        node.stop()
        await drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    setup_logging(fmt="console", level="error")
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        first, again, mined_s = asyncio.run(bench(args.epochs, Path(tmp)))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"mined {args.epochs * 2016} regtest blocks in {mined_s:.1f} s (setup, not measured)")
    print(
        f"replay epochs 0..{args.epochs} into Postgres with BME14/28/84: agreed {first['agreed']}, "
        f"{first['epochs_per_s']} epochs/s ({first['elapsed_s']} s) (bar {BAR_EPOCHS_PER_S:.0f})"
    )
    print(
        f"second replay (idempotency): agreed {again['agreed']}, skipped {again['skipped']} "
        f"({again['skipped_reasons']}), {again['elapsed_s']} s"
    )
    ok = float(first["epochs_per_s"]) >= BAR_EPOCHS_PER_S and again["agreed"] == 0  # type: ignore[arg-type]
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
