"""``bme-oracle market`` and ``/v1/markets`` on a real anvil with the real BmeMarket.

The world is ``tests/integration/market_world.py``: a private anvil starting in 2019, a
regtest-mode oracle, TestWBTC and a market. The CLI runs in process (``oracle.cli.main``,
in a thread: it runs its own event loop) with a configuration file naming the node, the
market and a keystore, as a user's would. Expected values are computed here from the
definitions with Fractions, and checked against what the chain holds, read with the
wrapper (``oracle.market.chain``), never against the CLI's own output alone.

Bad input exits 2 with one line naming what is wrong, before any transaction.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import requests
import schemathesis

from oracle import cli
from oracle.api import ROUTES, ApiContext, start_api
from oracle.api.openapi import build_document
from oracle.config import Config, MarketConfig, PublisherConfig
from oracle.market.chain import erc20_balance
from oracle.monitor.health import ReadinessReport
from oracle.monitor.metrics import Metrics
from oracle.store import migrate
from oracle.store.repository import open_repository
from tests.fixtures.anvil import KEYSTORE_PASSWORD, AnvilNode, ChainAccounts
from tests.integration.market_world import (
    START,
    MarketWorld,
    at_2am,
    build_world,
    start_node,
)

pytestmark = [pytest.mark.anvil]
#: The series every test here reads: BME14, Floor 4.85E-07, Cap 5.4E-07, expiry 2019-03-01.
NAME = "BME14-4.85-5.4-190301"
FLOOR, CAP = 485 * 10**9, 540 * 10**9
EXPIRY = at_2am(2019, 3, 1)
#: A whole pair's collateral in satoshis, by hand: (5.4 - 4.85) x 1E-7 x 10^6 BTC = 0.055 BTC.
PAIR_SAT = 5_500_000


@dataclass
class Market:
    world: MarketWorld
    config_file: Path
    series_id: bytes

    @property
    def sender(self) -> Any:
        return self.world.holders[0]


@pytest.fixture(scope="module")
def market_node() -> Iterator[AnvilNode]:
    node = start_node()
    try:
        yield node
    finally:
        node.stop()


@pytest_asyncio.fixture(scope="module")
async def market(
    market_node: AnvilNode,
    test_accounts: ChainAccounts,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Market]:
    world = await build_world(market_node, test_accounts)
    sender = world.holders[0]
    await world.fund_wbtc(sender, 10 * 10**8)  # 10 tWBTC
    series_id = await world.market.create_series(
        n_days=14, floor=FLOOR, cap=CAP, expiry=EXPIRY, collateral=world.wbtc, sender=sender
    )
    directory = tmp_path_factory.mktemp("market-cli")
    password = directory / "password"
    password.write_text(KEYSTORE_PASSWORD, encoding="utf-8")
    config_file = directory / "oracle.toml"
    config_file.write_text(
        "[publisher]\n"
        f'rpc_url = "{market_node.url}"\n'
        "chain_id = 31337\n"
        f'sender_keystore_file = "{test_accounts.keystore_paths[sender.address]}"\n'
        f'keystore_password_file = "{password}"\n'
        "max_fee_gwei = 100.0\n"
        "[market]\n"
        f'address = "{world.market.address}"\n',
        encoding="utf-8",
    )
    try:
        yield Market(world, config_file, series_id)
    finally:
        await world.w3.provider.disconnect()


async def bme_oracle(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in process, in a thread (it runs its own event loop)."""

    def main() -> int:
        try:
            return cli.main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            return int(exc.code or 0)

    status = await asyncio.to_thread(main)
    out, err = capsys.readouterr()
    return status, out, err


def refused(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("bme-oracle: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


# -- the CLI ------------------------------------------------------------------------------


async def test_status_shows_the_series_as_the_chain_holds_it(
    market: Market, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = await bme_oracle(
        capsys, "market", "status", "--config", str(market.config_file), "--json"
    )
    assert status == 0, err
    listed = json.loads(out)
    assert listed["market"] == market.world.market.address
    (series,) = [s for s in listed["series"] if s["name"] == NAME]
    assert series["id"] == "0x" + market.series_id.hex()
    assert (series["floor"], series["cap"], series["n_days"]) == ("4.85E-07", "5.4E-07", 14)
    assert series["pair_collateral"] == {"base": str(PAIR_SAT), "units": "0.055"}
    assert series["collateral"] == {
        "address": market.world.wbtc,
        "symbol": "tWBTC",
        "decimals": 8,
    }
    assert series["expiry"] == EXPIRY and series["status"] == "open"
    # a token name with a trailing zero names the same series, shown as text
    status, out, err = await bme_oracle(
        capsys, "market", "status", "LBME14-4.85-5.40-190301", "--config", str(market.config_file)
    )
    assert status == 0, err
    assert out.startswith(f"{NAME}  open") and "4.85E-07" in out and "0.055 per pair" in out


async def test_mint_and_redeem_move_exactly_the_collateral_of_the_definition(
    market: Market, capsys: pytest.CaptureFixture[str]
) -> None:
    world, sender = market.world, market.sender
    before = await erc20_balance(world.w3, world.wbtc, sender.address)
    status, out, err = await bme_oracle(
        capsys,
        "market", "mint", NAME, "--amount", "0.0084", "--config", str(market.config_file), "--json",
    )  # fmt: skip
    assert status == 0, err
    minted = json.loads(out)
    # 0.0084 pairs x 0.055 BTC = 0.000462 BTC = 46,200 satoshis (exact, nothing to round)
    taken = Fraction(84, 10_000) * Fraction(55, 1000) * 10**8
    assert taken == 46_200
    assert minted["collateral_in"] == {"base": "46200", "units": "0.000462"}
    assert before - await erc20_balance(world.w3, world.wbtc, sender.address) == 46_200
    # Every transaction sent is reported, in order, and is on chain: the collateral's
    # approve (a fresh sender has no allowance), then the market's mint.
    receipts = [await world.w3.eth.get_transaction_receipt(h) for h in minted["transactions"]]
    assert [(r["status"], r["to"]) for r in receipts] == [
        (1, world.wbtc),
        (1, world.market.address),
    ]
    held = await world.market.token_balances(market.series_id, sender.address)
    assert (held.long, held.short) == (84 * 10**14, 84 * 10**14)
    # an odd amount: the mint rounds the collateral up, the redeem down
    odd = "0.000000000000000007"  # 7 base units of each token
    status, out, err = await bme_oracle(
        capsys, "market", "mint", NAME, "--amount", odd, "--config", str(market.config_file),
        "--json",
    )  # fmt: skip
    assert status == 0, err
    exact = Fraction(7, 10**18) * PAIR_SAT  # 3.85e-11 satoshis
    assert json.loads(out)["collateral_in"]["base"] == str(-(-exact.numerator // exact.denominator))
    status, out, err = await bme_oracle(
        capsys, "market", "redeem", NAME, "--amount", "all", "--config", str(market.config_file),
        "--json",
    )  # fmt: skip
    assert status == 0, err
    redeemed = json.loads(out)
    pairs = Fraction(84 * 10**14 + 7, 10**18)
    assert redeemed["redeemed"] == "0.008400000000000007"
    assert redeemed["collateral_out"]["base"] == str(int(pairs * PAIR_SAT))  # floor: 46,200
    held = await world.market.token_balances(market.series_id, sender.address)
    assert (held.long, held.short) == (0, 0)
    assert before - held.collateral == 1  # the mint's rounding up stays in the market
    info = await world.market.series_info(market.series_id)
    assert (info.deposited, info.paid_out) == (46_201, 46_200)


OTHER_DAY = "BME14-4.85-5.4-190302"
NEW = "BME14-1-2-190401"
#: (arguments after ``market``, fragments of the one-line message). "WBTC": the collateral.
BAD_INPUT: list[tuple[list[str], list[str]]] = [
    (["mint", OTHER_DAY, "--amount", "1"], [f"unknown series {OTHER_DAY}", NAME]),
    (["mint", NAME, "--amount", "1e-3"], ["--amount", "not an amount"]),
    (["mint", NAME, "--amount", "0"], ["--amount", "must be more than 0"]),
    (["mint", NAME, "--amount", "1000"], ["--amount 1000", "needs 55", "holds"]),
    (["mint", "BME14-4.85-5.4", "--amount", "1"], ["expected", "4 parts"]),
    (["mint", "BME15-4.85-5.4-190301", "--amount", "1"], ["multiple of 14"]),
    (["redeem", NAME, "--amount", "5"], ["--amount 5", "at most"]),
    (["claim", NAME], ["not settled yet", f"bme-oracle market settle {NAME}"]),
    (["settle", NAME], ["cannot settle yet", "settlement opens at 2019-03-02T02:00:00Z"]),
    (["settle", NAME, "--epoch", "7"], ["--epoch 7", "not stored"]),
    (["create", NEW, "--collateral", "0x" + "12" * 20], ["--collateral", "not on the allowlist"]),
    (["create", NEW, "--collateral", "wbtc"], ["--collateral", "not an address"]),
    (["create", NAME, "--collateral", "WBTC"], ["exists already"]),
    (["create", "BME14-1-2-180101", "--collateral", "WBTC"], ["not after the chain's time"]),
    (["status", NAME, "--market", "0x" + "34" * 20], ["no contract at the market address"]),
]


@pytest.mark.parametrize(("argv", "fragments"), BAD_INPUT, ids=lambda v: " ".join(v)[:50])
async def test_bad_input_exits_2_naming_what_is_wrong(
    market: Market, capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    argv = [market.world.wbtc if arg == "WBTC" else arg for arg in argv]
    count = await market.world.w3.eth.get_transaction_count(market.sender.address)
    status, out, err = await bme_oracle(
        capsys, "market", *argv, "--config", str(market.config_file)
    )
    assert status == 2, (out, err)
    refused(err, *fragments)
    # refused before anything was sent
    assert await market.world.w3.eth.get_transaction_count(market.sender.address) == count


async def test_create_takes_the_only_allowlisted_collateral_or_asks(
    market: Market, capsys: pytest.CaptureFixture[str]
) -> None:
    # this market allows three collateral tokens: create must be told which
    status, _, err = await bme_oracle(
        capsys, "market", "create", "BME28-250-300-190601", "--config", str(market.config_file)
    )
    assert status == 2
    refused(err, "accepts 3 collateral tokens", "--collateral")
    status, out, err = await bme_oracle(
        capsys, "market", "create", "BME28-250-300.0-190601", "--collateral", market.world.wbtc,
        "--config", str(market.config_file), "--json",
    )  # fmt: skip
    assert status == 0, err
    created = json.loads(out)
    assert created["name"] == "BME28-250-300-190601"  # canonical: no trailing zeros
    # the seed's SBME84-250-300 is 5 BTC per pair: (300 - 250) x 1E-7 x 10^6
    assert created["pair_collateral"] == {"base": "500000000", "units": "5"}
    info = await market.world.market.series_info(bytes.fromhex(created["id"][2:]))
    assert (info.floor, info.cap, info.n_days) == (25 * 10**12, 30 * 10**12, 28)
    assert info.expiry == at_2am(2019, 6, 1) and info.created_at >= START


# -- the API ------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(market: Market, tmp_path: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, Any]]:
    """The read API with ``[market]`` pointing at the world's market."""
    async with serve_api(tmp_path, rpc_url=market.world.onchain.node.url, market=market) as pair:
        yield pair


@asynccontextmanager
async def serve_api(
    tmp_path: Path, *, rpc_url: str, market: Market | None, timeout_s: float = 3.0
) -> AsyncIterator[tuple[aiohttp.ClientSession, Any]]:
    """The API on a free port with ``[market]`` at ``market``'s contract (none: no market)
    read through ``rpc_url``; yields (client session, the app runner)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'api.sqlite'}"
    await migrate.upgrade(url)
    repository = await open_repository(url)
    config = Config(
        publisher=PublisherConfig(rpc_url=rpc_url, chain_id=31337),
        market=MarketConfig(
            address=market.world.market.address if market else "",
            read_timeout_s=timeout_s,
            cache_ttl_s=60.0,
        ),
    )

    async def readiness() -> ReadinessReport:
        return ReadinessReport(ready=True, reasons=(), database_ok=True, chain_ok=True, quorum=1)

    context = ApiContext(
        repository=repository,
        config=config,
        metrics=Metrics("regtest"),
        network="regtest",
        readiness=readiness,
    )
    try:
        runner, port = await start_api(context, host="127.0.0.1", port=0)
        try:
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as client:
                yield client, runner
        finally:
            await runner.cleanup()
    finally:
        await repository.close()


async def get(client: aiohttp.ClientSession, path: str) -> tuple[int, Any]:
    async with client.get(path) as response:
        return response.status, await response.json()


def conforms(base_url: str, path: str, template: str) -> None:
    """The answer matches the OpenAPI document's schema for the route (schemathesis)."""
    operation = DOCUMENT[template]["GET"]
    response = requests.get(f"{base_url}{path}", timeout=10)
    assert response.status_code == 200, response.text
    operation.validate_response(response)


DOCUMENT = schemathesis.openapi.from_dict(
    json.loads(json.dumps(build_document(ROUTES, network="regtest")))
)


async def test_markets_list_and_detail(
    market: Market, api: tuple[aiohttp.ClientSession, Any]
) -> None:
    client, _ = api
    status, body = await get(client, "/v1/markets")
    assert status == 200, body
    base_url = str(client._base_url).rstrip("/")
    await asyncio.to_thread(conforms, base_url, "/v1/markets", "/v1/markets")
    await asyncio.to_thread(conforms, base_url, f"/v1/markets/{NAME}", "/v1/markets/{name}")
    assert body["market"]["address"] == market.world.market.address
    assert body["market"]["oracle"] == market.world.oracle.address
    assert market.world.wbtc in body["market"]["collaterals"]
    info = await market.world.market.series_info(market.series_id)
    (series,) = [s for s in body["series"] if s["id"] == "0x" + market.series_id.hex()]
    assert series["name"] == NAME
    assert series["ledger"]["deposited"]["base"] == str(info.deposited)
    assert series["long_token"]["address"] == info.long_token
    supply = await erc20_balance(market.world.w3, info.long_token, market.sender.address)
    assert series["long_token"]["supply_base"] == str(supply)  # the only holder
    for name in (NAME, "SBME14-4.85-5.40-190301"):
        status, detail = await get(client, f"/v1/markets/{name}")
        assert status == 200, detail
        assert detail["series"] == series
    status, detail = await get(client, f"/v1/markets/{NAME}?collateral={market.world.wbtc}")
    assert status == 200 and detail["series"]["name"] == NAME


@pytest.mark.parametrize(
    ("path", "expected", "fragment"),
    [
        ("/v1/markets/BME14-4.85-5.4-190302", 404, "no series BME14-4.85-5.4-190302"),
        ("/v1/markets/BME14-4.85-5.4", 400, "series or token name"),
        ("/v1/markets/BME14-04.85-5.4-190301", 400, "series or token name"),
        ("/v1/markets/BME14-5.4-4.85-190301", 404, "must be greater than floor"),
        ("/v1/markets/BME15-4.85-5.4-190301", 404, "multiple of 14"),
        ("/v1/markets/BME14-4.85-5.4-191332", 404, "not a date"),
        (f"/v1/markets/{NAME}?collateral=wbtc", 400, "0x address"),
        (f"/v1/markets/{NAME}?collateral=0x" + "55" * 20, 404, "no series"),
    ],
)
async def test_markets_bad_names(
    api: tuple[aiohttp.ClientSession, Any], path: str, expected: int, fragment: str
) -> None:
    status, body = await get(api[0], path)
    assert status == expected, body
    assert fragment in body["error"]["message"]


async def test_without_a_market_both_are_404(tmp_path: Path) -> None:
    async with serve_api(tmp_path, rpc_url="http://127.0.0.1:9", market=None) as (client, _):
        for path in ("/v1/markets", f"/v1/markets/{NAME}"):
            status, body = await get(client, path)
            assert status == 404 and body["error"]["code"] == "no_market", body


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_evm_node_that_is_down_is_a_prompt_503_and_the_rest_answers(
    market: Market, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with serve_api(tmp_path, rpc_url=url, market=market) as (client, _):
        started = asyncio.get_running_loop().time()
        status, body = await get(client, "/v1/markets")
        assert status == 503, body
        assert body["error"]["code"] == "market_unavailable"
        assert market.world.market.address in body["error"]["message"]
        assert url not in body["error"]["message"]  # no RPC URL (they carry provider keys)
        assert asyncio.get_running_loop().time() - started < 3.0
        status, _ = await get(client, "/health")
        assert status == 200


async def test_a_node_that_hangs_is_a_503_within_the_read_timeout(
    market: Market, tmp_path: Path
) -> None:
    """A node that accepts the connection and never answers: the 503 comes after
    ``read_timeout_s``, and other endpoints answer meanwhile."""
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)
    url = f"http://127.0.0.1:{hanging.getsockname()[1]}"
    try:
        async with serve_api(tmp_path, rpc_url=url, market=market, timeout_s=0.5) as (client, _):
            loop = asyncio.get_running_loop()
            started = loop.time()
            markets = asyncio.create_task(get(client, "/v1/markets"))
            status, _ = await get(client, "/health")
            assert status == 200 and not markets.done()
            status, body = await markets
            assert status == 503, body
            assert "did not answer within 0.5 s" in body["error"]["message"]
            assert 0.5 <= loop.time() - started < 3.0
    finally:
        hanging.close()


async def test_the_market_is_read_once_per_cache_period(
    market: Market, api: tuple[aiohttp.ClientSession, Any]
) -> None:
    from oracle.api.markets import MARKETS

    client, runner = api
    view = runner.app[MARKETS]
    results = await asyncio.gather(*(get(client, "/v1/markets") for _ in range(20)))
    assert {status for status, _ in results} == {200}
    assert view._readings.loads == 1
