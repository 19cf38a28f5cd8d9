"""``price --db``: a token's window and D0 from the oracle's stored agreed history.

Why: an operator's store holds the real retarget times and difficulties past the
bundled data, and ``price`` must read them (the window, D0) from there when told
to. Here the store holds real mainnet retargets 413..419 (the bundled headers,
recorded as agreed), so the issue's token ``LBME84-10-30-240601`` is priced from
the store alone, on each backend.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from oracle.sources.checkpoints import mainnet_checkpoints
from oracle.store.records import AgreedInput
from oracle.store.repository import open_repository
from tests.conftest import ROOT

BIN = Path(sys.executable).parent / "bme-oracle"
TOKEN = "LBME84-10-30-240601"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


async def _store(url: str, epochs: range) -> None:
    headers = mainnet_checkpoints()
    repository = await open_repository(url)
    try:
        items = []
        for epoch in epochs:
            header = headers[epoch * 2016]
            items.append(
                AgreedInput(
                    epoch,
                    epoch * 2016,
                    header.block_hash_hex,
                    header.bits,
                    header.time,
                    header.raw,
                    ("checkpoints",),
                )
            )
        await repository.record_agreed_many("mainnet", items)
    finally:
        await repository.close()


async def test_price_reads_the_window_and_d0_from_the_store(migrated_store_url: str) -> None:
    empty = run("price", TOKEN, "--price", "0.07", "--db", migrated_store_url)
    assert empty.returncode == 2 and "holds no agreed mainnet epochs" in empty.stderr

    await _store(migrated_store_url, range(415, 420))
    no_d0 = run("price", TOKEN, "--price", "0.07", "--db", migrated_store_url)
    assert no_d0.returncode == 2, no_d0.stderr
    assert "D0 is unknown: epoch 413" in no_d0.stderr and "give --difficulty" in no_d0.stderr

    await _store(migrated_store_url, range(413, 415))
    out = run("price", TOKEN, "--price", "0.0729", "--db", migrated_store_url, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["history"].startswith("store ")
    assert data["window"] == {
        "first_epoch": 414,
        "last_epoch": 419,
        "last_epoch_from": "expiry",
        "times_known_to_epoch": 419,
    }
    assert data["d0"]["epoch"] == 413 and data["d0"]["from"] == data["history"]
    assert data["d0"]["difficulty"].startswith("79351228131136.")  # bits 17038c12
    # The last epoch's difficulty predicted as the real one: the 10.73 and 0.0729.
    path = run("price", TOKEN, "--path", "84381461788831.337", "--db", migrated_store_url)
    assert path.returncode == 0, path.stderr
    assert "index 1.073E-06 BTC per TH/s per day" in path.stdout
    assert "long value 0.0729" in path.stdout
