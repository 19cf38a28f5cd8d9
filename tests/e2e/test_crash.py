"""SIGKILL at random points of the pipeline, 20 times: exactly one report per epoch, none missing.

Each trial starts the real `bme-oracle run` process, mines one retarget on the
regtest node and kills the daemon with SIGKILL after a random delay (landing
anywhere between observing, storing, signing, broadcasting and waiting for the
receipt). A last run must finish every epoch; then the chain and the database
must agree, with one ReportAccepted event per epoch after the contract's genesis
(epoch 0, the regtest genesis block). Twenty fast-mined epochs run ~2 h ahead of
the wall clock, so anvil's clock follows the regtest tip after each mining
(the contract refuses headers more than 2 h after its own clock).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pytest

from oracle.devstack.stack import make_dev_keys
from oracle.publish.contract import OracleContract, connect
from oracle.store.repository import open_repository
from tests.e2e.helpers import (
    deploy_regtest_oracle,
    follow_tip,
    http_get_json,
    start_daemon,
    terminate,
    wait_http,
)
from tests.fixtures.anvil import AnvilNode, free_port
from tests.fixtures.bitcoind import NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]
TRIALS = 20
SEED = 20261122


def write_config(
    path: Path, *, db_url: str, node, anvil: AnvilNode, address: str, keys, port: int
) -> None:  # type: ignore[no-untyped-def]
    signers = ", ".join(f'"{p}"' for p in keys.signers)
    path.write_text(
        f'[network]\nname = "regtest"\n'
        f'[database]\nurl = "{db_url}"\n'
        f'[bitcoind]\nurl = "{node.url}"\nrpc_user = "{node.user}"\n'
        f'zmq_hashblock = "{node.zmq_url}"\npoll_interval_s = 1.0\n'
        f"[crosscheck]\nquorum = 1\nconfirmations = 0\nuse_checkpoints = false\n"
        f'[publisher]\nenabled = true\nrpc_url = "{anvil.url}"\nchain_id = 31337\n'
        f'contract_address = "{address}"\nkeystore_files = [{signers}]\n'
        f'keystore_password_file = "{keys.password_file}"\nsender_keystore_file = "{keys.sender}"\n'
        f"replace_after_s = 5.0\nreceipt_timeout_s = 60.0\n"
        f'[api]\nport = {port}\n[logging]\nformat = "json"\nlevel = "warning"\n'
    )


async def test_sigkill_at_random_points(
    bitcoind_factory: NodeFactory, anvil: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    node = bitcoind_factory()
    keys = make_dev_keys(tmp_path / "keys")
    address = await deploy_regtest_oracle(anvil.url, keys, node)
    port = free_port()
    config = tmp_path / "oracle.toml"
    write_config(
        config, db_url=pg_url, node=node, anvil=anvil, address=address, keys=keys, port=port
    )
    env = {"ORACLE_BITCOIND__RPC_PASSWORD": node.password}
    delays = []
    for _trial in range(TRIALS):
        with start_daemon(config, env) as proc:  # closes its output pipe on the way out
            try:
                wait_http(f"http://127.0.0.1:{port}/health", proc, timeout_s=60)
                node.mine(2016)
                follow_tip(node, anvil.url)
                delay = rng.uniform(0.0, 0.6)
                delays.append(round(delay, 3))
                await asyncio.sleep(delay)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
    last_epoch = node.height() // 2016
    assert last_epoch == TRIALS

    with start_daemon(config, env) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", proc, timeout_s=60)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                status, body = http_get_json(f"http://127.0.0.1:{port}/v1/retargets/{last_epoch}")
                if status == 200 and body.get("status") == "published":
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(
                    f"epoch {last_epoch} not published after the crashes ({delays})"
                )
            await asyncio.sleep(1)  # let the publication pass for earlier epochs settle, if any
        finally:
            assert terminate(proc) == 0

    w3 = connect(anvil.url)
    repo = await open_repository(pg_url)
    try:
        contract = OracleContract(w3, address)
        logs = await contract.contract.events.ReportAccepted().get_logs(from_block=0)
        epochs = sorted(int(entry["args"]["epoch"]) for entry in logs)
        assert epochs == list(range(1, last_epoch + 1)), f"delays {delays}"
        for epoch in range(last_epoch + 1):
            record = await repo.get_retarget("regtest", epoch)
            on_chain = await contract.retarget(epoch)
            assert record is not None and record.status == "published", epoch
            assert on_chain is not None and on_chain.block_hash_hex == record.block_hash_hex
            assert record.block_hash_hex == node.rpc("getblockhash", epoch * 2016)
            assert epoch == 0 or record.last_header is not None  # the proof's first half
            submission = await repo.submission_for_epoch(31337, address, epoch)
            if submission is not None:  # an epoch found on chain by reconcile may have none
                assert submission.state in {"confirmed", "abandoned", "failed"}, submission.state
                assert submission.function == "submit"
    finally:
        await repo.close()
        await w3.provider.disconnect()  # type: ignore[attr-defined]
