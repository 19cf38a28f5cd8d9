"""The Dockerfile's install steps, performed here without a Docker engine.

What the image build does, and what this test does in the same order:

1. builder: copy the build context (pyproject.toml, README.md, the runtime constraints
   file, oracle/ — exactly the Dockerfile's COPY sources, nothing else) and
   `pip wheel --no-deps` it;
2. runtime: a fresh virtual environment, the built wheel installed into it without
   an index and with the constraints file the Dockerfile passes (`--constraint`); then
   the image's own smoke test (`bme-oracle --version`);
3. what the compose services run: `bme-oracle --help`, `bme-oracle db upgrade` (here
   on SQLite), and deploy/new-keystore with the installed package; and what an
   integrator finds in the wheel: the contracts' ABI and generated Solidity interfaces.

The one shortcut, for speed and to need no network: the image resolves the
dependencies from wheels it downloads; here the fresh environment gets exactly the
declared runtime dependency closure of the built wheel (its Requires-Dist, followed
recursively with extras and markers) linked from the project's .venv, and
`pip check` proves that closure satisfies every requirement. That closure must be
exactly what the constraints file pins, at the pinned versions: the image gets the
packages these tests ran with, and the file misses no runtime dependency. Nothing else of .venv
is visible (no pytest, no source tree), so a runtime import of an undeclared
package, or a file missing from the wheel, fails here as it would in the image.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from oracle.store import migrate

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120

pytestmark = pytest.mark.timeout(180)


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"`{shlex.join(str(a) for a in args)}` exited {result.returncode}:\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result.stdout


def dockerfile_copy_sources() -> list[str]:
    """Sources of the builder's COPY instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    sources: list[str] = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if words and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def dockerfile_constraints() -> str:
    """The constraints file the builder's ``pip wheel`` of the dependencies is given."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = set()
    for line in text.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        if words and words[0].upper() == "RUN" and "wheel" in words:
            found.update(
                words[i + 1] for i, word in enumerate(words[:-1]) if word in {"-c", "--constraint"}
            )
    assert len(found) == 1, f"the builder's pip wheel should take one --constraint, got {found}"
    return found.pop()


def constraint_pins(path: Path) -> dict[str, str]:
    """``name == version`` lines of a pip constraints file, by canonical name."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {line} is not pinned"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def wheel_requirements(wheel_metadata: str) -> list[Requirement]:
    return [
        Requirement(line.split(":", 1)[1].strip())
        for line in wheel_metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]


def dependency_closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Installed distributions (of the running .venv) needed by ``requirements``, recursively."""
    needed: dict[str, metadata.Distribution] = {}
    pending: list[tuple[Requirement, frozenset[str]]] = [(r, frozenset({""})) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extras = pending.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras
        ):
            continue
        name = canonicalize_name(requirement.name)
        wanted = frozenset({"", *requirement.extras})
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{requirement} is required but not installed in .venv (run scripts/setup)")
        needed[name] = dist
        pending.extend((Requirement(r), wanted) for r in dist.requires or [])
    return needed


def link_distribution(dist: metadata.Distribution, site_packages: Path) -> None:
    """Make ``dist`` importable in ``site_packages`` by linking its top-level entries."""
    files = dist.files or []
    assert files, f"{dist.metadata['Name']}: no RECORD, cannot link it"
    for file in files:
        parts = Path(str(file)).parts
        if not parts or parts[0] in {"..", "__pycache__"}:
            continue  # scripts outside site-packages; caches
        source = Path(str(dist.locate_file(parts[0])))
        target = site_packages / parts[0]
        if source.exists() and not target.exists():
            target.symlink_to(source, target_is_directory=source.is_dir())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv, outside the source tree, with the built wheel installed: its bin/."""
    tmp = tmp_path_factory.mktemp("docker-install")
    # 1. builder stage: the build context is exactly the COPY sources.
    context = tmp / "src"
    context.mkdir()
    sources = dockerfile_copy_sources()
    assert "pyproject.toml" in sources and any(s.rstrip("/") == "oracle" for s in sources)
    constraints = dockerfile_constraints()
    assert constraints in sources, f"the builder uses {constraints} but does not COPY it"
    for source in sources:
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(
                path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, context / source)
    dist = tmp / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", dist, ".", cwd=context)
    (wheel,) = dist.glob("bme_oracle-*.whl")

    # 2. runtime stage: a fresh venv with exactly the declared dependency closure.
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp
    ).strip()
    site_packages = Path(purelib)
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        requirements = wheel_requirements(archive.read(meta_name).decode())
    assert requirements, "the wheel declares no dependencies?"
    closure = dependency_closure(requirements)
    pins = constraint_pins(context / constraints)
    versions = {name: dist.version for name, dist in closure.items()}
    assert versions == pins, (
        f"the runtime dependencies in .venv differ from {constraints} "
        "(run scripts/setup; after a dependency change, scripts/lock): "
        f"not pinned {sorted(versions.keys() - pins.keys())}, "
        f"pinned but not needed {sorted(pins.keys() - versions.keys())}, "
        "other versions "
        f"{sorted((n, v, pins[n]) for n, v in versions.items() if n in pins and pins[n] != v)}"
    )
    for dist_info in closure.values():
        link_distribution(dist_info, site_packages)
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(
        *pip,
        "install",
        "--no-deps",
        "--no-index",
        "--constraint",
        context / constraints,
        wheel,
        cwd=tmp,
    )
    run(*pip, "check", cwd=tmp)
    return venv / "bin"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env = {k: v for k, v in env.items() if not k.startswith("ORACLE_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    return env


def test_the_package_comes_from_the_installed_wheel_not_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    where = run(
        installed / "python",
        "-c",
        "import oracle; print(oracle.__file__)",
        cwd=tmp_path,
        env=clean_env(),
    ).strip()
    assert where.startswith(str(installed.parent)), f"oracle imported from {where}"
    project_site = sysconfig.get_paths()["purelib"]
    for module in ("pytest", "hypothesis", "yaml"):
        probe = subprocess.run(
            [installed / "python", "-c", f"import {module}"],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            check=False,
        )
        assert probe.returncode != 0, f"{module} (dev only) leaked from {project_site}"


def test_entrypoint_help_and_version(installed: Path, tmp_path: Path) -> None:
    version = run(installed / "bme-oracle", "--version", cwd=tmp_path, env=clean_env())
    assert version.startswith("bme-oracle ")
    help_text = run(installed / "bme-oracle", "--help", cwd=tmp_path, env=clean_env())
    for command in ("run", "db"):  # what the image's CMD and the compose services run
        assert re.search(rf"\b{command}\b", help_text), f"`{command}` missing from --help"


def test_the_wheel_ships_the_abi_and_the_interfaces(installed: Path, tmp_path: Path) -> None:
    """The integrator's kit in the wheel: each contract's artifact (ABI, NatSpec) and its
    generated interface, the same files as contracts/interfaces/ (tests/unit/test_interfaces.py
    keeps those equal to the artifacts)."""
    script = (
        "import json; from importlib import resources\n"
        "folder = resources.files('oracle.publish').joinpath('artifacts')\n"
        "print(json.dumps({'folder': str(folder), 'files': {p.name: p.read_text('utf-8') "
        "for p in folder.iterdir() if p.name.endswith(('.json', '.sol'))}}))"
    )
    shipped = json.loads(run(installed / "python", "-c", script, cwd=tmp_path, env=clean_env()))
    assert shipped["folder"].startswith(str(installed.parent))
    files = shipped["files"]
    for name in ("DifficultyOracle", "BmeAggregator"):
        for shipped_name, source in (
            (f"{name}.json", ROOT / "oracle" / "publish" / "artifacts" / f"{name}.json"),
            (f"I{name}.sol", ROOT / "contracts" / "interfaces" / f"I{name}.sol"),
        ):
            assert files.get(shipped_name) == source.read_text(encoding="utf-8"), shipped_name
    assert '"abi"' in files["DifficultyOracle.json"] and '"userdoc"' in files["BmeAggregator.json"]


def test_the_wheel_ships_the_bundled_chain_data(installed: Path, tmp_path: Path) -> None:
    """Every file of oracle/data/ (checkpoints, retargets) is in the wheel, byte for byte,
    and loads there: the checkpoints cross-checked to epoch 436, the index input to 473."""
    script = (
        "import json; from importlib import resources\n"
        "from oracle.sources.checkpoints import checkpoint_bits, last_checkpoint_epoch\n"
        "folder = resources.files('oracle').joinpath('data')\n"
        "print(json.dumps({'files': {p.name: p.read_bytes().hex() for p in folder.iterdir()},\n"
        "    'last': last_checkpoint_epoch(), 'bits473': checkpoint_bits(473)}))"
    )
    shipped = json.loads(run(installed / "python", "-c", script, cwd=tmp_path, env=clean_env()))
    source = ROOT / "oracle" / "data"
    expected = {p.name: p.read_bytes().hex() for p in source.iterdir() if p.suffix == ".csv"}
    assert {"retarget_headers_2016_878976.csv", "epoch_bits_1_473.csv"} <= expected.keys()
    assert shipped["files"] == expected
    assert (shipped["last"], shipped["bits473"]) == (436, 0x170240C3)
    out = run(
        installed / "bme-oracle", "index", "--days", "14", "--json", cwd=tmp_path, env=clean_env()
    )
    index = json.loads(out)
    assert index["input"].startswith(str(installed.parent))
    assert [row["epoch"] for row in index["epochs"]] == list(range(474))


def test_db_upgrade_creates_the_schema_on_sqlite(installed: Path, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/x.sqlite"
    bme = installed / "bme-oracle"
    run(bme, "db", "upgrade", "--db", url, cwd=tmp_path, env=clean_env())
    assert (tmp_path / "x.sqlite").stat().st_size > 0
    # The schema is at the revision the code expects (read straight from the file).
    with sqlite3.connect(tmp_path / "x.sqlite") as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision == migrate.head_revision()
    # Upgrading again (every `docker compose up` runs migrate) changes nothing and succeeds.
    run(bme, "db", "upgrade", "--db", url, cwd=tmp_path, env=clean_env())


def test_new_keystore_with_the_installed_package(installed: Path, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "keystore_password").write_text("correct horse battery staple\n")
    script = ROOT / "deploy" / "new-keystore"
    out = run(
        installed / "python",
        script,
        "signer",
        "--secrets-dir",
        secrets,
        cwd=tmp_path,
        env=clean_env(),
    )
    address, path = out.split()
    keystore = Path(path)
    assert keystore == secrets / "signer.keystore.json"
    assert keystore.stat().st_mode & 0o777 == 0o644
    assert json.loads(keystore.read_text())["crypto"]["kdf"] == "scrypt"
    loaded = run(
        installed / "python",
        "-c",
        "import sys; from oracle.publish.signing import load_keystore; "
        "print(load_keystore(sys.argv[1], open(sys.argv[2]).read().strip()).address)",
        keystore,
        secrets / "keystore_password",
        cwd=tmp_path,
        env=clean_env(),
    )
    assert loaded.strip() == address
    again = subprocess.run(
        [installed / "python", script, "signer", "--secrets-dir", secrets],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode != 0 and "exists already" in again.stderr
    assert keystore.read_text().count("ciphertext") == 1
    # --import: the key comes in on a pipe, never on the command line.
    known_key = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
    imported = subprocess.run(
        [installed / "python", script, "imported", "--import", "--secrets-dir", secrets],
        input=known_key + "\n",
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split()[0] == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert known_key[2:] not in imported.stdout + imported.stderr
