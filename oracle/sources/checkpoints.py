"""Bundled mainnet checkpoints: real headers to height 878,976, bits to epoch 473.

Shipped inside the package (``oracle/data/``) like the checkpoints of light
wallets, from three files that are checked against each other at load:

* ``epoch_boundary_headers_0_832608.csv``: the first (2016e) and last (2016e-1)
  header of every epoch to height 832,608;
* ``retarget_headers_2016_878976.csv``: the retarget header (2016e) of every
  epoch 1 .. 436;
* ``epoch_bits_1_473.csv``: the bits of every epoch 1 .. 473 and the hash of the
  previous epoch's last block; no headers, no times.

Every header is parsed from its 80 raw bytes, its hash recomputed and its proof
of work checked; the files must agree wherever they overlap (same header at a
shared height, the bits file's bits and previous-block hash equal to the
headers'). Anything else is an ``InvalidHeader`` naming the file and line.

They serve three purposes: ``replay`` can run offline from them
(``CheckpointSource`` is a ``HeaderSource`` that only knows the bundled
heights), the cross-check uses them as a trust anchor for old epochs (a source
that contradicts a checkpoint is lying, whatever quorum it finds), and they
generate the default input of ``bme-oracle index`` (``retargets_csv``, written
to ``mainnet_retargets.csv`` by ``scripts/gen-retargets``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from oracle.bitcoin.difficulty import (
    EPOCH_BLOCKS,
    bits_to_target,
    get_network,
    parse_bits,
    permitted_difficulty_transition,
)
from oracle.bitcoin.header import Header, check_proof_of_work, parse_header_hex
from oracle.errors import HeightNotFound, InvalidBits, InvalidHeader
from oracle.sources.types import Observation, Tip, utc_now

BOUNDARY_FILE = "epoch_boundary_headers_0_832608.csv"
RETARGET_FILE = "retarget_headers_2016_878976.csv"
BITS_FILE = "epoch_bits_1_473.csv"
#: The header files, in the order they are read (a later file may repeat a height).
HEADER_FILES = (BOUNDARY_FILE, RETARGET_FILE)
#: The file ``retargets_csv`` renders (the default input of ``bme-oracle index``).
RETARGETS_FILE = "mainnet_retargets.csv"
SOURCE_NAME = "checkpoints"

_MAINNET = get_network("mainnet")


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """What the bundle holds, checked: headers by height and bits by epoch."""

    #: height -> header, for every bundled header (2016e and 2016e-1 heights)
    headers: Mapping[int, Header]
    #: epoch -> bits, for every epoch from 0 to the last one in the bits file
    bits: Mapping[int, int]
    #: epoch -> hash of block 2016e-1 (the bits file's ``prev_epoch_last_block_hash``)
    last_hashes: Mapping[int, str] = field(default_factory=dict)

    def retargets(self) -> list[tuple[int, int, int | None]]:
        """(height, bits, header time or None) of every epoch, by epoch."""
        rows: list[tuple[int, int, int | None]] = []
        for epoch, bits in sorted(self.bits.items()):
            header = self.headers.get(epoch * EPOCH_BLOCKS)
            rows.append((epoch * EPOCH_BLOCKS, bits, header.time if header else None))
        return rows


class _Place:
    """Where a row came from, for error messages: ``file: line n``."""

    def __init__(self, name: str, line: int) -> None:
        self.name, self.line = name, line

    def __str__(self) -> str:
        return f"{self.name}: line {self.line}"

    def error(self, message: str) -> InvalidHeader:
        return InvalidHeader(f"bundled checkpoints {self}: {message}")


def _rows(directory: Traversable | Path, name: str) -> Iterator[tuple[_Place, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO((directory / name).read_text(encoding="utf-8")))
    for row in reader:
        yield _Place(name, reader.line_num), row


def _int(place: _Place, row: Mapping[str, str], column: str) -> int:
    text = row.get(column) or ""
    if not text.isdigit():
        raise place.error(f"{column} should be a whole number, got {text!r}")
    return int(text)


def _header(place: _Place, row: Mapping[str, str]) -> tuple[int, Header]:
    """The row's header, checked against its own hash, proof of work and other columns."""
    height = _int(place, row, "height")
    try:
        header = parse_header_hex(row.get("header_hex") or "")
        check_proof_of_work(header, _MAINNET)
    except InvalidHeader as exc:
        raise place.error(f"height {height}: {exc}") from None
    claims = {
        "hash": header.block_hash_hex,
        "prev_hash": header.prev_hash_hex,
        "bits": f"{header.bits:08x}",
        "time": str(header.time),
        "epoch": str(height // EPOCH_BLOCKS),
    }
    for column, actual in claims.items():
        if column in row and row[column] != actual:
            raise place.error(
                f"height {height}: the header's {column} is {actual}, the row says {row[column]}"
            )
    return height, header


def load_checkpoints(directory: Traversable | Path) -> Checkpoints:
    """Read and cross-check the three bundled files in ``directory``; raise ``InvalidHeader``."""
    headers: dict[int, Header] = {}
    places: dict[int, _Place] = {}
    for name in HEADER_FILES:
        for place, row in _rows(directory, name):
            height, header = _header(place, row)
            known = headers.get(height)
            if known is not None and known.block_hash_hex != header.block_hash_hex:
                raise place.error(
                    f"height {height} is block {header.block_hash_hex}, "
                    f"but {places[height]} says {known.block_hash_hex}"
                )
            headers.setdefault(height, header)
            places.setdefault(height, place)
    if 0 not in headers:
        raise InvalidHeader(f"bundled checkpoints: {BOUNDARY_FILE} has no genesis header")
    bits = {0: headers[0].bits}
    last_hashes: dict[int, str] = {}
    for place, row in _rows(directory, BITS_FILE):
        epoch = _int(place, row, "epoch")
        bits[epoch] = _epoch_bits(place, row, epoch, headers, bits)
        last_hashes[epoch] = row["prev_epoch_last_block_hash"]
    for height in headers:
        if height % EPOCH_BLOCKS == 0 and height // EPOCH_BLOCKS not in bits:
            raise places[height].error(f"epoch {height // EPOCH_BLOCKS} is not in {BITS_FILE}")
    return Checkpoints(headers=headers, bits=bits, last_hashes=last_hashes)


def _epoch_bits(
    place: _Place,
    row: Mapping[str, str],
    epoch: int,
    headers: Mapping[int, Header],
    previous: Mapping[int, int],
) -> int:
    """One row of the bits file, checked against the headers and the epoch before it."""
    height = epoch * EPOCH_BLOCKS
    if epoch - 1 not in previous or epoch in previous:
        raise place.error(f"epoch {epoch} should follow epoch {max(previous)}")
    if _int(place, row, "start_height") != height:
        raise place.error(f"epoch {epoch} starts at height {height}, not {row['start_height']}")
    try:
        bits = parse_bits(row.get("bits") or "")
    except InvalidBits as exc:
        raise place.error(f"epoch {epoch}: {exc}") from None
    target_hex = f"{bits_to_target(bits):064x}"
    if (row.get("target_hex") or "") != target_hex:
        raise place.error(
            f"epoch {epoch}: target_hex {row.get('target_hex')!r} is not the target of "
            f"bits {bits:08x} ({target_hex})"
        )
    retarget = headers.get(height)
    if retarget is not None and retarget.bits != bits:
        raise place.error(
            f"epoch {epoch}: bits {bits:08x}, but block {height} has {retarget.bits:08x}"
        )
    if not permitted_difficulty_transition(
        _MAINNET, height=height, old_bits=previous[epoch - 1], new_bits=bits
    ):
        raise place.error(
            f"epoch {epoch}: bits {bits:08x} are outside [1/4, 4] of epoch {epoch - 1}"
        )
    last_hash = row.get("prev_epoch_last_block_hash") or ""
    if len(last_hash) != 64 or any(c not in "0123456789abcdef" for c in last_hash):
        raise place.error(
            f"epoch {epoch}: prev_epoch_last_block_hash should be 64 lowercase hex digits"
        )
    last = headers.get(height - 1)
    for label, expected in (
        (f"block {height - 1}", last.block_hash_hex if last else None),
        (f"the parent of block {height}", retarget.prev_hash_hex if retarget else None),
    ):
        if expected is not None and expected != last_hash:
            raise place.error(
                f"epoch {epoch}: prev_epoch_last_block_hash {last_hash}, but {label} is {expected}"
            )
    return bits


def bundle_directory() -> Traversable:
    """Where the package keeps its data files."""
    return resources.files("oracle") / "data"


@cache
def bundled_checkpoints() -> Checkpoints:
    """The package's checkpoints, loaded and checked once per process."""
    return load_checkpoints(bundle_directory())


def mainnet_checkpoints() -> dict[int, Header]:
    """Height -> header for every bundled header (hash and proof of work recomputed)."""
    return dict(bundled_checkpoints().headers)


def checkpoint_bits(epoch: int) -> int | None:
    """The bundled bits of ``epoch`` (to the last epoch of the bits file), or None past it."""
    return bundled_checkpoints().bits.get(epoch)


def checkpoint_last_hash(epoch: int) -> str | None:
    """The bundled hash of block 2016·epoch − 1 (the parent of epoch's retarget), or None."""
    return bundled_checkpoints().last_hashes.get(epoch)


def last_checkpoint() -> tuple[int, Header]:
    """The highest bundled header and its height."""
    headers = bundled_checkpoints().headers
    height = max(headers)
    return height, headers[height]


def last_checkpoint_epoch() -> int:
    """The highest epoch with a bundled header."""
    return last_checkpoint()[0] // EPOCH_BLOCKS


def retargets_csv(checkpoints: Checkpoints | None = None) -> str:
    """``height,bits,time`` for every bundled epoch; time empty where only bits are bundled."""
    out = io.StringIO()
    writer = csv.writer(out)  # CRLF rows, as the csv module writes them
    writer.writerow(["height", "bits", "time"])
    for height, bits, time in (checkpoints or bundled_checkpoints()).retargets():
        writer.writerow([height, f"{bits:08x}", "" if time is None else time])
    return out.getvalue()


class CheckpointSource:
    """A read-only ``HeaderSource`` over the bundled checkpoint headers (mainnet only)."""

    name = SOURCE_NAME

    def __init__(self) -> None:
        self._headers = bundled_checkpoints().headers
        self._tip_height = max(self._headers)

    async def tip(self) -> Tip:
        header = self._headers[self._tip_height]
        return Tip(self.name, self._tip_height, header.block_hash_hex, utc_now())

    async def header_at(self, height: int) -> Observation:
        header = self._headers.get(height)
        if header is None:
            raise HeightNotFound(
                f"only the bundled epoch-boundary and retarget heights up to "
                f"{self._tip_height:,} are served",
                source=self.name,
                request=f"height {height}",
            )
        return Observation(self.name, height, header.block_hash_hex, header, utc_now())

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return [await self.header_at(height) for height in heights]

    async def new_blocks(self) -> AsyncIterator[Tip]:
        """The bundle never grows: announce the tip once, then stay silent."""
        yield await self.tip()
        await asyncio.Event().wait()

    async def close(self) -> None:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``scripts/gen-retargets [--check]``: write (or check) ``oracle/data/{RETARGETS_FILE}``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["--check"]):
        print("usage: gen-retargets [--check]", file=sys.stderr)
        return 2
    path = Path(str(bundle_directory() / RETARGETS_FILE))
    text = retargets_csv()
    if args:
        if path.read_bytes() != text.encode():
            print(
                f"gen-retargets: {path} is out of date; run scripts/gen-retargets", file=sys.stderr
            )
            return 1
        return 0
    path.write_bytes(text.encode())
    print(f"wrote {path} ({len(text.splitlines()) - 1} epochs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
