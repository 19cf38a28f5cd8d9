"""`bme-oracle dev`: the README's first command, end to end with real bitcoind and anvil.

The first two tests run the real command. The third drives the dev stack's own parts
(``oracle.devstack``: regtest bitcoind, anvil, dev keys, the regtest-mode deployment
anchored at epoch 0, the clock follower) through more than two hours of fast-mined
regtest time, submitting every epoch with its chain-bound proof, so a long ``dev``
session keeps working on the contract's 2-hour rule.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from oracle.bitcoin.header import parse_header
from oracle.devstack.clock import evm_pending_time
from oracle.devstack.nodes import Anvil, Bitcoind
from oracle.devstack.stack import (
    DEV_CHALLENGE_WINDOW_S,
    DEV_GOVERNANCE_DELAY_S,
    DevStack,
    deploy_dev_contract,
    dev_genesis,
    follow_tip,
    make_dev_keys,
)
from oracle.publish.anchor import build_proof
from oracle.publish.contract import ContractReverted, OracleContract, connect, send_and_wait
from oracle.publish.genesis import REGTEST_GENESIS
from oracle.publish.signing import Report, load_keystore, load_keystores, pack_signatures
from tests.e2e.helpers import BIN, http_get_json
from tests.fixtures.anvil import free_port

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.slow]
#: Enough fast-mined epochs (~334 s of header time each) to run > 2 h ahead of the wall clock.
LONG_RUN_EPOCHS = 24
MAX_FUTURE_S = 2 * 3600


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
    ready = events[0]
    assert ready["event"] == "ready"
    assert ready["api_url"].startswith("http://127.0.0.1:")
    assert ready["contract_address"].startswith("0x") and len(ready["contract_address"]) == 42
    assert (ready["network"], ready["evm_chain_id"]) == ("regtest", 31337)
    assert ready["genesis"] == REGTEST_GENESIS.as_dict()
    assert ready["challenge_window_s"] == DEV_CHALLENGE_WINDOW_S
    assert ready["governance_delay_s"] == DEV_GOVERNANCE_DELAY_S
    # the market, its collateral and a sample series (tests/e2e/test_market_e2e.py uses them)
    assert ready["market_address"].startswith("0x") and len(ready["market_address"]) == 42
    assert ready["sample_series"].startswith("BME14-4.85-5.4-")
    assert ready["config_file"] == str((tmp_path / "dev" / "oracle.toml").resolve())
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
            ready = published = None
            while time.monotonic() < deadline and published is None:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("{"):
                    event = json.loads(line)
                    ready = ready or event
                    if event["event"] == "retarget_published":
                        published = event
            assert published is not None, proc.stderr.read() if proc.stderr else ""
            assert ready is not None and ready["event"] == "ready"
            status, body = http_get_json(f"http://127.0.0.1:{port}/v1/retargets/1")
            assert status == 200 and body["status"] == "published", body
            # anvil's clock follows the regtest tip, which runs ahead of the wall clock
            assert evm_pending_time(ready["evm_rpc_url"]) >= body["time"]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def raw_header(bitcoind: Bitcoind, height: int) -> bytes:
    return bytes.fromhex(
        bitcoind.call("getblockheader", bitcoind.call("getblockhash", height), False)
    )


async def test_dev_chain_stays_publishable_past_two_hours_ahead(tmp_path: Path) -> None:
    stack = DevStack(
        tmp_path, Bitcoind(datadir=tmp_path / "bitcoind"), Anvil(), make_dev_keys(tmp_path / "k")
    )
    w3 = None
    try:
        stack.bitcoind.start()
        stack.anvil.start()
        genesis = await dev_genesis(stack.bitcoind)
        assert genesis == REGTEST_GENESIS
        address = await deploy_dev_contract(stack.anvil.url, stack.keys, genesis=genesis)
        # Mined without following: the headers end up > 2 h ahead of anvil's clock.
        stack.bitcoind.mine(LONG_RUN_EPOCHS * 2016)
        w3 = connect(stack.anvil.url)
        oracle = OracleContract(w3, address)
        sender = load_keystore(stack.keys.sender, stack.keys.password)
        signers = load_keystores(stack.keys.signers, stack.keys.password)
        refused_until_followed = []
        for epoch in range(1, LONG_RUN_EPOCHS + 1):
            last, retarget = (raw_header(stack.bitcoind, epoch * 2016 + d) for d in (-1, 0))
            report = Report.for_epoch(epoch, parse_header(retarget), config_version=1)
            signatures = pack_signatures(
                s.sign_report(report, chain_id=31337, contract_address=address) for s in signers[:2]
            )
            proof = build_proof(epoch, last, retarget)
            if report.time > evm_pending_time(stack.anvil.url) + MAX_FUTURE_S:
                with pytest.raises(ContractReverted) as refused:
                    await oracle.simulate_submit(report, signatures, proof, sender=sender.address)
                assert refused.value.name == "HeaderTimeInFuture"
                refused_until_followed.append(epoch)
                assert follow_tip(stack) >= report.time
            await send_and_wait(
                w3,
                sender,
                {"to": address, "data": oracle.submit_calldata(report, signatures, proof)},
                max_fee_wei=100 * 10**9,
                priority_fee_wei=10**9,
            )
        assert refused_until_followed, "the chain never ran 2 h ahead: mine more epochs"
        assert await oracle.latest_epoch() == LONG_RUN_EPOCHS
        stored = await oracle.retarget(LONG_RUN_EPOCHS)
        assert stored is not None
        assert stored.block_hash_hex == stack.bitcoind.call("getblockhash", LONG_RUN_EPOCHS * 2016)
    finally:
        if w3 is not None:
            await w3.provider.disconnect()
        stack.anvil.stop()
        stack.bitcoind.stop()
