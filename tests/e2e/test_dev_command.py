"""`bme-oracle dev`: the README's first command, end to end with real bitcoind and anvil."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import BIN, http_get_json
from tests.fixtures.anvil import free_port

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.slow]


def test_dev_mines_a_retarget_and_publishes_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            str(BIN),
            "dev",
            "--json",
            "--api-port",
            "0",
            "--exit-after-publish",
            "--workdir",
            str(tmp_path / "dev"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    ready = next(e for e in events if e["event"] == "ready")
    assert ready["api_url"].startswith("http://127.0.0.1:")
    assert ready["contract_address"].startswith("0x") and len(ready["contract_address"]) == 42
    published = next(e for e in events if e["event"] == "retarget_published")
    assert published["epoch"] == 1 and published["height"] == 2016
    assert published["tx_hash"].startswith("0x")
    assert published["contract_address"] == ready["contract_address"]


def test_dev_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    with subprocess.Popen(
        [str(BIN), "dev", "--json", "--api-port", str(port), "--workdir", str(tmp_path / "dev")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:  # closes its pipes on the way out
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 180
            published = None
            while time.monotonic() < deadline and published is None:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("{") and json.loads(line)["event"] == "retarget_published":
                    published = json.loads(line)
            assert published is not None, proc.stderr.read() if proc.stderr else ""
            status, body = http_get_json(f"http://127.0.0.1:{port}/v1/retargets/1")
            assert status == 200 and body["status"] == "published", body
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
