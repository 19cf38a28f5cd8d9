"""Start-up time of the pure CLI commands (bar: <= 0.5 s each, wall clock, process to exit).

Run:  .venv/bin/python benchmarks/bench_startup.py            # 7 runs per command
      .venv/bin/python benchmarks/bench_startup.py --check    # exit 1 if a command misses

Each command is the installed ``bme-oracle`` entry point doing real work (not
``--help``): ``index`` over the bundled mainnet retargets, ``token``,
``price``, ``hedge`` and ``retarget`` with the seed's token and real mainnet
figures. The figure is the whole process: interpreter start, imports (the CLI
imports only the owning command module), the computation and the output.
Also printed: what ``python -X importtime`` says the slowest imports of the
first command are, so a regression points at its cause.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "bme-oracle"
BAR_S = 0.5
TOKEN = "SBME84-250-300-190718"
COMMANDS: dict[str, tuple[str, ...]] = {
    "index": ("index", "--days", "14,28,84"),
    "token": ("token", TOKEN),
    "price": ("price", TOKEN, "--price", "0.00002", "--difficulty", "6353030562983"),
    "hedge": ("hedge", "--hashrate-th", "1000", "--token", TOKEN, "--price", "0.00002"),
    "retarget": (
        "retarget",
        "--network",
        "mainnet",
        "--prev-bits",
        "1703ba5d",
        "--first-time",
        "1706888526",
        "--last-time",
        "1708004000",
    ),
}


def wall_s(args: tuple[str, ...], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(BIN), *args], env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"bme-oracle {' '.join(args)}: {result.stderr.decode()[-2000:]}")
    return elapsed


def slowest_imports(args: tuple[str, ...], env: dict[str, str], top: int = 5) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "oracle", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return [f"{us / 1000:6.1f} ms {name}" for us, name in sorted(rows, reverse=True)[:top]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; load average {os.getloadavg()[0]:.2f}"
    )
    missed = []
    for name, command in COMMANDS.items():
        wall_s(command, env)  # warm the page cache and the .pyc files
        times = sorted(wall_s(command, env) for _ in range(args.runs))
        best, median = times[0], statistics.median(times)
        verdict = "meets" if median <= BAR_S else "MISSES"
        if median > BAR_S:
            missed.append(name)
        print(
            f"bme-oracle {name:<9} best {best * 1000:5.0f} ms  median {median * 1000:5.0f} ms  "
            f"max {times[-1] * 1000:5.0f} ms  ({args.runs} runs)  {verdict} the {BAR_S} s bar"
        )
    print("slowest cumulative imports of `bme-oracle index` (python -X importtime):")
    for line in slowest_imports(COMMANDS["index"], env):
        print("   ", line)
    return 1 if missed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
