"""Alembic migrations on both backends: up, down, up again; no drift from the models; the CLI.

Why: operators run `bme-oracle db upgrade` on a fresh Postgres or SQLite file
and must be able to roll back; a model change without a migration must fail
CI (the autogenerate comparison finds a difference), as STYLE.md §8 asks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text
from sqlalchemy.engine import Connection

from oracle.cli import main
from oracle.errors import SchemaOutdated
from oracle.store import migrate
from oracle.store.models import Base
from oracle.store.repository import open_repository
from oracle.store.session import create_engine

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "retargets",
    "observations",
    "publications",
    "disagreements",
    "index_values",
    "submissions",
    "submission_txs",
    "submission_events",
    "source_health",
    "attestations",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def _diff(url: str, metadata: MetaData) -> list[object]:
    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(store_url: str) -> None:
    head = migrate.head_revision()
    assert await migrate.current(store_url) is None
    assert await migrate.upgrade(store_url) == head
    assert await _tables(store_url) == TABLES
    assert await migrate.upgrade(store_url) == head  # idempotent
    assert await migrate.downgrade(store_url, "base") is None
    assert await _tables(store_url) == set()
    assert await migrate.upgrade(store_url, "head") == head
    assert await _tables(store_url) == TABLES


async def _execute(url: str, *statements: str) -> list[tuple[object, ...]]:
    """Run SQL statements in one transaction; the rows of the last one."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            result = None
            for statement in statements:
                result = await connection.execute(text(statement))
            if result is None or not result.returns_rows:
                return []
            return [tuple(row) for row in result]
    finally:
        await engine.dispose()


async def test_0002_keeps_the_data_up_down_up(store_url: str) -> None:
    """Contract v2's revision on a database with a submission and a publication: the
    submission's block is taken from its stored report, the proof header column appears;
    down and up again keep the rows."""
    assert await migrate.upgrade(store_url, "0001") == "0001"
    report = json.dumps({"epoch": 7, "block_hash_hex": "ab" * 32, "bits": 1, "time": 2})
    now = "2026-11-30 00:00:00+00:00"
    await _execute(
        store_url,
        "INSERT INTO submissions (chain_id, contract_address, epoch, signers, report, state, "
        f"client_token, created_at, updated_at) VALUES (1, '0x{'ab' * 20}', 7, '[]', "
        f"'{report}', 'confirmed', 'token', '{now}', '{now}')",
        "INSERT INTO publications (network, epoch, block_hash_hex, chain_id, contract_address, "
        f"tx_hash, published_at) VALUES ('mainnet', 7, '{'ab' * 32}', 1, '0x{'ab' * 20}', "
        f"NULL, '{now}')",
    )
    assert await migrate.upgrade(store_url) == migrate.head_revision()
    assert await _execute(store_url, "SELECT epoch, block_hash_hex FROM submissions") == [
        (7, "ab" * 32)
    ]
    assert await _execute(store_url, "SELECT count(last_header) FROM retargets") == [(0,)]
    assert await migrate.downgrade(store_url, "0001") == "0001"
    assert await _execute(store_url, "SELECT count(*) FROM submissions") == [(1,)]
    assert await _execute(store_url, "SELECT count(*) FROM publications") == [(1,)]
    assert await migrate.upgrade(store_url) == migrate.head_revision()
    assert await _diff(store_url, Base.metadata) == []


async def test_models_and_migrations_do_not_drift(store_url: str) -> None:
    await migrate.upgrade(store_url)
    assert await _diff(store_url, Base.metadata) == []


async def test_drift_check_detects_a_model_change(store_url: str) -> None:
    """The drift check above can fail: an extra column in the models is reported."""
    await migrate.upgrade(store_url)
    changed = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    Table("retargets", changed, Column("chainwork_hex", String(64)), extend_existing=True)
    Table("drift_probe", changed, Column("id", Integer, primary_key=True))
    diff = await _diff(store_url, changed)
    kinds = {
        (entry[0], getattr(entry[-1], "name", None)) for entry in diff if isinstance(entry, tuple)
    }
    assert ("add_column", "chainwork_hex") in kinds and ("add_table", "drift_probe") in kinds


async def test_repository_refuses_an_outdated_schema(store_url: str) -> None:
    with pytest.raises(SchemaOutdated, match="run `bme-oracle db upgrade`"):
        await open_repository(store_url)
    await migrate.upgrade(store_url)
    repository = await open_repository(store_url)
    await repository.close()


async def test_unknown_revision_is_reported(store_url: str) -> None:
    await migrate.upgrade(store_url)
    from oracle.errors import InputError

    with pytest.raises(InputError, match="zzz"):
        await migrate.downgrade(store_url, "zzz")
    with pytest.raises(SchemaOutdated, match="unknown to this bme-oracle"):
        migrate.check_revision("ffffffff", store_url)


@pytest.mark.postgres
def test_cli_upgrade_current_downgrade(
    sqlite_url: str, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = migrate.head_revision()
    for url in (sqlite_url, postgres_url):
        assert main(["db", "current", "--db", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["current"] is None
        assert main(["db", "upgrade", "--db", url, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["from"], out["to"], out["up_to_date"]) == (None, head, True)
        assert main(["db", "current", "--db", url]) == 0
        assert "up to date" in capsys.readouterr().out
        assert main(["db", "downgrade", "base", "--db", url, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["to"] is None


def test_cli_db_flag_wins_over_config_and_environment(
    tmp_path: Path,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "oracle.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "from-config.sqlite"}"\n'
    )
    monkeypatch.setenv(
        "ORACLE_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'from-env.sqlite'}"
    )
    assert main(["db", "upgrade", "--config", str(config), "--db", sqlite_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["url"] == sqlite_url
    assert not (tmp_path / "from-config.sqlite").exists()
    assert not (tmp_path / "from-env.sqlite").exists()
    assert main(["db", "upgrade", "--config", str(config), "--json"]) == 0  # env beats file
    assert "from-env.sqlite" in json.loads(capsys.readouterr().out)["url"]
    monkeypatch.delenv("ORACLE_DATABASE__URL")
    assert main(["db", "upgrade", "--config", str(config), "--json"]) == 0
    assert "from-config.sqlite" in json.loads(capsys.readouterr().out)["url"]


def test_cli_errors_are_one_line_and_redacted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+asyncpg://oracle:hunter2@127.0.0.1:1/oracle"
    monkeypatch.setenv("ORACLE_DATABASE__WRITE_RETRY_S", "1")  # it waits like `run`, briefly
    assert main(["db", "upgrade", "--db", url]) == 69  # EX_UNAVAILABLE: cannot be reached
    err = capsys.readouterr().err
    assert "unavailable" in err and "oracle:***@127.0.0.1:1" in err and "hunter2" not in err
    assert main(["db", "current", "--db", "mysql://x/y"]) == 2
    assert "postgresql+asyncpg://" in capsys.readouterr().err


def test_cli_works_from_another_directory(tmp_path: Path) -> None:
    """The migrations ship in the package: no alembic.ini or cwd needed."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'fresh.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    result = subprocess.run(
        [sys.executable, "-m", "oracle", "db", "upgrade", "--db", url, "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["to"] == migrate.head_revision()


def test_alembic_ini_points_at_the_packaged_migrations() -> None:
    assert (ROOT / "migrations" / "env.py").resolve() == migrate.MIGRATIONS_DIR / "env.py"
    assert "oracle/store/migrations" in (ROOT / "alembic.ini").read_text()
