"""The committed ABI/bytecode artifacts must be exactly what the pinned solc makes of contracts/.

CI runs this: it recompiles into a temporary directory with the pinned compiler
settings and fails on any difference, so nobody can change a contract without
regenerating (``scripts/compile-contracts``) and committing the artifacts.
"""

from __future__ import annotations

import json
from pathlib import Path

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
