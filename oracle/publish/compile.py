"""Compile ``contracts/*.sol`` with the pinned solc into ``oracle/publish/artifacts/*.json``.

Why this exists: the ABI and bytecode ship inside the Python package so that
installing bme-oracle needs no compiler, and CI recompiles and compares byte for
byte, so the committed artifacts can never drift from the sources. Run it with
``scripts/compile-contracts``; the solc version, optimizer and EVM version are
pinned here and checked against the installed ``solc`` npm package.

Not part of the runtime path: the daemon only reads the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from oracle.errors import OracleError

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
SOLC_JS = ROOT / ".tools" / "node_modules" / "solc" / "solc.js"
#: Keep in sync with SOLC_VERSION in scripts/setup.
SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 10_000
#: Contracts whose artifacts are written (libraries are inlined: all functions are internal).
CONTRACTS = ("DifficultyOracle", "BmeAggregator")


#: Uses solc's JS API (the CLI wrapper's stdin handling varies between versions); no file
#: imports are resolved from disk, every source is passed in the JSON input.
_NODE_COMPILE = """
const solc = require(process.argv[1]);
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => { process.stdout.write(solc.compile(input)); });
"""


class CompileError(OracleError):
    """solc is missing, is the wrong version, or rejected the sources."""


def standard_input(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, Any]:
    """The solc standard-JSON input: every ``.sol`` file, pinned settings."""
    sources = {
        path.name: {"content": path.read_text(encoding="utf-8")}
        for path in sorted(contracts_dir.glob("*.sol"))
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "viaIR": False,
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "devdoc",
                        "userdoc",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                    ]
                }
            },
        },
    }


def run_solc(solc_input: dict[str, Any], solc_js: Path = SOLC_JS) -> dict[str, Any]:
    """Run solcjs in standard-JSON mode; raise CompileError on any error-severity message."""
    if not solc_js.exists():
        raise CompileError(f"solc not found at {solc_js}; run scripts/setup")
    version = json.loads((solc_js.parent / "package.json").read_text(encoding="utf-8"))["version"]
    if version != SOLC_VERSION:
        raise CompileError(f"solc {SOLC_VERSION} is pinned, found {version}; run scripts/setup")
    proc = subprocess.run(
        ["node", "-e", _NODE_COMPILE, os.fspath(solc_js.parent)],
        input=json.dumps(solc_input),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if proc.returncode != 0:
        raise CompileError(f"solc exited {proc.returncode}: {proc.stderr.strip()[:2000]}")
    output: dict[str, Any] = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompileError(
            "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        )
    return output


def build_artifacts(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, dict[str, Any]]:
    """Compile and return ``{name: artifact}``: ABI, NatSpec, bytecode and provenance."""
    solc_input = standard_input(contracts_dir)
    output = run_solc(solc_input)
    source_digest = hashlib.sha256(
        json.dumps(solc_input["sources"], sort_keys=True).encode()
    ).hexdigest()
    artifacts: dict[str, dict[str, Any]] = {}
    for name in CONTRACTS:
        compiled = output["contracts"][f"{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "compiler": {"solc": SOLC_VERSION, "settings": solc_input["settings"]},
            "sourcesSha256": source_digest,
            "abi": compiled["abi"],
            # NatSpec, for the generated interfaces (oracle/publish/kit.py)
            "devdoc": compiled["devdoc"],
            "userdoc": compiled["userdoc"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
        }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """The canonical text of an artifact file (stable key order, trailing newline)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_artifacts(
    out_dir: Path = ARTIFACTS_DIR, contracts_dir: Path = CONTRACTS_DIR
) -> list[Path]:
    """Compile and write ``<name>.json`` files into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in build_artifacts(contracts_dir).items():
        path = out_dir / f"{name}.json"
        path.write_text(render(artifact), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0]) if args else ARTIFACTS_DIR
    try:
        for path in write_artifacts(out_dir):
            print(path)
    except CompileError as exc:
        print(f"compile-contracts: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
