"""A miner hedges on the dev stack: the README's market walkthrough, end to end.

One ``bme-oracle dev`` (regtest bitcoind + anvil + the daemon publishing every retarget)
runs for the whole module; the tests drive it as a user does, with ``bme-oracle market``
and ``bme-oracle dev advance`` (in process, with the configuration ``dev`` wrote), and
check what the chain holds with the contract bindings and plain ERC-20 reads.

Every payout is computed here, with Fractions, from the value the oracle contract returns
(``bmeAtFinal`` at the expiry, ``bmeFinal`` at the barrier epoch) and the definition
(DESIGN.md "Position tokens": a long gets (clamp(BME) - Floor) x 10^6 BTC, a short
(Cap - clamp(BME)) x 10^6, rounded down to a satoshi per claim side), never taken from
the code under test.

Regtest's index is a constant (2.160E+18 BTC per TH/s per day at bits 0x207fffff), so:
the settlement-at-expiry series has strikes one 1E-7 unit either side of it (an index
inside [Floor, Cap], both sides paid, with rounding); the early series has today's
strikes, which the constant is far above (settles at Cap); the fallback pauses the
oracle and moves anvil 30 days past the expiry. The tests run in order on the one stack.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import schemathesis
from eth_account import Account

from oracle import cli
from oracle.api import ROUTES
from oracle.api.openapi import build_document
from oracle.market.chain import MarketContract, erc20, erc20_balance
from oracle.publish.contract import OracleContract, connect, send_and_wait
from oracle.publish.signing import load_keystore, write_keystore
from tests.conftest import ROOT
from tests.e2e.helpers import BIN, evm_rpc, http_get_json
from tests.fixtures.anvil import free_port

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.slow]
ONE = 10**18
#: 10^18 fixed point per 1E-7 BTC (the unit of the strikes in a name).
PER_UNIT = 10**11
DAY = 86_400
FEES = {"max_fee_wei": 100 * 10**9, "priority_fee_wei": 10**9}


@dataclass
class Dev:
    """The running ``bme-oracle dev`` and what a user has at hand."""

    ready: dict[str, Any]
    config: str
    password: str
    alice: Any  # the dev sender: funded with ether and 100 tWBTC
    bob: Any
    bob_keystore: Path
    w3: Any
    market: MarketContract
    oracle: OracleContract

    @property
    def wbtc(self) -> str:
        return str(self.ready["collateral_address"])


@pytest.fixture(scope="module")
def dev_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """``bme-oracle dev --json`` until its first retarget is published; stopped with Ctrl-C.

    Its workdir is ``<root>/var/dev``, the default, so the README's commands run
    unchanged from ``<root>`` as from a clone's root."""
    workdir = tmp_path_factory.mktemp("market-dev") / "var" / "dev"
    workdir.mkdir(parents=True)
    log = (workdir / "dev.log").open("w")
    proc = subprocess.Popen(
        [str(BIN), "dev", "--json", "--api-port", str(free_port()), "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=log,  # a file: a long session's logs would fill a pipe nobody reads
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        ready: dict[str, Any] | None = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            ready = ready or event
            if event["event"] == "retarget_published":
                break
        else:
            raise AssertionError("dev did not publish its first retarget in time")
        assert ready is not None, (workdir / "dev.log").read_text()[-4000:]
        yield ready, workdir
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


@pytest_asyncio.fixture(scope="module")
async def dev(dev_process: tuple[dict[str, Any], Path]) -> AsyncIterator[Dev]:
    ready, workdir = dev_process
    keys = workdir / "keys"
    password = (keys / "password").read_text(encoding="utf-8")
    alice = load_keystore(keys / "sender.json", password)
    bob_key = Account.create()
    bob_keystore = workdir / "bob.json"
    write_keystore(bob_keystore, bytes(bob_key.key), password, kdf_iterations=2**10)
    bob = load_keystore(bob_keystore, password)
    evm_rpc(ready["evm_rpc_url"], "anvil_setBalance", bob.address, hex(10**20))
    w3 = connect(ready["evm_rpc_url"])
    w3.eth.default_block = "pending"
    try:
        yield Dev(
            ready=ready,
            config=ready["config_file"],
            password=password,
            alice=alice,
            bob=bob,
            bob_keystore=bob_keystore,
            w3=w3,
            market=MarketContract(w3, ready["market_address"]),
            oracle=OracleContract(w3, ready["contract_address"]),
        )
    finally:
        await w3.provider.disconnect()


async def bme_oracle(
    capsys: pytest.CaptureFixture[str], *argv: str, expect: int = 0
) -> dict[str, Any] | str:
    """Run the CLI in process (in a thread: it runs its own event loop); JSON out if asked."""

    def main() -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:
            return int(exc.code or 0)

    status = await asyncio.to_thread(main)
    out, err = capsys.readouterr()
    assert status == expect, (argv, out, err)
    if expect:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("bme-oracle: error: "), err
        return lines[0]
    return json.loads(out) if "--json" in argv else out


async def market(capsys: pytest.CaptureFixture[str], dev: Dev, *argv: str, **kw: Any) -> Any:
    return await bme_oracle(capsys, "market", *argv, "--config", dev.config, **kw)


async def chain_time(dev: Dev) -> int:
    return int((await dev.w3.eth.get_block("pending"))["timestamp"])


def expiry_after(now: int, seconds: int) -> int:
    """The first 02:00 UTC at least ``seconds`` after ``now`` (computed with calendar)."""
    moment = now + seconds
    day_start = moment - moment % DAY
    expiry = day_start + 2 * 3600
    return expiry if expiry >= moment else expiry + DAY


def yymmdd(expiry: int) -> str:
    year, month, day = time.gmtime(expiry)[:3]
    assert calendar.timegm((year, month, day, 2, 0, 0)) == expiry
    return f"{year % 100:02d}{month:02d}{day:02d}"


def strike(units: Fraction) -> str:
    """A strike in 1E-7 units as a name writes it (at most 7 decimals, no trailing zeros)."""
    whole, rest = divmod(int(units * 10**7), 10**7)
    assert Fraction(whole * 10**7 + rest, 10**7) == units
    return f"{whole}.{rest:07d}".rstrip("0").rstrip(".")


def payout(amount: int, share: int, decimals: int = 8) -> int:
    """floor(amount/10^18 tokens x share/10^18 BTC per TH/s per day x 10^6 x 10^decimals)."""
    value = Fraction(amount, ONE) * Fraction(share, ONE) * 10**6 * 10**decimals
    return value.numerator // value.denominator


async def transfer(dev: Dev, token: str, sender: Any, to: str, amount: int) -> None:
    contract = erc20(dev.w3, token)
    data = contract.encode_abi("transfer", args=[to, amount])
    await send_and_wait(dev.w3, sender, {"to": contract.address, "data": data}, **FEES)


async def advance(capsys: pytest.CaptureFixture[str], dev: Dev, when: str) -> dict[str, Any]:
    moved = await bme_oracle(
        capsys, "dev", "advance", "--config", dev.config, "--to", when, "--json"
    )
    assert isinstance(moved, dict)
    return moved


# -- the dev stack shows its market -------------------------------------------------------


async def test_dev_prints_the_market_and_serves_the_sample_series(dev: Dev) -> None:
    ready = dev.ready
    for key in ("market_address", "collateral_address"):
        assert ready[key].startswith("0x") and len(ready[key]) == 42, ready
    assert ready["sample_series"].startswith("BME14-4.85-5.4-")
    assert ready["config_file"] == str(dev.config)  # written, and every command here used it
    status, body = http_get_json(f"{ready['api_url']}/v1/markets")
    assert status == 200, body
    assert body["market"]["address"] == ready["market_address"]
    assert body["market"]["oracle"] == ready["contract_address"]
    (sample,) = body["series"]
    assert sample["name"] == ready["sample_series"] and sample["id"] == ready["sample_series_id"]
    assert sample["collateral"] == {
        "address": ready["collateral_address"],
        "symbol": "tWBTC",
        "decimals": 8,
    }
    assert sample["status"] == "open" and sample["pair_collateral"]["units"] == "0.055"
    # the expiry: the first 02:00 UTC at least 7 days after the series was created
    assert sample["expiry"] == expiry_after(sample["created_at"], 7 * DAY)
    status, detail = http_get_json(f"{ready['api_url']}/v1/markets/L{ready['sample_series']}")
    assert status == 200 and detail["series"] == sample
    # the dev sender holds the 100 tWBTC dev collateral
    assert await erc20_balance(dev.w3, dev.wbtc, dev.alice.address) == 100 * 10**8


def readme_walkthrough() -> str:
    """The shell block of the README's "Hedge with the market on the dev stack"."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Hedge with the market on the dev stack", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("\n", 1)[1] for block in section.split("```sh")[1:]]
    assert len(blocks) == 1, "expected one ```sh block in the section"
    return blocks[0].split("```", 1)[0]


def test_the_readme_walkthrough_runs_as_written(dev_process: tuple[dict[str, Any], Path]) -> None:
    """A README user's second terminal: the commands pasted as they are, from the root."""
    ready, workdir = dev_process
    root = workdir.parent.parent
    env = {**os.environ, "PATH": f"{BIN.parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_walkthrough()],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    sample = ready["sample_series"]
    assert f"{sample}  open" in out and "0.055 per pair" in out
    assert f"minted 0.0084 L{sample} + 0.0084 S{sample} for 0.000462 tWBTC" in out
    assert "is published and final" in out
    assert "settled at its expiry" in out
    # regtest's index is above the Cap: the long takes the pair's collateral, the short 0
    assert f"claimed 0.0084 long + 0.0084 short of {sample}: paid 0.000462 tWBTC" in out


# -- create, mint, transfer, publish, settle after the delay, claim -----------------------


async def test_mint_transfer_settle_at_expiry_and_claim_pay_the_formulas(
    dev: Dev, capsys: pytest.CaptureFixture[str]
) -> None:
    # strikes one 1E-7 unit either side of the oracle's (constant) regtest index
    index = await dev.oracle.bme(14, await dev.oracle.latest_epoch())
    units = Fraction(index, PER_UNIT)
    floor = Fraction(int(units * 10**7), 10**7) - 1  # 7 decimals, below the index
    cap = floor + 2
    expiry = expiry_after(await chain_time(dev), 2 * DAY)
    name = f"BME14-{strike(floor)}-{strike(cap)}-{yymmdd(expiry)}"
    created = await market(capsys, dev, "create", name, "--json")
    assert created["name"] == name and created["expiry"] == expiry
    floor_fixed, cap_fixed = int(floor * PER_UNIT), int(cap * PER_UNIT)
    assert (created["floor_fixed"], created["cap_fixed"]) == (str(floor_fixed), str(cap_fixed))
    pair = Fraction(cap_fixed - floor_fixed, ONE) * 10**6 * 10**8  # 0.2 BTC: 2 units x 10^6
    assert pair == 20_000_000

    # Alice mints 1.5 pairs, gives Bob 0.7 longs and 0.2 shorts
    wbtc_before = await erc20_balance(dev.w3, dev.wbtc, dev.alice.address)
    minted = await market(capsys, dev, "mint", name, "--amount", "1.5", "--json")
    assert minted["collateral_in"]["base"] == str(int(Fraction(3, 2) * pair))
    assert wbtc_before - await erc20_balance(dev.w3, dev.wbtc, dev.alice.address) == 30_000_000
    info = (await dev.market.list_series())[-1]
    assert info.name == name
    await transfer(dev, info.long_token, dev.alice, dev.bob.address, 7 * ONE // 10)
    await transfer(dev, info.short_token, dev.alice, dev.bob.address, 2 * ONE // 10)

    refused = await market(capsys, dev, "settle", name, expect=2)
    assert "cannot settle yet" in refused and "settlement opens at" in refused

    # time passes: past expiry + 1 day, the daemon publishes the next retarget, it goes final
    opens = expiry + DAY
    moved = await advance(capsys, dev, time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(opens + 600)))
    assert moved["retarget_time"] > expiry and moved["evm_time"] >= opens
    value, epoch = await dev.oracle.bme_at_final(14, expiry)
    assert (await dev.oracle.retarget(epoch)).time <= expiry < moved["retarget_time"]

    settled = await market(capsys, dev, "settle", name, "--json")
    assert settled["settled_by"] == "final" and settled["status"] == "settled"
    assert settled["settlement"]["value_fixed"] == str(value)
    assert settled["settlement"]["epoch"] == epoch

    # the payouts of the definition, with the index clamped to [Floor, Cap]
    share = min(max(value, floor_fixed), cap_fixed) - floor_fixed
    width = cap_fixed - floor_fixed
    assert 0 < share < width  # both sides are paid
    holdings = {
        dev.alice.address: (8 * ONE // 10, 13 * ONE // 10),
        dev.bob.address: (7 * ONE // 10, 2 * ONE // 10),
    }
    for account, (longs, shorts) in holdings.items():
        expected = payout(longs, share) + payout(shorts, width - share)
        before = await erc20_balance(dev.w3, dev.wbtc, account)
        extra = [] if account == dev.alice.address else ["--sender-keystore", str(dev.bob_keystore)]
        claimed = await market(capsys, dev, "claim", name, *extra, "--json")
        assert claimed["paid"]["base"] == str(expected)
        assert await erc20_balance(dev.w3, dev.wbtc, account) - before == expected
        assert claimed["balances"]["long"] == claimed["balances"]["short"] == "0"
    info = await dev.market.series_info(info.series_id)
    total = sum(
        payout(longs, share) + payout(shorts, width - share) for longs, shorts in holdings.values()
    )
    assert (info.deposited, info.paid_out) == (30_000_000, total)
    assert 0 <= info.deposited - info.paid_out <= 4  # rounding dust stays in the market
    again = await market(capsys, dev, "claim", name, expect=2)
    assert "holds no tokens" in again


# -- early settlement at Cap, and redeem before settlement --------------------------------


async def test_redeem_before_settlement_and_early_settlement_at_cap(
    dev: Dev, capsys: pytest.CaptureFixture[str]
) -> None:
    created_from = await chain_time(dev)
    expiry = expiry_after(created_from, 60 * DAY)
    name = f"BME14-4.85-5.4-{yymmdd(expiry)}"
    await market(capsys, dev, "create", name, "--json")
    info = (await dev.market.list_series())[-1]
    pair = 5_500_000  # (5.4 - 4.85) x 1E-7 x 10^6 BTC = 0.055 BTC
    await market(capsys, dev, "mint", name, "--amount", "2", "--json")

    # redeem part before settlement: floor(amount x pair), exactly
    before = await erc20_balance(dev.w3, dev.wbtc, dev.alice.address)
    redeemed = await market(capsys, dev, "redeem", name, "--amount", "0.333", "--json")
    expected = int(Fraction(333, 1000) * pair)  # 1,831,500 satoshis
    assert redeemed["collateral_out"]["base"] == str(expected) == "1831500"
    assert await erc20_balance(dev.w3, dev.wbtc, dev.alice.address) - before == expected
    held = await dev.market.token_balances(info.series_id, dev.alice.address)
    assert held.long == held.short == 2 * ONE - 333 * ONE // 1000

    # no epoch after the creation yet: no early settlement
    refused = await market(capsys, dev, "settle", name, expect=2)
    assert "cannot settle yet" in refused
    # a day on: the next retarget (after the creation, long before expiry) is final
    moved = await advance(capsys, dev, "+1d")
    assert info.created_at < moved["retarget_time"] < expiry
    barrier = await dev.oracle.bme_final(14, moved["epoch"])
    assert barrier >= info.cap  # regtest's constant index is far above today's strikes

    settled = await market(capsys, dev, "settle", name, "--json")
    assert settled["settled_by"] == "early"
    assert settled["settlement"]["epoch"] == moved["epoch"]
    assert settled["settlement"]["value_fixed"] == str(barrier)
    refused = await market(capsys, dev, "redeem", name, "--amount", "all", expect=2)
    assert "settled" in refused and "claim" in refused

    # at Cap a long is worth the whole pair and a short nothing
    share = info.cap - info.floor
    before = await erc20_balance(dev.w3, dev.wbtc, dev.alice.address)
    claimed = await market(capsys, dev, "claim", name, "--json")
    assert claimed["paid"]["base"] == str(payout(held.long, share) + payout(held.short, 0))
    assert await erc20_balance(dev.w3, dev.wbtc, dev.alice.address) - before == int(
        Fraction(held.long, ONE) * pair
    )


async def test_bad_input_against_the_running_stack(
    dev: Dev, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = dev.ready["sample_series"]
    for argv, fragment in (
        (["mint", "BME14-4.85-5.4-300101", "--amount", "1"], "unknown series"),
        (["mint", sample, "--amount", "0.1.2"], "not an amount"),
        (["mint", sample, "--amount", "-1"], "not an amount"),
        (["create", "BME14-1-2-300101", "--collateral", "0x" + "77" * 20], "not on the allowlist"),
        (["status", "BME14-1-2-301301"], "not a date"),
    ):
        message = await market(capsys, dev, *argv, expect=2)
        assert fragment in message, message


# -- the fallback: no final value 30 days after expiry ------------------------------------


async def test_fallback_pays_half_a_pair_when_the_oracle_stays_paused(
    dev: Dev, capsys: pytest.CaptureFixture[str]
) -> None:
    expiry = expiry_after(await chain_time(dev), 2 * DAY)
    name = f"BME14-4.8-5.35-{yymmdd(expiry)}"  # (5.35 - 4.8) x 1E-7 x 10^6 = 0.055 BTC
    await market(capsys, dev, "create", name, "--json")
    info = (await dev.market.list_series())[-1]
    assert info.name == name
    await market(capsys, dev, "mint", name, "--amount", "1", "--json")
    await transfer(dev, info.short_token, dev.alice, dev.bob.address, 3 * ONE // 10)
    await bme_oracle(capsys, "contract", "pause", "--config", dev.config, "--json")
    try:
        url = dev.ready["evm_rpc_url"]
        evm_rpc(url, "evm_setNextBlockTimestamp", expiry + 2 * DAY)
        evm_rpc(url, "evm_mine")
        refused = await market(capsys, dev, "settle", name, expect=2)
        assert "the oracle is paused" in refused and "fallback opens at" in refused

        evm_rpc(url, "evm_setNextBlockTimestamp", expiry + 30 * DAY)
        evm_rpc(url, "evm_mine")
        settled = await market(capsys, dev, "settle", name, "--json")
        assert settled["settled_by"] == "fallback" and settled["status"] == "fallback"
        half = (info.cap - info.floor) // 2  # each token: half a pair's collateral
        assert settled["settlement"]["long_payout_per_token"]["base"] == "2750000"
        for account, longs, shorts, extra in (
            (dev.alice.address, ONE, 7 * ONE // 10, []),
            (dev.bob.address, 0, 3 * ONE // 10, ["--sender-keystore", str(dev.bob_keystore)]),
        ):
            before = await erc20_balance(dev.w3, dev.wbtc, account)
            claimed = await market(capsys, dev, "claim", name, *extra, "--json")
            expected = payout(longs, half) + payout(shorts, half)
            assert claimed["paid"]["base"] == str(expected)
            assert await erc20_balance(dev.w3, dev.wbtc, account) - before == expected
        assert int(Fraction(17, 10) * 2_750_000) + int(Fraction(3, 10) * 2_750_000) == 5_500_000
    finally:
        await bme_oracle(capsys, "contract", "unpause", "--config", dev.config, "--json")


def test_the_api_shows_every_state_as_its_document_says(
    dev_process: tuple[dict[str, Any], Path],
) -> None:
    """After the tests above the market holds settled (at expiry, early) and fallback series
    (the open ones are in the integration tests): the answer matches the OpenAPI schema
    (schemathesis), and each series' ledger holds."""
    ready, _ = dev_process
    document = schemathesis.openapi.from_dict(
        json.loads(json.dumps(build_document(ROUTES, network="regtest")))
    )
    response = requests.get(f"{ready['api_url']}/v1/markets", timeout=10)
    assert response.status_code == 200, response.text
    document["/v1/markets"]["GET"].validate_response(response)
    series = response.json()["series"]
    assert {s["status"] for s in series} == {"settled", "fallback"}
    for item in series:
        ledger = item["ledger"]
        assert int(ledger["paid_out"]["base"]) <= int(ledger["deposited"]["base"])
