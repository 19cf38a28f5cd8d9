"""Compile ``contracts/*.sol`` with the pinned solc into ``oracle/publish/artifacts/*.json``.

Why this exists: the ABI and bytecode ship inside the Python package so that
installing bme-oracle needs no compiler, and CI recompiles and compares byte for
byte, so the committed artifacts can never drift from the sources. Run it with
``scripts/compile-contracts``; the solc version, optimizer and EVM version are
pinned here and checked against the installed ``solc`` npm package.

Libraries (OpenZeppelin Contracts, pinned in ``scripts/setup``) are imported through
remappings: ``@openzeppelin/contracts/`` maps to ``node_modules/@openzeppelin/contracts/``,
a relative source unit name read from ``.tools/node_modules``, so the artifacts do not
depend on where the checkout lives. Only the library files actually imported
(transitively) go into the standard-JSON input; the installed package's version must equal
the pin, and each artifact records it.

Not part of the runtime path: the daemon only reads the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

from oracle.errors import OracleError

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
NODE_MODULES = ROOT / ".tools" / "node_modules"
SOLC_JS = NODE_MODULES / "solc" / "solc.js"
#: Keep in sync with SOLC_VERSION in scripts/setup.
SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 10_000
#: Contracts whose artifacts are written (libraries are inlined: all functions are internal).
#: TestWBTC is the dev/test collateral token (public mint): never allowlist it on a real chain.
CONTRACTS = ("DifficultyOracle", "BmeAggregator", "BmeMarket", "BmePositionToken", "TestWBTC")
#: Source unit names under this prefix are read from ``NODE_MODULES``.
NODE_MODULES_PREFIX = "node_modules/"


class Library(NamedTuple):
    """An npm package of Solidity sources, imported through a remapping."""

    package: str
    #: Keep in sync with scripts/setup.
    version: str

    @property
    def remapping(self) -> str:
        return f"{self.package}/={NODE_MODULES_PREFIX}{self.package}/"


#: OpenZeppelin Contracts: ERC20, SafeERC20, ReentrancyGuardTransient, Math (BmeMarket).
OPENZEPPELIN = Library("@openzeppelin/contracts", "5.4.0")
LIBRARIES = (OPENZEPPELIN,)
#: ``import "x";``, ``import "x" as y;``, ``import * as y from "x";``, ``import {a, b} from "x";``
#: at the start of a line (imports inside comments start with ``//`` or ``*``).
_IMPORT = re.compile(r"""^[ \t]*import\s+(?:[^;"']*?\s+from\s+)?["']([^"']+)["']""", re.MULTILINE)


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


def library_version(library: Library, node_modules: Path = NODE_MODULES) -> str:
    """The installed version of ``library``; CompileError if missing or not the pin."""
    manifest = node_modules / library.package / "package.json"
    if not manifest.exists():
        raise CompileError(f"{library.package} not found at {manifest.parent}; run scripts/setup")
    version = str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    if version != library.version:
        raise CompileError(
            f"{library.package} {library.version} is pinned, found {version}; run scripts/setup"
        )
    return version


def resolve_import(importer: str, path: str) -> str:
    """The source unit name solc gives ``import "path"`` inside source unit ``importer``:
    relative paths are joined to the importer's folder, others go through the remappings."""
    if path.startswith(("./", "../")):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), path))
    for library in LIBRARIES:
        prefix = f"{library.package}/"
        if path.startswith(prefix):
            return f"{NODE_MODULES_PREFIX}{library.package}/{path.removeprefix(prefix)}"
    return path


def _read_unit(name: str, contracts_dir: Path, node_modules: Path) -> str:
    if name.startswith(NODE_MODULES_PREFIX):
        path = node_modules / name.removeprefix(NODE_MODULES_PREFIX)
        package = next(
            (lib for lib in LIBRARIES if name.startswith(f"{NODE_MODULES_PREFIX}{lib.package}/")),
            None,
        )
        if package is None:
            raise CompileError(f"import of {name}: no pinned library provides it")
        library_version(package, node_modules)
    else:
        path = contracts_dir / name
    if ".." in Path(name).parts or not path.is_file():
        raise CompileError(f"import not found: {name} (looked for {path})")
    return path.read_text(encoding="utf-8")


def collect_sources(
    contracts_dir: Path = CONTRACTS_DIR, node_modules: Path = NODE_MODULES
) -> dict[str, str]:
    """Every ``.sol`` file of ``contracts_dir`` (not its subfolders) and, transitively, the
    files they import: source unit name -> text."""
    pending = [path.name for path in sorted(contracts_dir.glob("*.sol"))]
    sources: dict[str, str] = {}
    while pending:
        name = pending.pop()
        if name in sources:
            continue
        text = _read_unit(name, contracts_dir, node_modules)
        sources[name] = text
        pending.extend(resolve_import(name, path) for path in _IMPORT.findall(text))
    return dict(sorted(sources.items()))


def libraries_used(sources: dict[str, Any]) -> dict[str, str]:
    """``{package: pinned version}`` of the libraries whose files are among ``sources``."""
    return {
        lib.package: lib.version
        for lib in LIBRARIES
        if any(name.startswith(f"{NODE_MODULES_PREFIX}{lib.package}/") for name in sources)
    }


def standard_input(
    contracts_dir: Path = CONTRACTS_DIR, node_modules: Path = NODE_MODULES
) -> dict[str, Any]:
    """The solc standard-JSON input: every ``.sol`` file and its imports, pinned settings."""
    sources = {
        name: {"content": text}
        for name, text in collect_sources(contracts_dir, node_modules).items()
    }
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "remappings": [lib.remapping for lib in LIBRARIES],
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


def build_artifacts(
    contracts_dir: Path = CONTRACTS_DIR, names: tuple[str, ...] = CONTRACTS
) -> dict[str, dict[str, Any]]:
    """Compile and return ``{name: artifact}``: ABI, NatSpec, bytecode and provenance
    (compiler, settings, pinned libraries, a digest of every source compiled)."""
    solc_input = standard_input(contracts_dir)
    output = run_solc(solc_input)
    source_digest = hashlib.sha256(
        json.dumps(solc_input["sources"], sort_keys=True).encode()
    ).hexdigest()
    libraries = libraries_used(solc_input["sources"])
    artifacts: dict[str, dict[str, Any]] = {}
    for name in names:
        compiled = output["contracts"][f"{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "compiler": {"solc": SOLC_VERSION, "settings": solc_input["settings"]},
            "libraries": libraries,
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
