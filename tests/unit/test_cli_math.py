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


def test_price_finds_the_window_from_the_last_bundled_retarget_time() -> None:
    # Beyond the last bundled header time (epoch 436), epochs are 2016 x 600 s apart.
    last = _bundled("retarget_headers_2016_878976.csv")[-1]
    expiry = int(datetime(2026, 1, 1, 2, tzinfo=UTC).timestamp())
    expected = int(last["epoch"]) + (expiry - int(last["time"])) // 1_209_600
    out = run("price", "LBME28-250-500-260101", "--path", "1,2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["window"]["last_epoch"] == expected == 461
    assert data["window"]["times_known_to_epoch"] == 436
    assert [e["epoch"] for e in data["epochs"]] == [460, 461]
    assert all(e["time_estimated"] for e in data["epochs"])


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


def test_index_refuses_an_unbounded_difficulty(tmp_path: Path) -> None:
    # Fraction("1e999999999") would build a billion-digit integer: refused, not stalled.
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("height,difficulty\n2016,1e999999999\n4032,1\n")
    out = run("index", "--input", str(csv_file))
    assert out.returncode == 2 and "line 2: difficulty must be a decimal number" in out.stderr


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
    # The example: the index typed as `index` prints it, in BTC per TH/s per day.
    out = run("token", "SBME84-250-300-190718", "--index", "2.8e-5", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["expiry"] == "2019-07-18T02:00:00Z" and data["expiry_ts"] == 1563415200
    assert data["unit"] == "BTC per TH/s per day"
    assert (data["floor"], data["cap"], data["floor_units"]) == ("0.000025", "0.00003", "250")
    assert data["collateral_per_pair_btc"] == "5.00000000"
    assert data["collateral_per_pair_sat"] == 500_000_000
    assert data["index"] == "0.000028"
    assert data["payout_long_btc"] == "3.00000000" and data["payout_short_btc"] == "2.00000000"
    text = run("token", "SBME84-250-300-190718", "--index", "0.000028").stdout
    assert "long 3.00000000 BTC, short 2.00000000 BTC" in text
    assert "2.8E-05 BTC per TH/s per day" in text and "floor: 2.5E-05" in text
    bad = run("token", "SBME84-250-300-19071")
    assert bad.returncode == 2 and "YYMMDD" in bad.stderr and "Traceback" not in bad.stderr


def test_token_with_decimal_strikes_echoes_the_canonical_name() -> None:
    out = run("token", "LBME84-4.85-5.40-261215", "--index", "5.032E-07", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["name"] == "LBME84-4.85-5.4-261215" and data["series"] == "BME84-4.85-5.4-261215"
    assert (data["floor_fixed"], data["cap_fixed"]) == ("485000000000", "540000000000")
    assert data["collateral_per_pair_sat"] == 5_500_000
    # (5.032E-07 - 4.85E-07) x 10^6 = 0.0182; (5.4E-07 - 5.032E-07) x 10^6 = 0.0368
    assert data["payout_long_btc"] == "0.01820000" and data["payout_short_btc"] == "0.03680000"


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("2.8e-5x", "--index must be a decimal number"),
        ("1e999999999", "exponent 999999999 is out of range"),
        ("-2.8e-5", "must not be negative"),
        ("1/3", "--index must be a decimal number"),
        ("nan", "--index must be a decimal number"),
    ],
)
def test_token_refuses_a_bad_index(index: str, message: str) -> None:
    out = run("token", "SBME84-250-300-190718", f"--index={index}")
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_price_and_hedge_commands() -> None:
    out = run("price", "LBME28-250-500-190718", "--price", "2.5", "--difficulty", "6353030562983")
    assert out.returncode == 0, out.stderr
    assert "implied earnings 2.750E-05 BTC per TH/s per day" in out.stdout
    out = run(
        "price",
        "LBME28-250-500-190718",
        "--price",
        "2.5",
        "--difficulty",
        "6353030562983",
        "--json",
    )
    data = json.loads(out.stdout)
    assert data["implied_earnings_units"] == "275.00000000"
    assert data["implied_earnings"] == "2.750E-05" and data["unit"] == "BTC per TH/s per day"
    assert data["d0"] == {"epoch": 288, "difficulty": "6353030562983.0000", "from": "--difficulty"}
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


def test_seed_examples_through_the_cli() -> None:
    # Seed 5.3: 6.7, 6.7, 6.9, 7.1, 7.3, 7.9 T -> settlement index 3.553E-05, price 15.53.
    out = run(
        "price",
        "LBME84-200-400-190716",
        "--path",
        "6.7e12,6.7e12,6.9e12,7.1e12,7.3e12,7.9e12",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["index"] == "3.553E-05" and data["value_btc"].startswith("15.53")
    assert [e["epoch"] for e in data["epochs"]] == list(range(285, 291))
    # Seed 5.1: LBME84-200-400-190716 at 12 WBTC implies 3.2E-05 and a difficulty of 7.86T;
    # D0 is the difficulty just before the window (epoch 284: 6,353,030,562,983, the seed's 6.35T).
    out = run("price", "LBME84-200-400-190716", "--price", "12", "--json")
    data = json.loads(out.stdout)
    assert data["d0"]["epoch"] == 284 and data["d0"]["difficulty"].startswith("6353030562983.")
    assert data["implied_earnings"] == "3.200E-05"
    assert data["implied_difficulty"].startswith("785803")  # 7.858E12
    # Seed 4.2: 100 TH/s hedged with SBME84-200-400-190716 at 8: 0.0084 tokens, 0.2688 locked.
    out = run("hedge", "--hashrate-th", "100", "--token", "SBME84-200-400-190716", "--price", "8")
    assert out.returncode == 0, out.stderr
    assert "hold 0.008400 x SBME84-200-400-190716" in out.stdout
    assert "locked-in income: 0.26880000 BTC over 84 days" in out.stdout
    assert "protected range: BME84 at expiry in [2E-05, 4E-05] BTC per TH/s per day" in out.stdout
    assert "below Floor" in out.stdout and "above Cap" in out.stdout
    assert "whatever" not in out.stdout
    data = json.loads(
        run(
            "hedge",
            "--hashrate-th",
            "100",
            "--token",
            "SBME84-200-400-190716",
            "--price",
            "8",
            "--json",
        ).stdout
    )
    assert data["protected_range"] == {"floor": "0.00002", "cap": "0.00004"}
    assert data["locked_total_btc"] == "0.26880000" and data["tokens"] == "0.008400"


def test_price_over_the_2024_halving() -> None:
    # The figure: LBME84-10-30-240601 over the real difficulties of epochs 414..419
    # (the bundled history's; no --path item) is 10.73 x 1E-7 and the long worth 0.0729 BTC.
    # Expected values computed by hand in tests/unit/test_token_window.py; here the CLI.
    # A one-item path predicts only epoch 419; 414..418 come from the history.
    d419 = "84381461788831.337"  # epoch 419's difficulty to 3 decimals (bits 170355f0)
    out = run("price", "LBME84-10-30-240601", "--path", d419, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [e["difficulty_from"] for e in data["epochs"]] == ["history"] * 5 + ["path"]
    assert data["index"] == "1.073E-06" and data["index_units"].startswith("10.729")
    assert data["value_btc"].startswith("0.0729")
    assert data["epochs"][2]["k"].startswith("104773789.6")  # epoch 416: 2/3 at 6.25, 1/3 at 3.125
    text = run("price", "LBME84-10-30-240601", "--path", d419).stdout
    assert "index 1.073E-06 BTC per TH/s per day (10.73 x 1E-7" in text
    assert "long value 0.0729" in text
    market = json.loads(run("price", "LBME84-10-30-240601", "--price", "0.0729", "--json").stdout)
    assert market["d0"]["epoch"] == 413 and market["d0"]["from"] == "bundled mainnet retargets"


def test_price_input_errors() -> None:
    far = run("price", "LBME84-4.85-5.4-261215", "--price", "0.02")
    assert far.returncode == 2 and "D0 is unknown: epoch 480" in far.stderr
    assert "give --difficulty" in far.stderr
    partial = run("price", "LBME84-4.85-5.4-261215", "--path", "1e14,1e14")
    assert partial.returncode == 2 and "epochs 481..484 are not in the history" in partial.stderr
    long_path = run("price", "LBME28-250-500-190718", "--path", "1,2,3")
    assert long_path.returncode == 2 and "averages 2 epoch(s)" in long_path.stderr
    neither = run("price", "LBME28-250-500-190718")
    assert neither.returncode == 2 and "give --price" in neither.stderr
    both = run("price", "LBME28-250-500-190718", "--path", "1,2", "--price", "1")
    assert both.returncode == 2 and "either --path" in both.stderr


def test_price_height_names_the_last_epoch_of_the_window() -> None:
    out = run("price", "LBME84-4.85-5.4-261215", "--height", "953568", "--price", "0.02", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert (data["window"]["first_epoch"], data["window"]["last_epoch"]) == (468, 473)
    assert data["window"]["last_epoch_from"] == "--height"
    assert data["d0"]["epoch"] == 467 and data["implied_earnings"] == "5.050E-07"


@pytest.mark.parametrize(
    "args",
    [
        ["index", "--days", "15"],
        ["index", "--subsidy-rule", "last-block"],
        ["hedge", "--hashrate-th", "x", "--token", "a", "--price", "1"],
        ["hedge", "--hashrate-th", "1", "--token", "SBME84-1-2-190718", "--price", "1e-5e"],
    ],
)
def test_bad_arguments_exit_2(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
