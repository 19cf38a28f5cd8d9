"""The npm package ``@bme-oracle/contracts`` works for a consumer that has no Python.

What a JavaScript or Foundry user does, offline: ``npm pack`` the package folder into a
tarball, ``npm install`` the tarball into a fresh consumer project, then

* compile Solidity consumers against the installed interfaces with the pinned solc
  (standard JSON, the remapping the package README gives, imports read from the
  consumer project only): a settlement stub and the README's own example;
* load the ABI from JavaScript, CommonJS and ESM, and compare it with the committed
  artifacts' ABI, as is the ABI JSON in the tarball itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from oracle.publish import compile as solc
from oracle.publish import kit

PACKAGE = kit.ROOT / kit.PACKAGE_DIR
INSTALLED = Path("node_modules") / "@bme-oracle" / "contracts"
REMAPPING = f"{kit.PACKAGE_NAME}/={INSTALLED.as_posix()}/"
TIMEOUT_S = 120

pytestmark = pytest.mark.timeout(300)

#: solcjs with an import callback that reads files below the consumer project and nowhere else.
_NODE_COMPILE = """
const fs = require("fs");
const path = require("path");
const solc = require(process.argv[1]);
const base = fs.realpathSync(process.argv[2]);
function findImports(name) {
  const full = path.resolve(base, name);
  if (!full.startsWith(base + path.sep)) return { error: "outside the project: " + name };
  try { return { contents: fs.readFileSync(full, "utf8") }; }
  catch (err) { return { error: "not found: " + name }; }
}
let input = "";
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  process.stdout.write(solc.compile(input, { import: findImports }));
});
"""

SETTLEMENT = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IDifficultyOracle} from "@bme-oracle/contracts/interfaces/IDifficultyOracle.sol";
import {IBmeAggregator} from "@bme-oracle/contracts/interfaces/IBmeAggregator.sol";

/// A settlement stub: settles on the final BME_N at expiry, reads the AggregatorV3 shape.
contract SettlementStub {
    IDifficultyOracle public immutable oracle;
    IBmeAggregator public immutable feed;

    event Settled(uint256 epoch, uint256 bme);

    constructor(IDifficultyOracle oracle_, IBmeAggregator feed_) {
        oracle = oracle_;
        feed = feed_;
    }

    function settle(uint256 nDays, uint256 expiry) external returns (uint256 value) {
        uint256 epoch;
        (value, epoch) = oracle.bmeAtFinal(nDays, expiry);
        emit Settled(epoch, value);
    }

    function earlyBarrier(uint256 nDays, uint256 epoch) external view returns (uint256) {
        return oracle.bmeFinal(nDays, epoch);
    }

    function fromFeed() external view returns (uint80 roundId, int256 answer, uint256 updatedAt) {
        require(feed.oracle() == oracle, "feed reads another oracle");
        (roundId, answer,, updatedAt,) = feed.latestRoundData();
    }

    function reportDigest(uint32 epoch, bytes32 blockHash, uint32 bits, uint32 time)
        external
        view
        returns (bytes32)
    {
        uint32 version = oracle.configVersion();
        return oracle.reportDigest(IDifficultyOracle.Report(epoch, blockHash, bits, time, version));
    }

    function isNotFinalYet(bytes memory reason) external pure returns (bool) {
        bytes4 selector = bytes4(reason);
        return selector == IDifficultyOracle.NoEpochAfter.selector
            || selector == IDifficultyOracle.EpochNotFinal.selector
            || selector == IDifficultyOracle.EnforcedPause.selector;
    }
}
"""


def run(*args: str | Path, cwd: Path, stdin: str | None = None) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of the package folder, offline, into a temporary directory."""
    if shutil.which("npm") is None:
        pytest.fail("npm is not installed (scripts/setup needs node and npm)")
    out = tmp_path_factory.mktemp("npm-pack")
    cache = out / "cache"
    pack = ["npm", "pack", "--json", "--offline", "--ignore-scripts", "--cache", str(cache)]
    packed = json.loads(run(*pack, "--pack-destination", out, cwd=PACKAGE))
    (entry,) = packed
    path = out / entry["filename"]
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def consumer(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh consumer project with the tarball installed by npm (offline, no scripts)."""
    project = tmp_path_factory.mktemp("consumer")
    (project / "package.json").write_text('{"private": true}\n')
    install = ["npm", "install", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"]
    run(*install, "--cache", tarball.parent / "cache", tarball, cwd=project)
    assert (project / INSTALLED / "package.json").is_file()
    return project


def tarball_members(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as archive:
        return {
            member.name.removeprefix("package/"): archive.extractfile(member).read()  # type: ignore[union-attr]
            for member in archive.getmembers()
            if member.isfile()
        }


def compile_consumer(project: Path, sources: dict[str, str]) -> dict[str, Any]:
    """Compile ``sources`` with the pinned solc and the README's remapping, importing from
    ``project`` only."""
    solc_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "remappings": [REMAPPING],
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }
    node = ["node", "-e", _NODE_COMPILE, str(solc.SOLC_JS.parent), str(project)]
    stdout = run(*node, cwd=project, stdin=json.dumps(solc_input))
    output: dict[str, Any] = json.loads(stdout)
    messages = [m["formattedMessage"] for m in output.get("errors", [])]
    assert messages == [], "\n".join(messages)
    return output


def test_tarball_holds_exactly_the_kit(tarball: Path) -> None:
    members = tarball_members(tarball)
    expected = {
        "package.json", "README.md", "LICENSE", "CHANGELOG.md", "index.js",
        *(f"abi/{name}.json" for name in kit.INTERFACED),
        *(f"interfaces/I{name}.sol" for name in kit.INTERFACED),
    }  # fmt: skip
    assert set(members) == expected
    for name in expected - {"README.md"}:
        assert members[name] == (PACKAGE / name).read_bytes(), name
    package = json.loads(members["package.json"])
    assert package["name"] == kit.PACKAGE_NAME
    assert package["version"] == kit.project_version()
    assert tarball.name == f"bme-oracle-contracts-{package['version']}.tgz"


def test_tarball_abi_equals_the_committed_artifacts(tarball: Path) -> None:
    members = tarball_members(tarball)
    for name, artifact in kit.load_artifacts().items():
        assert json.loads(members[f"abi/{name}.json"]) == artifact["abi"], name
        interface = members[f"interfaces/I{name}.sol"].decode()
        assert interface == (kit.ROOT / "contracts" / "interfaces" / f"I{name}.sol").read_text()


def test_a_settlement_stub_compiles_against_the_installed_package(consumer: Path) -> None:
    output = compile_consumer(consumer, {"src/SettlementStub.sol": SETTLEMENT})
    compiled = output["contracts"]["src/SettlementStub.sol"]["SettlementStub"]
    assert len(compiled["evm"]["bytecode"]["object"]) > 1000
    # The interfaces came from the installed package, through the remapping.
    installed = f"{INSTALLED.as_posix()}/interfaces/IDifficultyOracle.sol"
    assert installed in output["sources"]
    assert {item.get("name") for item in compiled["abi"]} >= {
        "settle",
        "earlyBarrier",
        "fromFeed",
        "Settled",
    }


def test_the_readme_example_compiles_against_the_installed_package(consumer: Path) -> None:
    readme = (consumer / INSTALLED / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```solidity\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the package README has no Solidity example"
    sources = {f"src/ReadmeExample{i}.sol": block for i, block in enumerate(blocks)}
    output = compile_consumer(consumer, sources)
    for name in sources:
        assert output["contracts"][name], f"{name} defines no contract"


def test_javascript_loads_the_abi_with_require_and_import(consumer: Path) -> None:
    artifacts = kit.load_artifacts()
    script = f'console.log(JSON.stringify(require("{kit.PACKAGE_NAME}")))'
    common = json.loads(run("node", "-e", script, cwd=consumer))
    assert common == {f"{name}Abi": a["abi"] for name, a in artifacts.items()}
    module = (
        f'import {{ DifficultyOracleAbi }} from "{kit.PACKAGE_NAME}";\n'
        f'import aggregator from "{kit.PACKAGE_NAME}/abi/BmeAggregator.json" '
        'with { type: "json" };\n'
        "console.log(JSON.stringify([DifficultyOracleAbi, aggregator]));\n"
    )
    oracle_abi, aggregator_abi = json.loads(
        run("node", "--input-type=module", "-e", module, cwd=consumer)
    )
    assert oracle_abi == artifacts["DifficultyOracle"]["abi"]
    assert aggregator_abi == artifacts["BmeAggregator"]["abi"]
