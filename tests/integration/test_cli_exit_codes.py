"""Exit codes of the installed ``bme-oracle`` script, against real servers and databases.

2 bad input (one line, no traceback), 69 a database / source / chain that cannot be
reached, 70 a bug (its traceback in the log). ``replay`` with no reachable source, and
with an unbounded ``--to-epoch``; ``db upgrade`` waiting for a Postgres that starts late.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from oracle.config import NON_CONFIG_VARIABLES
from tests.conftest import ROOT
from tests.fixtures.bitcoind import free_port
from tests.fixtures.restreplay import Fault
from tests.unit.test_cli_errors import BAD_INPUT

BIN = Path(sys.executable).parent / "bme-oracle"
TIP = 832608  # a recorded height of the replay servers (tests/data/recorded)


def clean_env(**extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ORACLE_") or k in NON_CONFIG_VARIABLES
    }
    return {**keep, "PYTHONPATH": str(ROOT), **extra}


async def cli(
    *args: str, env: dict[str, str] | None = None, exe: list[str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *(exe or [str(BIN)]),
        *args,
        cwd=ROOT,
        env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def one_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("bme-oracle: error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, stderr)


async def test_bad_input_through_the_installed_script_exits_2_in_one_line(
    tmp_path: Path,
) -> None:
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes(b"height,bits\n0,1d00ffff\n\xe9\n")
    verbose = tmp_path / "verbose.toml"
    verbose.write_text('[logging]\nlevel = "verbose"\n')
    cases = [
        *BAD_INPUT,
        (["index", "--input", str(not_utf8)], ["line 3", "not UTF-8"]),
        (["run", "--config", str(verbose)], ["logging.level", "'verbose'"]),
        (["db", "upgrade", "--db", "notaurl"], ["not a database URL"]),
    ]
    results = await asyncio.gather(*(cli(*argv) for argv, _ in cases))
    for (argv, fragments), (status, _, stderr) in zip(cases, results, strict=True):
        assert status == 2, (argv, stderr)
        one_line(stderr, *fragments)
    typo = clean_env(ORACLE_CROSSCHECK__QUORUMM="3")
    status, _, stderr = await cli("db", "current", env=typo)
    assert status == 2
    one_line(stderr, "ORACLE_CROSSCHECK__QUORUMM", "'quorumm'")


async def test_unreachable_evm_node_exits_69() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status, _, stderr = await cli(
        "contract", "status", "--contract", "0x" + "1" * 40, "--rpc-url", url
    )
    assert status == 69
    one_line(stderr, "EVM node at", "is unreachable")


async def test_a_bug_exits_70_and_logs_its_traceback() -> None:
    inject = (
        "import sys\n"
        "import oracle.commands.mathcmds as m\n"
        "def broken(args):\n"
        "    return {}['missing']\n"
        "m.cmd_token = broken\n"
        "from oracle.cli import main\n"
        "sys.exit(main(['token', 'SBME84-250-300-190718']))\n"
    )
    status, stdout, stderr = await cli(exe=[sys.executable, "-c", inject])
    assert status == 70 and stdout == ""
    record, message = stderr.strip().splitlines()
    assert json.loads(record)["event"] == "internal_error"
    assert "KeyError: 'missing'" in json.loads(record)["exception"]
    assert (
        message == "bme-oracle: internal error (a bug; traceback in the log): KeyError: 'missing'"
    )


# -- replay ---------------------------------------------------------------------------------


async def migrated(tmp_path: Path) -> str:
    db = f"sqlite+aiosqlite:///{tmp_path / 'oracle.sqlite'}"
    status, _, stderr = await cli("db", "upgrade", "--db", db)
    assert status == 0, stderr
    return db


def source_config(path: Path, url: str) -> Path:
    path.write_text(
        '[network]\nname = "mainnet"\n[bitcoind]\nenabled = false\n[crosscheck]\nquorum = 1\n'
        f'[[sources]]\nname = "esplora"\nkind = "esplora"\nbase_url = "{url}"\n'
        "max_retries = 0\nrate_limit_per_s = 0\n"
    )
    return path


async def test_replay_with_every_source_refusing_exits_69(tmp_path: Path) -> None:
    db = await migrated(tmp_path)
    config = source_config(tmp_path / "c.toml", f"http://127.0.0.1:{free_port()}")
    status, stdout, stderr = await cli(
        "replay", "--config", str(config), "--db", db, "--from-epoch", "412", "--to-epoch", "413"
    )
    assert status == 69, stderr
    assert stdout == ""
    one_line(stderr, "no source answered its tip", "esplora")


async def test_replay_that_observes_nothing_exits_69(
    replay: Callable[..., Any], tmp_path: Path
) -> None:
    """The tip answers, every block request fails (503): a summary, then exit 69."""
    server = await replay(
        "esplora", tip_height=TIP, faults=[Fault("status", "/block-height/", status=503)]
    )
    db = await migrated(tmp_path)
    config = source_config(tmp_path / "c.toml", server.url)
    status, stdout, stderr = await cli(
        "replay", "--config", str(config), "--db", db, "--from-epoch", "412", "--to-epoch", "412"
    )
    assert status == 69, stderr
    assert "skipped 1" in stdout
    assert "nothing could be observed: no source answered for epochs 412..412" in stderr
    assert "Traceback" not in stderr


async def test_replay_to_a_huge_epoch_is_cut_at_the_tip_in_little_memory(tmp_path: Path) -> None:
    db = await migrated(tmp_path)
    # VmHWM (peak RSS of this process image), not ru_maxrss: Linux carries ru_maxrss over
    # fork+exec, so a child of a big pytest process would report the parent's peak
    measure = (
        "import re, sys\n"
        "from oracle.cli import main\n"
        "status = main(sys.argv[1:])\n"
        "with open('/proc/self/status') as f:\n"
        "    hwm = re.search(r'VmHWM:\\s+(\\d+) kB', f.read()).group(1)\n"
        "print('maxrss_kb', hwm, file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    started = time.monotonic()
    status, stdout, stderr = await cli(
        "replay", "--checkpoints", "--from-epoch", "436", "--to-epoch", "10000000",
        "--db", db, "--json",
        exe=[sys.executable, "-c", measure],
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert status == 0, stderr[-3000:]
    summary = json.loads(stdout)
    assert summary["beyond_tip"] == [437, 10_000_000]  # 436: the bundle's tip
    assert summary["skipped_reasons"]["beyond the sources' tip"] == 10_000_000 - 436
    assert summary["skipped_epochs"].keys() == {"436"}  # insufficient: no epoch 435 agreed
    maxrss_mb = int(stderr.split("maxrss_kb")[1].split()[0]) / 1024
    assert maxrss_mb < 300, f"{maxrss_mb:.0f} MB"  # before the cut: 2.7 GB and 49 s
    assert elapsed < 30


# -- db upgrade waits for the database as run does ------------------------------------------


async def test_db_upgrade_retries_a_closed_port_then_exits_69() -> None:
    url = f"postgresql+asyncpg://oracle@127.0.0.1:{free_port()}/oracle"
    env = clean_env(ORACLE_DATABASE__URL=url, ORACLE_DATABASE__WRITE_RETRY_S="2")
    started = time.monotonic()
    status, stdout, stderr = await cli("db", "upgrade", env=env)
    assert status == 69, stderr
    assert time.monotonic() - started >= 1.5  # it waited out the retry budget
    assert "store_transient_error" in stderr and "store_retry_exhausted" in stderr
    assert stderr.strip().splitlines()[-1].startswith("bme-oracle: error: database ")
    assert "Traceback" not in stderr and stdout == ""


@contextlib.asynccontextmanager
async def forwarder(port: int, target: tuple[str, int]) -> AsyncIterator[None]:
    """A TCP proxy on ``port`` to ``target`` (a Postgres that "comes up" when this starts)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(ConnectionError):  # either side hung up: the pipe ends
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.postgres
async def test_db_upgrade_waits_for_a_postgres_that_comes_up_late(postgres_url: str) -> None:
    real = urlsplit(postgres_url)
    port = free_port()
    late = postgres_url.replace(f"{real.hostname}:{real.port}", f"127.0.0.1:{port}", 1)
    env = clean_env(ORACLE_DATABASE__URL=late, ORACLE_DATABASE__WRITE_RETRY_S="30")
    upgrade = asyncio.create_task(cli("db", "upgrade", "--json", env=env))
    await asyncio.sleep(2.0)
    assert not upgrade.done()
    async with forwarder(port, (real.hostname or "127.0.0.1", real.port or 5432)):
        status, stdout, stderr = await upgrade
    assert status == 0, stderr
    assert json.loads(stdout)["up_to_date"] is True
    assert "store_transient_error" in stderr and "store_recovered" in stderr


def test_a_reader_that_goes_away_is_not_a_bug() -> None:
    """``bme-oracle index | head -1``: the closed pipe ends the command quietly (141, as a
    shell reports SIGPIPE), not as an internal error with a traceback."""
    import fcntl
    import subprocess

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the command's output
    with subprocess.Popen(
        [str(BIN), "index"], stdout=write_end, stderr=subprocess.PIPE, env=clean_env()
    ) as proc:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            assert reader.readline()  # one line read, then the reader goes away
        assert proc.stderr is not None
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
