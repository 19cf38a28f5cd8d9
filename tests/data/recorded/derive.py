"""Derive the recorded API response bodies in this folder from the real mainnet headers.

Run from the repository root: ``python tests/data/recorded/derive.py``. It writes
``esplora.json`` and ``blockchain_com.json``: for each recorded block, the exact
bodies those APIs return (formats in ../shared/reference/sources-api.md §2 and §4),
built from the real headers in ``tests/data/*.csv``. The replay servers in
``tests/fixtures/restreplay.py`` serve them and add the faults.

Fields that cannot be derived from an 80-byte header (blockchain.com's ``tx``,
``fee``, ``n_tx``, ``size``, ``block_index``, ``received_time``, ``relayed_by``)
are left out; the adapters do not read them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
#: Epochs whose headers at 2016e-2016, 2016e-1 and 2016e are recorded: the first
#: retarget, the 2020 halving epoch, and the recent ones of the continuous data.
EPOCHS = (1, 312, 410, 411, 412, 413)
#: Extra real blocks: the child of 828576 (a "wrong block at the retarget height"
#: that is internally consistent), and a real stale block with its canonical rival.
EXTRA_HEIGHTS = (828577, 828366)
STALE_HASHES = ("0000000000000000000222082e0016ece6119a9175adcf4ba416631279dc5611",)


def load_headers() -> dict[str, dict[str, str]]:
    """Every real header we have, by hash: height, header_hex, main_chain."""
    rows: dict[str, dict[str, str]] = {}
    with (DATA / "epoch_boundary_headers_0_832608.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["hash"]] = {
                "height": row["height"],
                "header_hex": row["header_hex"],
                "main": "1",
            }
    with (DATA / "headers_822528_830592.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["hash"]] = {
                "height": row["height"],
                "header_hex": row["header_hex"],
                "main": "1",
            }
    with (DATA / "stale_headers_822941_831769.csv").open() as fh:
        for row in csv.DictReader(fh):
            rows[row["hash"]] = {
                "height": row["height"],
                "header_hex": row["header_hex"],
                "main": "0",
            }
    return rows


def fields(header_hex: str) -> dict[str, int | str]:
    raw = bytes.fromhex(header_hex)
    return {
        "ver": int.from_bytes(raw[0:4], "little"),
        "prev_block": raw[4:36][::-1].hex(),
        "mrkl_root": raw[36:68][::-1].hex(),
        "time": int.from_bytes(raw[68:72], "little"),
        "bits": int.from_bytes(raw[72:76], "little"),
        "nonce": int.from_bytes(raw[76:80], "little"),
    }


def main() -> None:
    headers = load_headers()
    wanted = {h for e in EPOCHS for h in (2016 * e - 2016, 2016 * e - 1, 2016 * e)}
    wanted |= set(EXTRA_HEIGHTS)
    main_by_height = {int(v["height"]): k for k, v in headers.items() if v["main"] == "1"}
    blocks = [(main_by_height[h], headers[main_by_height[h]]) for h in sorted(wanted)]
    blocks += [(h, headers[h]) for h in STALE_HASHES]
    esplora: dict[str, dict[str, object]] = {}
    blockchain_com: dict[str, dict[str, object]] = {}
    by_height: dict[int, list[dict[str, object]]] = {}
    for block_hash, row in blocks:
        height, main = int(row["height"]), row["main"] == "1"
        if main:
            esplora[f"/block-height/{height}"] = {"type": "text/plain", "body": block_hash}
        esplora[f"/block/{block_hash}/header"] = {"type": "text/plain", "body": row["header_hex"]}
        status = {"in_best_chain": main, "height": height, "next_best": None}
        esplora[f"/block/{block_hash}/status"] = {
            "type": "application/json",
            "body": json.dumps(status),
        }
        block_json = {
            "hash": block_hash,
            **fields(row["header_hex"]),
            "next_block": [],
            "main_chain": main,
            "height": height,
            "tx": [],
        }
        by_height.setdefault(height, []).append(block_json)
    for height, jsons in by_height.items():
        body = json.dumps({"blocks": jsons})
        blockchain_com[f"/block-height/{height}?format=json"] = {
            "type": "application/json",
            "body": body,
        }
    for name, routes in (("esplora", esplora), ("blockchain_com", blockchain_com)):
        out = {"kind": name, "epochs": list(EPOCHS), "routes": dict(sorted(routes.items()))}
        (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
