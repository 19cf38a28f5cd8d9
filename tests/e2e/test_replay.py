"""`bme-oracle replay` over real mainnet history (bundled checkpoints), offline, twice.

Also: the checkpoints as a trust anchor — a quorum that contradicts a bundled
mainnet header is not an agreement.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

from oracle.agreement.crosscheck import Agreed, Insufficient
from oracle.bitcoin.header import parse_header_hex
from oracle.pipeline import Pipeline
from oracle.sources.checkpoints import mainnet_checkpoints
from tests.conftest import DATA, ROOT
from tests.e2e.helpers import BIN


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=600)


def test_replay_mainnet_checkpoints_is_resumable_and_idempotent(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'replay.sqlite'}"
    assert run("db", "upgrade", "--db", db).returncode == 0
    part = run(
        "replay", "--checkpoints", "--from-epoch", "0", "--to-epoch", "150", "--db", db, "--json"
    )
    assert part.returncode == 0, part.stderr[-3000:]
    assert json.loads(part.stdout)["agreed"] == 151
    # To epoch 440: the bundle's tip is the retarget header of epoch 436 (height 878,976);
    # epochs 414..436 have that header alone, so they are agreed by the [1/4, 4] bound.
    whole = run(
        "replay", "--checkpoints", "--from-epoch", "0", "--to-epoch", "440", "--db", db, "--json"
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    summary = json.loads(whole.stdout)
    assert summary["agreed"] == 286 and summary["skipped"] == 155  # resumed where it stopped
    assert summary["skipped_reasons"] == {"already agreed": 151, "beyond the sources' tip": 4}
    assert summary["disputed"] == []
    again = run(
        "replay", "--checkpoints", "--from-epoch", "0", "--to-epoch", "440", "--db", db, "--json"
    )
    summary = json.loads(again.stdout)
    assert summary["agreed"] == 0 and summary["skipped"] == 441  # nothing changes
    index = run("index", "--days", "14,28,84", "--json")  # the same data through the pure path
    by_epoch = {row["epoch"]: row for row in json.loads(index.stdout)["epochs"]}
    assert by_epoch[284]["bme"]["14"]["decimal"].startswith("0.0000395")  # DESIGN: 3.958E-05

    import asyncio

    from oracle.store.repository import open_repository

    async def stored() -> tuple[
        int, int, int, int, list[tuple[int, str, int, int]], list[bytes | None]
    ]:
        repo = await open_repository(db)
        try:
            v14 = await repo.index_value("mainnet", 14, 284)
            v28 = await repo.index_value("mainnet", 28, 285)
            v84 = await repo.index_value("mainnet", 84, 436)
            history = await repo.agreed_history("mainnet")
            tail = [(h.height, h.block_hash_hex, h.bits, h.time) for h in history[414:]]
            proofs = []
            for epoch in (0, 1, 413, 414):
                record = await repo.get_retarget("mainnet", epoch)
                assert record is not None
                proofs.append(record.last_header)
            return v14.fixed, v28.fixed, v84.fixed, len(history), tail, proofs
        finally:
            await repo.close()

    fixed14, fixed28, fixed84, count, tail, (genesis, first, last, bound) = asyncio.run(stored())
    assert count == 437
    with (ROOT / "oracle" / "data" / "retarget_headers_2016_878976.csv").open() as f:
        expected = [
            (int(r["height"]), r["hash"], int(r["bits"], 16), int(r["time"]))
            for r in csv.DictReader(f)
            if int(r["epoch"]) >= 414
        ]
    assert tail == expected and len(tail) == 23
    assert str(fixed84) == by_epoch[436]["bme"]["84"]["fixed"]
    # the proof's first half (height 2016e-1, checked by the retarget rule) is kept for
    # every epoch whose 2016e-1 header is bundled; the genesis has no previous epoch, and
    # 414.. are agreed by the [1/4, 4] bound only (no 2016e-1 header bundled): not publishable
    checkpoints = mainnet_checkpoints()
    assert genesis is None and bound is None
    assert first == checkpoints[2015].raw and last == checkpoints[413 * 2016 - 1].raw
    assert str(fixed14) == by_epoch[284]["bme"]["14"]["fixed"]
    assert str(fixed28) == by_epoch[285]["bme"]["28"]["fixed"]
    assert str(fixed14).startswith("3958")  # 3.958E-05 x 10^18
    assert str(fixed28).startswith("3854") or str(fixed28).startswith("3855")


def test_checkpoint_anchor_overrules_a_lying_quorum() -> None:
    pipeline = Pipeline(
        network="mainnet",
        repository=None,
        notifier=None,  # type: ignore[arg-type]
        confirmations=6,
    )
    # A real stale block (valid PoW) claimed by a quorum as the retarget of epoch 411.
    stale = parse_header_hex(
        (DATA / "stale_headers_822941_831769.csv").read_text().splitlines()[1].split(",")[7]
    )
    lie = Agreed(
        epoch=411,
        height=828_576,
        block_hash_hex=stale.block_hash_hex,
        bits=stale.bits,
        time=stale.time,
        header=stale.raw,
        sources=("a", "b"),
    )
    outcome = pipeline._anchor(lie)
    assert isinstance(outcome, Insufficient)
    assert "checkpoint" in outcome.reasons[0]
    real = mainnet_checkpoints()[828_576]
    truth = Agreed(
        epoch=411,
        height=828_576,
        block_hash_hex=real.block_hash_hex,
        bits=real.bits,
        time=real.time,
        header=real.raw,
        sources=("a", "b"),
    )
    assert pipeline._anchor(truth) is truth
