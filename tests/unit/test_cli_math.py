"""The math commands through the real console script (`bme-oracle`)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent / "bme-oracle"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_index_bundled_sample_json() -> None:
    out = run("index", "--days", "14,28,84", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_epoch = {row["epoch"]: row for row in data["epochs"]}
    assert by_epoch[284]["height"] == 572_544
    assert by_epoch[284]["bme"]["14"]["decimal"].startswith("0.0000395")  # 3.958E-05
    assert by_epoch[285]["bme"]["28"]["decimal"].startswith("0.0000385")  # 3.855E-05
    assert by_epoch[4]["bme"]["84"] is None and by_epoch[5]["bme"]["84"] is not None
    assert int(by_epoch[284]["bme"]["14"]["fixed"]) // 10**10 == 3958


def _bundled(name: str) -> list[dict[str, str]]:
    with (ROOT / "oracle" / "data" / name).open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_index_default_reaches_epoch_473_with_times_to_436() -> None:
    out = run("index", "--days", "14,28,84", "--json")
    assert out.returncode == 0, out.stderr
    epochs = json.loads(out.stdout)["epochs"]
    assert [row["epoch"] for row in epochs] == list(range(474))
    times = {int(r["epoch"]): int(r["time"]) for r in _bundled("retarget_headers_2016_878976.csv")}
    assert times.keys() == set(range(1, 437))
    assert [row["time"] for row in epochs[1:]] == [times.get(e) for e in range(1, 474)]
    # BME_N at epoch 473 (DESIGN.md, fixed point), from the bits file's targets alone:
    # every block of epochs 437..473 (heights 880,992..955,583) earns 3.125 BTC.
    targets = {int(r["epoch"]): int(r["target_hex"], 16) for r in _bundled("epoch_bits_1_473.csv")}
    diff1 = 0xFFFF << 208
    for n in (14, 28, 84):
        window = range(473 - n // 14 + 1, 474)
        subsidy = 2016 * 312_500_000
        numerator = sum(subsidy * targets[e] for e in window) * 86400 * 10**22
        fixed = numerator // ((n // 14) * 2016 * 2**32 * diff1)
        value = epochs[473]["bme"][str(n)]
        assert value["fixed"] == str(fixed)
        assert abs(Fraction(value["decimal"]) - Fraction(fixed, 10**18)) < Fraction(1, 10**18)
    assert epochs[473]["bme"]["14"]["decimal"].startswith("0.00000050318")  # 5.032E-07
    text = run("index", "--days", "14").stdout.splitlines()
    assert text[-1].split()[:4] == ["473", "953568", "1.249329e+14", "5.032E-07"]


def test_price_estimates_the_height_from_the_last_bundled_header() -> None:
    last = _bundled("retarget_headers_2016_878976.csv")[-1]
    expiry = int(datetime(2026, 1, 1, 2, tzinfo=UTC).timestamp())
    expected = int(last["height"]) + (expiry - int(last["time"])) // 600
    out = run("price", "LBME28-250-500-260101", "--path", "1,2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["k_height"] == expected == 929_843


def test_index_with_difficulty_column(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("height,difficulty\n572544,6353030562983\n574560,6702169884349\n")
    out = run("index", "--input", str(csv_file), "--days", "14,28")
    assert out.returncode == 0, out.stderr
    assert "3.958E-05" in out.stdout and "3.855E-05" in out.stdout


def test_index_reports_bad_rows_with_line_numbers(tmp_path: Path) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(
        "height,bits,time\n"
        "4032,1d00ffff,1\n"
        "4033,1d00ffff,2\n"  # line 3: not a multiple of 2016
        "4032,1d00ffff,3\n"  # line 4: duplicate
        "2016,1d00ffff,4\n"  # line 5: out of order
        "6048,zz,5\n"  # line 6: unparsable bits
        "8064,1d80ffff,6\n"  # line 7: negative bits
    )
    out = run("index", "--input", str(csv_file))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    for fragment in (
        "line 3: height 4033",
        "line 4: height 4032 duplicates line 2",
        "line 5: height 2016 is out of order",
        "line 6: bits",
        "line 7: bits 0x1d80ffff",
    ):
        assert fragment in out.stderr


def test_retarget_command() -> None:
    out = run(
        "retarget",
        "--network",
        "mainnet",
        "--prev-bits",
        "1c05a3f4",
        "--first-time",
        "1279008237",
        "--last-time",
        "1279297671",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["bits"] == "1c0168fd"
    bad = run(
        "retarget",
        "--network",
        "moonnet",
        "--prev-bits",
        "1d00ffff",
        "--first-time",
        "0",
        "--last-time",
        "1",
    )
    assert bad.returncode == 2 and "unknown network 'moonnet'" in bad.stderr


def test_token_command() -> None:
    out = run("token", "SBME84-250-300-190718", "--index", "275", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["expiry"] == "2019-07-18T02:00:00Z"
    assert data["collateral_per_pair_btc"] == "5.00000000"
    assert data["payout_long_btc"] == "2.50000000" and data["payout_short_btc"] == "2.50000000"
    bad = run("token", "SBME84-250-300-19071")
    assert bad.returncode == 2 and "YYMMDD" in bad.stderr and "Traceback" not in bad.stderr


def test_price_and_hedge_commands() -> None:
    out = run(
        "price",
        "LBME28-250-500-190718",
        "--price",
        "2.5",
        "--difficulty",
        "6353030562983",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["implied_earnings_units"] == "275.00000000"
    path = run("price", "SBME28-250-500-190718", "--path", "6353030562983,6702169884349", "--json")
    assert path.returncode == 0, path.stderr
    assert json.loads(path.stdout)["index_units"].startswith("385.49")
    hedge = run(
        "hedge",
        "--hashrate-th",
        "1000000",
        "--token",
        "SBME84-250-300-190718",
        "--price",
        "2",
        "--json",
    )
    assert json.loads(hedge.stdout)["tokens"] == "84.000000"
    none = run("price", "LBME28-250-500-190718", "--price", "99", "--difficulty", "1")
    assert none.returncode == 2 and "outside" in none.stderr


@pytest.mark.parametrize(
    "args",
    [["index", "--days", "15"], ["hedge", "--hashrate-th", "x", "--token", "a", "--price", "1"]],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
