"""Reading retarget histories from CSV for ``bme-oracle index``.

A file has a header row with ``height`` and either ``bits`` (hex) or
``difficulty`` (an exact decimal), optionally ``time`` (unix seconds); one row
per retarget epoch. Every problem is reported with its line number, all at once.
"""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from importlib import resources
from pathlib import Path

from oracle.bitcoin.difficulty import DIFF1_TARGET, EPOCH_BLOCKS, bits_to_target, parse_bits
from oracle.errors import InputError, InvalidBits
from oracle.index.bme import EpochTarget, parse_decimal

MAX_PROBLEMS_SHOWN = 20


def bundled_sample_path() -> Path:
    """The mainnet retargets shipped with the package: every epoch to 473 (height 953,568).

    Generated from the bundled checkpoints by ``scripts/gen-retargets``: header
    times to epoch 436 (height 878,976), bits only (no time) after it.
    """
    return Path(str(resources.files("oracle") / "data" / "mainnet_retargets.csv"))


def read_history(path: str | Path) -> list[EpochTarget]:
    """Parse a retarget CSV into epochs sorted as given; raise InputError listing bad lines.

    UTF-8, with or without the byte-order mark Excel writes; anything else is refused with
    the line and byte where decoding failed.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the CSV as UTF-8"
        ) from None
    return parse_history(text, str(path))


def parse_history(text: str, name: str = "<input>") -> list[EpochTarget]:
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip() for c in (reader.fieldnames or [])}
    if "height" not in columns or not ({"bits", "difficulty"} & columns):
        raise InputError(
            f"{name}: line 1: header must name 'height' and 'bits' or 'difficulty', "
            f"got {sorted(columns)}"
        )
    use_bits = "bits" in columns
    problems: list[str] = []
    history: list[EpochTarget] = []
    seen: dict[int, int] = {}
    for row in reader:
        line = reader.line_num
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            item = _parse_row(row, use_bits)
        except (InputError, InvalidBits) as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if item.epoch in seen:
            problems.append(
                f"line {line}: height {item.epoch * EPOCH_BLOCKS} "
                f"duplicates line {seen[item.epoch]}"
            )
            continue
        if history and item.epoch < history[-1].epoch:
            problems.append(
                f"line {line}: height {item.epoch * EPOCH_BLOCKS} is out of order "
                f"(after {history[-1].epoch * EPOCH_BLOCKS})"
            )
            continue
        seen[item.epoch] = line
        history.append(item)
    if problems:
        shown = problems[:MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        suffix = f"\n  ... and {more} more" if more else ""
        raise InputError(f"{name}: {len(problems)} bad row(s):\n  " + "\n  ".join(shown) + suffix)
    if not history:
        raise InputError(f"{name}: no data rows")
    return history


def _parse_row(row: dict[str, str], use_bits: bool) -> EpochTarget:
    height_text = row.get("height", "")
    if not height_text.isdigit():
        raise InputError(f"height must be a whole number, got {height_text!r}")
    height = int(height_text)
    if height % EPOCH_BLOCKS:
        raise InputError(f"height {height} is not a retarget height (a multiple of {EPOCH_BLOCKS})")
    time_value: int | None = None
    time_text = row.get("time", "")
    if time_text:
        if not time_text.isdigit():
            raise InputError(f"time must be unix seconds, got {time_text!r}")
        time_value = int(time_text)
    epoch = height // EPOCH_BLOCKS
    if use_bits:
        bits = parse_bits(row.get("bits", ""))
        return EpochTarget(epoch=epoch, target=bits_to_target(bits), time=time_value)
    difficulty = _parse_difficulty(row.get("difficulty", ""))
    return EpochTarget(epoch=epoch, target=Fraction(DIFF1_TARGET) / difficulty, time=time_value)


def _parse_difficulty(text: str) -> Fraction:
    # Exact from the digits, with a bounded exponent: Fraction("1e999999999") would
    # build a billion-digit integer and stall the command.
    try:
        value = parse_decimal(text, "difficulty")
    except InputError:
        raise InputError(f"difficulty must be a decimal number, got {text!r}") from None
    if value <= 0:
        raise InputError(f"difficulty must be positive, got {text!r}")
    return value
