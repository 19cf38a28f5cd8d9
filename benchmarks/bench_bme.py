"""BME14/28/84 over 10,000 epochs: CPU time of the exact computation (issue bar: < 1 s).

Run: .venv/bin/python benchmarks/bench_bme.py
Synthetic targets (random valid mainnet-range bits) so the window sums are not trivially equal.
"""

from __future__ import annotations

import platform
import random
import time

from oracle.bitcoin.difficulty import encode_compact
from oracle.index.bme import EpochTarget, bme_series

EPOCHS = 10_000
REPEATS = 5


def make_history(seed: int = 7) -> list[EpochTarget]:
    rng = random.Random(seed)
    history = []
    for epoch in range(EPOCHS):
        target = rng.randrange(1 << 170, 0xFFFF << 208)
        bits = encode_compact(target)
        history.append(EpochTarget.from_bits(epoch, bits))
    return history


def main() -> None:
    history = make_history()
    timings = []
    for _ in range(REPEATS):
        start = time.process_time()
        results = {n: bme_series(n, history) for n in (14, 28, 84)}
        timings.append(time.process_time() - start)
    assert len(results[84]) == EPOCHS - 5
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, python {platform.python_version()}")
    print(f"BME14/28/84 over {EPOCHS} epochs (exact fractions + 10^18 integers)")
    print(f"CPU seconds: best {min(timings):.3f}, median {sorted(timings)[REPEATS // 2]:.3f}")


if __name__ == "__main__":
    main()
