"""The committed ABI/bytecode artifacts must be exactly what the pinned solc makes of contracts/.

CI runs this: it recompiles into a temporary directory with the pinned compiler
settings and fails on any difference, so nobody can change a contract without
regenerating (``scripts/compile-contracts``) and committing the artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oracle.publish import compile as solc
from oracle.publish.contract import load_artifact


def test_committed_artifacts_match_a_fresh_compile(tmp_path: Path) -> None:
    written = solc.write_artifacts(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{name}.json" for name in solc.CONTRACTS)
    for path in written:
        committed = solc.ARTIFACTS_DIR / path.name
        assert committed.exists(), f"{committed} is not committed; run scripts/compile-contracts"
        fresh = path.read_text(encoding="utf-8")
        assert committed.read_text(encoding="utf-8") == fresh, (
            f"{committed.name} differs from a fresh compile; run scripts/compile-contracts"
        )


def test_artifacts_pin_the_compiler_and_ship_in_the_package() -> None:
    artifact = load_artifact("DifficultyOracle")
    assert artifact["compiler"]["solc"] == solc.SOLC_VERSION
    settings = artifact["compiler"]["settings"]
    assert settings["evmVersion"] == solc.EVM_VERSION
    assert settings["optimizer"] == {"enabled": True, "runs": solc.OPTIMIZER_RUNS}
    names = {item.get("name") for item in artifact["abi"]}
    assert {
        "submit",
        "replace",
        "bme",
        "bmeAt",
        "bmeFinal",
        "bmeAtFinal",
        "latestEpoch",
        "retarget",
        "difficulty",
        "nextBits",
        "encodeCompact",
        "scheduleSignerConfig",
        "scheduleReanchor",
    } <= names
    assert "decodeCompact" not in names  # removed in v2 (its sign flag differed from Core's)
    bytecode = artifact["bytecode"]
    assert bytecode.startswith("0x") and len(bytecode) > 1000
    int(bytecode, 16)  # creation code is plain hex (no unlinked library placeholders)


def test_setup_script_pins_the_same_solc() -> None:
    setup = (solc.ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    assert f"SOLC_VERSION={solc.SOLC_VERSION}" in setup
    package = json.loads((solc.SOLC_JS.parent / "package.json").read_text(encoding="utf-8"))
    assert package["version"] == solc.SOLC_VERSION


def test_setup_script_pins_the_same_openzeppelin_and_artifacts_record_it() -> None:
    setup = (solc.ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    assert f"OPENZEPPELIN_VERSION={solc.OPENZEPPELIN.version}" in setup
    assert solc.library_version(solc.OPENZEPPELIN) == solc.OPENZEPPELIN.version
    for name in ("BmeMarket", "BmePositionToken", "TestWBTC"):
        artifact = load_artifact(name)
        assert artifact["libraries"] == {"@openzeppelin/contracts": solc.OPENZEPPELIN.version}
        assert solc.OPENZEPPELIN.remapping in artifact["compiler"]["settings"]["remappings"]


def test_only_the_library_files_actually_imported_are_compiled() -> None:
    sources = solc.collect_sources()
    library = {name for name in sources if name.startswith(solc.NODE_MODULES_PREFIX)}
    prefix = f"{solc.NODE_MODULES_PREFIX}{solc.OPENZEPPELIN.package}/"
    # Imported directly by the contracts, and transitively (ERC20 -> Context, IERC6093).
    assert {
        f"{prefix}token/ERC20/ERC20.sol",
        f"{prefix}utils/Context.sol",
        f"{prefix}interfaces/draft-IERC6093.sol",
        f"{prefix}utils/ReentrancyGuardTransient.sol",
    } <= library
    # The package has hundreds of files; none that nothing imports.
    assert f"{prefix}token/ERC721/ERC721.sol" not in library
    assert f"{prefix}access/Ownable.sol" not in library
    assert len(library) < 30


def test_a_wrong_library_version_is_a_compile_error(tmp_path: Path) -> None:
    fake = tmp_path / solc.OPENZEPPELIN.package
    fake.mkdir(parents=True)
    (fake / "package.json").write_text('{"version": "4.9.6"}', encoding="utf-8")
    with pytest.raises(solc.CompileError, match=r"5\.4\.0 is pinned, found 4\.9\.6"):
        solc.library_version(solc.OPENZEPPELIN, node_modules=tmp_path)
    with pytest.raises(solc.CompileError, match="run scripts/setup"):
        solc.library_version(solc.OPENZEPPELIN, node_modules=tmp_path / "empty")


def test_imports_resolve_relative_and_through_the_remapping() -> None:
    assert solc.resolve_import("BmeMarket.sol", "./BmeNames.sol") == "BmeNames.sol"
    assert (
        solc.resolve_import("BmeMarket.sol", "@openzeppelin/contracts/utils/math/Math.sol")
        == "node_modules/@openzeppelin/contracts/utils/math/Math.sol"
    )
    assert (
        solc.resolve_import(
            "node_modules/@openzeppelin/contracts/token/ERC20/ERC20.sol", "../../utils/Context.sol"
        )
        == "node_modules/@openzeppelin/contracts/utils/Context.sol"
    )
