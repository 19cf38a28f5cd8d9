"""The integrator's kit is exactly what the generator makes of the committed artifacts.

* Every generated file (``contracts/interfaces``, the interfaces shipped in the wheel, the
  npm package's ``abi/``, ``interfaces/``, ``package.json``, ``index.js`` and the copies of
  LICENSE and CHANGELOG.md) equals a fresh generation byte for byte, and no stale one is
  left: nobody can change a contract's ABI without ``scripts/gen-interfaces``.
* The interfaces compile with the pinned solc, without a warning, back to the contracts'
  ABI (constructor aside) and NatSpec.
* The renderer handles ABI shapes the contracts do not use today (overloads, nested
  structs and struct arrays, enums, payable, fallback/receive, anonymous events,
  documented parameters and returns), so a later ABI change is one command.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

from oracle.publish import compile as solc
from oracle.publish import kit
from oracle.publish.interfaces import render_interface, signature

NATSPEC = ["abi", "devdoc", "userdoc"]


def compile_sources(sources: dict[str, str], selection: list[str]) -> dict[str, Any]:
    """Compile in-memory sources with the pinned solc; fail on any error or warning."""
    output = solc.run_solc(
        {
            "language": "Solidity",
            "sources": {name: {"content": text} for name, text in sources.items()},
            "settings": {"outputSelection": {"*": {"*": selection}}},
        }
    )
    messages = [m["formattedMessage"] for m in output.get("errors", [])]
    assert messages == [], "\n".join(messages)
    return output


def comparable_abi(abi: list[dict[str, Any]]) -> list[str]:
    """The ABI as a sorted list, without constructor and internalType (I-names differ)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "internalType"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return sorted(
        json.dumps(strip(item), sort_keys=True) for item in abi if item["type"] != "constructor"
    )


def comparable_doc(doc: Any) -> Any:
    """NatSpec output with whitespace collapsed (the generator re-wraps) and no title."""
    if isinstance(doc, dict):
        return {k: comparable_doc(v) for k, v in doc.items() if k != "title"}
    if isinstance(doc, list):
        return [comparable_doc(v) for v in doc]
    if isinstance(doc, str):
        return " ".join(doc.split())
    return doc


def getters_as_methods(devdoc: dict[str, Any], abi: list[dict[str, Any]]) -> dict[str, Any]:
    """A public state variable's devdoc, where the interface's getter function has it; the
    constructor's (an interface has none) is dropped."""
    variables = devdoc.get("stateVariables", {})
    methods = {k: v for k, v in devdoc.get("methods", {}).items() if k != "constructor"}
    for item in abi:
        if item["type"] == "function" and item["name"] in variables:
            entry = {k: v for k, v in variables[item["name"]].items() if k != "return"}
            methods[signature(item)] = entry
    moved = {k: v for k, v in devdoc.items() if k != "stateVariables"}
    return {**moved, "methods": methods}


def assert_round_trip(original: dict[str, Any], compiled: dict[str, Any]) -> None:
    assert comparable_abi(compiled["abi"]) == comparable_abi(original["abi"])
    assert comparable_doc(compiled["userdoc"]) == comparable_doc(original["userdoc"])
    assert comparable_doc(compiled["devdoc"]) == comparable_doc(
        getters_as_methods(original["devdoc"], original["abi"])
    )


def test_committed_kit_equals_a_fresh_generation() -> None:
    assert kit.differences() == [], "run scripts/gen-interfaces and commit the result"


def test_interfaces_compile_back_to_the_contracts_abi_and_natspec() -> None:
    folder = kit.ROOT / "contracts" / "interfaces"
    sources = {f"interfaces/{p.name}": p.read_text(encoding="utf-8") for p in folder.glob("*.sol")}
    output = compile_sources(sources, NATSPEC)
    artifacts = kit.load_artifacts()
    assert sorted(sources) == sorted(f"interfaces/I{name}.sol" for name in artifacts)
    for name, artifact in artifacts.items():
        assert_round_trip(artifact, output["contracts"][f"interfaces/I{name}.sol"][f"I{name}"])


def test_package_metadata_follows_the_project() -> None:
    package_dir = kit.ROOT / kit.PACKAGE_DIR
    package = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    with (kit.ROOT / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    assert package["name"] == kit.PACKAGE_NAME
    assert package["version"] == project["version"]
    assert package["license"] == project["license"]["text"] == "MIT"
    assert (kit.ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    assert (package_dir / "README.md").exists(), "the package README is written by hand"
    abi = json.loads((package_dir / "abi" / "DifficultyOracle.json").read_text(encoding="utf-8"))
    assert abi == kit.load_artifacts()["DifficultyOracle"]["abi"]


def test_write_kit_writes_everything_and_removes_stale_files(tmp_path: Path) -> None:
    for name in ("pyproject.toml", *kit.COPIED):
        shutil.copy2(kit.ROOT / name, tmp_path / name)
    stale = tmp_path / "contracts" / "interfaces" / "IRemovedContract.sol"
    stale.parent.mkdir(parents=True)
    stale.write_text("// from a contract that no longer exists\n")
    kept = tmp_path / "contracts" / "Other.sol"  # outside the generated folders
    kept.write_text("// not generated\n")
    assert "missing: contracts/interfaces/IDifficultyOracle.sol" in kit.differences(tmp_path)
    assert f"stale: {stale.relative_to(tmp_path)}" in kit.differences(tmp_path)
    written = kit.write_kit(tmp_path)
    assert not stale.exists() and kept.exists()
    assert kit.differences(tmp_path) == []
    assert len(written) == len(kit.build_kit(tmp_path))


SAMPLE = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

type Price is uint128;

/// @title Sample
/// @notice Every ABI shape the renderer must reproduce.
/// @dev Not deployed anywhere.
/// @custom:security-contact security@example.invalid
contract Sample {
    enum Side { Long, Short }
    struct Leg { uint32 epoch; Side side; bytes payload; }
    struct Position { address owner; Leg[] legs; Leg main; uint256[2] pair; }

    /// @notice The current fee.
    /// @dev Basis points.
    /// @return The fee.
    uint16 public fee;
    /// @dev By owner and epoch.
    mapping(address => mapping(uint256 => Leg)) public legs;

    /// @notice A position was opened.
    /// @param id The position.
    event Opened(uint256 indexed id, Position position, string indexed tag);
    event Raw(bytes32 topic) anonymous;

    /// @notice Too late.
    /// @param deadline When it ended.
    error Expired(uint256 deadline);
    error BadLegs(Leg[] legs);

    /// @notice Open a position.
    /// @param position What to open.
    /// @param deadline Until when.
    /// @return id The new position.
    /// @return when The block time.
    function open(Position calldata position, uint256 deadline)
        external payable returns (uint256 id, uint64 when) {}
    /// @notice Open with the defaults.
    function open(Position calldata position) external returns (uint256) {}
    function price(Side side, Price at, Other other) external pure returns (Price, Other) {}
    function redeem(Other.Ticket calldata ticket, Other.Voucher calldata voucher) external {}
    function many(Leg[][] calldata nested, bytes32[3] calldata fixedWords, int8[] memory)
        external view returns (Leg[] memory out, string memory label, address payable to) {}
    function name() external pure returns (string memory) {}
    fallback() external payable {}
    receive() external payable {}
}

/// @notice Referenced by Sample: becomes IOther there.
contract Other {
    struct Ticket { uint64 id; }
    struct Pass { address holder; Ticket ticket; }
    struct Voucher { uint8 kind; }
    function ping(Pass calldata pass) external {}
}
"""


def test_renderer_reproduces_every_abi_shape() -> None:
    original = compile_sources({"Sample.sol": SAMPLE}, NATSPEC)["contracts"]["Sample.sol"]
    rendered = {
        f"I{name}.sol": render_interface(name, original[name], interfaced=original)
        for name in original
    }
    assert 'import {IOther} from "./IOther.sol";' in rendered["ISample.sol"]
    assert "/// @custom:security-contact security@example.invalid" in rendered["ISample.sol"]
    assert "function price(uint8 side, uint128 at, IOther other)" in rendered["ISample.sol"]
    # IOther declares Ticket (inside Pass); Voucher, not in Other's ABI, is declared in ISample
    assert "IOther.Ticket calldata ticket, Voucher calldata voucher" in rendered["ISample.sol"]
    assert "struct Voucher" in rendered["ISample.sol"] and "Voucher" not in rendered["IOther.sol"]
    assert all(len(line) <= 100 for text in rendered.values() for line in text.splitlines())
    output = compile_sources(rendered, NATSPEC)["contracts"]
    for name, compiled in original.items():
        assert_round_trip(compiled, output[f"I{name}.sol"][f"I{name}"])
