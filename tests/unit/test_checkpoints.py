"""The bundled mainnet checkpoints (``oracle.sources.checkpoints``) on the real files.

Expected values are read here from the CSV files themselves (the ``csv`` module,
``hashlib``), never from the code under test; corrupted copies in a temporary
folder must be refused with the file and line named.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle.errors import HeightNotFound, InvalidHeader
from oracle.sources import checkpoints
from oracle.sources.checkpoints import (
    CheckpointSource,
    checkpoint_bits,
    last_checkpoint,
    last_checkpoint_epoch,
    load_checkpoints,
    mainnet_checkpoints,
    retargets_csv,
)
from tests.conftest import ROOT

BUNDLE = ROOT / "oracle" / "data"
BOUNDARY = "epoch_boundary_headers_0_832608.csv"
RETARGET = "retarget_headers_2016_878976.csv"
BITS = "epoch_bits_1_473.csv"


def rows(name: str, folder: Path = BUNDLE) -> list[dict[str, str]]:
    with (folder / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def display_hash(header_hex: str) -> str:
    raw = bytes.fromhex(header_hex)
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


def test_every_bundled_header_is_served_with_its_hash() -> None:
    expected = {int(r["height"]): r["hash"] for r in rows(BOUNDARY) + rows(RETARGET)}
    assert len(expected) == 827 + 23  # the retarget file adds epochs 414..436
    headers = mainnet_checkpoints()
    assert {h: header.block_hash_hex for h, header in headers.items()} == expected
    assert all(display_hash(headers[h].raw.hex()) == expected[h] for h in expected)
    assert max(expected) == 878_976 == last_checkpoint()[0]
    assert last_checkpoint_epoch() == 436


def test_the_trust_anchor_covers_every_retarget_to_epoch_436() -> None:
    """``Pipeline`` anchors each retarget height found in ``mainnet_checkpoints()``."""
    retargets = {h // 2016 for h in mainnet_checkpoints() if h % 2016 == 0}
    assert retargets == set(range(437))
    by_height = {int(r["height"]): r["hash"] for r in rows(RETARGET)}
    for height, header in mainnet_checkpoints().items():
        if height in by_height:
            assert header.block_hash_hex == by_height[height]


def test_checkpoint_bits_of_every_epoch_to_473() -> None:
    genesis = rows(BOUNDARY)[0]
    assert genesis["height"] == "0"
    assert checkpoint_bits(0) == int(genesis["bits"], 16)
    for row in rows(BITS):
        assert checkpoint_bits(int(row["epoch"])) == int(row["bits"], 16)
    assert checkpoint_bits(473) == 0x170240C3
    assert checkpoint_bits(474) is None


def test_checkpoint_source_serves_the_bundle_and_nothing_else() -> None:
    async def scenario() -> None:
        source = CheckpointSource()
        tip = await source.tip()
        last = rows(RETARGET)[-1]
        assert (tip.height, tip.block_hash_hex) == (int(last["height"]), last["hash"])
        # epoch 414 has its retarget header only: 2016e-1 is not bundled
        (retarget,) = await source.headers_at([834_624])
        assert retarget.block_hash_hex == rows(RETARGET)[413]["hash"]
        with pytest.raises(HeightNotFound, match="878,976"):
            await source.headers_at([832_608, 834_623, 834_624])
        with pytest.raises(HeightNotFound):
            await source.header_at(880_992)

    asyncio.run(scenario())


def test_mainnet_retargets_csv_is_what_the_generator_writes() -> None:
    """``scripts/gen-retargets`` output, byte for byte (regenerate after a data change)."""
    assert (BUNDLE / "mainnet_retargets.csv").read_bytes() == retargets_csv().encode()


def test_mainnet_retargets_csv_matches_the_source_files() -> None:
    times = {int(r["height"]): r["time"] for r in rows(RETARGET)}
    genesis = rows(BOUNDARY)[0]
    expected = [("0", genesis["bits"], genesis["time"])]
    expected += [
        (r["start_height"], r["bits"], times.get(int(r["start_height"]), "")) for r in rows(BITS)
    ]
    got = [(r["height"], r["bits"], r["time"]) for r in rows("mainnet_retargets.csv")]
    assert got == expected
    assert len(got) == 474 and got[436][2] == "1736712111" and got[437][2] == ""


# -- corrupted copies ------------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[Path]:
    for name in (BOUNDARY, RETARGET, BITS):
        shutil.copy(BUNDLE / name, tmp_path / name)
        (tmp_path / name).chmod(0o644)
    yield tmp_path


def edit(folder: Path, name: str, line: int, column: str, value: str) -> None:
    """Set ``column`` of the row on 1-based file ``line`` (line 1 is the header row)."""
    path = folder / name
    with path.open(encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    table[line - 1][table[0].index(column)] = value
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(table)


def test_an_untouched_copy_loads(copy: Path) -> None:
    loaded = load_checkpoints(copy)
    assert len(loaded.headers) == 850 and max(loaded.bits) == 473


def test_a_header_that_does_not_hash_to_its_hash(copy: Path) -> None:
    row = rows(RETARGET, copy)[99]  # line 101: height 201,600
    flipped = row["header_hex"][:-2] + ("00" if row["header_hex"][-2:] != "00" else "01")
    edit(copy, RETARGET, 101, "header_hex", flipped)
    with pytest.raises(InvalidHeader, match=f"{RETARGET}: line 101: height 201600"):
        load_checkpoints(copy)


def test_header_files_that_disagree_at_a_shared_height(copy: Path) -> None:
    # line 3 of the retarget file (height 4032) carries the real header of height 2016:
    # it hashes right and meets its bits, but the boundary file has another block there.
    first = rows(RETARGET, copy)[0]
    for column in ("hash", "time", "bits", "header_hex"):
        edit(copy, RETARGET, 3, column, first[column])
    with pytest.raises(InvalidHeader) as error:
        load_checkpoints(copy)
    message = str(error.value)
    assert f"{RETARGET}: line 3: height 4032 is block {first['hash']}" in message
    assert f"but {BOUNDARY}: line 6 says" in message  # the boundary row of height 4032


def test_a_bits_row_that_contradicts_its_header(copy: Path) -> None:
    real = rows(BITS, copy)[199]["bits"]  # line 201: epoch 200 (height 403,200)
    assert real != "1b0404cb"
    edit(copy, BITS, 201, "bits", "1b0404cb")
    edit(copy, BITS, 201, "target_hex", f"{0x0404CB << (8 * (0x1B - 3)):064x}")
    message = f"{BITS}: line 201: epoch 200: bits 1b0404cb, but block 403200 has {real}"
    with pytest.raises(InvalidHeader, match=message):
        load_checkpoints(copy)


def test_a_previous_block_hash_that_contradicts_the_headers(copy: Path) -> None:
    edit(copy, BITS, 430, "prev_epoch_last_block_hash", "00" * 32)  # epoch 429: retarget file
    with pytest.raises(InvalidHeader, match=f"{BITS}: line 430: epoch 429: prev_epoch_last"):
        load_checkpoints(copy)


def test_a_bits_only_previous_block_hash_must_be_a_hash(copy: Path) -> None:
    """Epochs 437..473 have no header to compare with; the hash anchors continuity."""
    edit(copy, BITS, 461, "prev_epoch_last_block_hash", "XYZ")  # epoch 460
    with pytest.raises(InvalidHeader, match=f"{BITS}: line 461: epoch 460: prev_epoch_last"):
        load_checkpoints(copy)


def test_bits_only_epochs_are_held_to_the_retarget_bound(copy: Path) -> None:
    # epoch 460 has no header anywhere; a 5x easier target cannot follow epoch 459
    edit(copy, BITS, 461, "bits", "170b0000")
    edit(copy, BITS, 461, "target_hex", f"{0x0B0000 << (8 * 20):064x}")
    with pytest.raises(InvalidHeader, match=f"{BITS}: line 461: epoch 460: .*outside"):
        load_checkpoints(copy)


def test_the_package_refuses_a_corrupted_bundle(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``replay --checkpoints`` and the pipeline meet: the error, not wrong headers."""
    edit(copy, BOUNDARY, 2, "hash", "11" * 32)
    monkeypatch.setattr(checkpoints, "bundle_directory", lambda: copy)
    checkpoints.bundled_checkpoints.cache_clear()
    try:
        with pytest.raises(InvalidHeader, match=f"{BOUNDARY}: line 2: height 0"):
            CheckpointSource()
        with pytest.raises(InvalidHeader, match=f"{BOUNDARY}: line 2"):
            mainnet_checkpoints()
    finally:
        checkpoints.bundled_checkpoints.cache_clear()


def test_a_target_that_is_not_the_target_of_its_bits(copy: Path) -> None:
    edit(copy, BITS, 2, "target_hex", "00000000fffe" + "0" * 52)  # epoch 1
    with pytest.raises(InvalidHeader, match=f"{BITS}: line 2: epoch 1: target_hex"):
        load_checkpoints(copy)
