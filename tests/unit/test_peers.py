"""oracle.peers without a chain: the wire format, who submits, and the peer client's defences.

The client is exercised against real local HTTP servers (aiohttp) that answer
well, slowly, with garbage, with HTTP errors or with bodies over the cap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from eth_account import Account

from oracle.config import Config, PeersConfig, PublisherConfig, validate
from oracle.peers.client import PeerClient, PeerUnavailable
from oracle.peers.signers import SignerSet, submit_rank
from oracle.peers.wire import PeerDataError, SignedReport, attestation_body, parse_body
from oracle.publish.signing import KeystoreAccount, Report, recover_signer

CHAIN_ID = 31337
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
REPORT = Report(
    epoch=7, block_hash_hex="ab" * 32, bits=0x207FFFFF, time=1_700_000_000, config_version=3
)


def _account() -> KeystoreAccount:
    return KeystoreAccount(bytes(Account.create().key))


def _signed(account: KeystoreAccount, report: Report = REPORT) -> SignedReport:
    signature = account.sign_report(report, chain_id=CHAIN_ID, contract_address=CONTRACT)
    return SignedReport(signer=account.address, report=report, signature=signature.signature)


def _body(*items: SignedReport, epoch: int = 7) -> dict[str, Any]:
    return attestation_body(epoch, chain_id=CHAIN_ID, contract_address=CONTRACT, items=items)


# ---------------------------------------------------------------- wire format


def test_body_round_trips_and_the_signature_recovers() -> None:
    account = _account()
    entries, problems = parse_body(
        _body(_signed(account)), epoch=7, chain_id=CHAIN_ID, contract_address=CONTRACT.lower()
    )
    assert problems == []
    (entry,) = entries
    assert entry.report == REPORT and entry.signer == account.address
    recovered = recover_signer(
        entry.report, entry.signature, chain_id=CHAIN_ID, contract_address=CONTRACT
    )
    assert recovered == account.address


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(epoch=8), "epoch"),
        (lambda b: b.update(chain_id=1), "chain"),
        (lambda b: b.update(contract_address="0x" + "11" * 20), "contract"),
        (lambda b: b.update(attestations="nope"), "attestations list"),
        (lambda b: b.pop("attestations"), "attestations list"),
    ],
)
def test_a_body_for_something_else_is_garbage(
    change: Callable[[dict[str, Any]], Any], message: str
) -> None:
    body = _body(_signed(_account()))
    change(body)
    with pytest.raises(PeerDataError, match=message):
        parse_body(body, epoch=7, chain_id=CHAIN_ID, contract_address=CONTRACT)


def test_not_an_object_is_garbage() -> None:
    with pytest.raises(PeerDataError):
        parse_body([1, 2], epoch=7, chain_id=CHAIN_ID, contract_address=CONTRACT)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(signer="0x123"),
        lambda e: e.update(signature="0x" + "00" * 64),
        lambda e: e.update(signature="ab" * 65),
        lambda e: e.update(signature="0x" + "zz" * 65),
        lambda e: e["report"].update(bits=True),
        lambda e: e["report"].update(bits="0x207fffff"),
        lambda e: e["report"].update(block_hash_hex="AB" * 32),
        lambda e: e["report"].update(extra=1),
        lambda e: e["report"].update(epoch=6),
        lambda e: e["report"].pop("config_version"),  # a contract v1 report
        lambda e: e["report"].update(config_version=True),
        lambda e: e["report"].update(config_version="3"),
        lambda e: e.update(report=None),
    ],
)
def test_a_malformed_entry_is_dropped_with_a_reason(
    mutate: Callable[[dict[str, Any]], Any],
) -> None:
    good, bad = _signed(_account()), _signed(_account())
    body = _body(good, bad)
    mutate(body["attestations"][1])
    entries, problems = parse_body(body, epoch=7, chain_id=CHAIN_ID, contract_address=CONTRACT)
    assert entries == [good]
    assert len(problems) == 1 and problems[0]


# ---------------------------------------------------------------- who submits


def test_signer_set_is_sorted_by_address_value_and_designates_round_robin() -> None:
    addresses = [_account().address for _ in range(3)]
    signer_set = SignerSet.of([a.lower() for a in addresses], 2)
    assert list(signer_set.signers) == sorted(addresses, key=lambda a: int(a, 16))
    assert addresses[0].lower() in signer_set and "0x" + "00" * 20 not in signer_set
    ordered = signer_set.signers
    for epoch in range(7):
        assert signer_set.designated(epoch) == ordered[epoch % 3]
        ranks = [submit_rank(epoch, signer_set, [a]) for a in ordered]
        assert sorted(ranks) == [0, 1, 2]  # every operator has its own turn
        assert ranks[epoch % 3] == 0
        assert ranks[(epoch + 1) % 3] == 1 and ranks[(epoch + 2) % 3] == 2


def test_the_signer_set_carries_the_configuration_version_reports_are_signed_under() -> None:
    """A report under another configuration version is another message: its signature
    recovers to someone else, so a stale signature never counts for the current report."""
    account = _account()
    signer_set = SignerSet.of([account.address], 1, config_version=4)
    assert signer_set.config_version == 4 and SignerSet.of([], 1).config_version == 1
    current = dataclasses.replace(REPORT, config_version=signer_set.config_version)
    stale = account.sign_report(REPORT, chain_id=CHAIN_ID, contract_address=CONTRACT)
    recovered = recover_signer(
        current, stale.signature, chain_id=CHAIN_ID, contract_address=CONTRACT
    )
    assert recovered != account.address


def test_a_node_with_several_keys_takes_its_best_rank_and_outsiders_none() -> None:
    ordered = SignerSet.of([_account().address for _ in range(5)], 3)
    assert submit_rank(2, ordered, [ordered.signers[4], ordered.signers[3]]) == 1
    assert submit_rank(2, ordered, [_account().address]) is None


# ---------------------------------------------------------------- the peer client

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/v1/attestations/{epoch}", handler)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _client(url: str, *, cap: int = 4096) -> PeerClient:
    return PeerClient(
        urls=(url,), timeout_s=0.5, max_response_bytes=cap, backoff_base_s=0.2, backoff_max_s=1.0
    )


async def _fetch(client: PeerClient) -> list[SignedReport]:
    return await client.fetch(client.peers[0], 7, chain_id=CHAIN_ID, contract_address=CONTRACT)


async def test_fetch_returns_the_entries_of_a_good_answer(serve: Any) -> None:
    entry = _signed(_account())

    async def good(_request: web.Request) -> web.Response:
        return web.json_response(_body(entry))

    client = _client(await serve(good))
    try:
        assert await _fetch(client) == [entry]
        assert client.peers[0].failures == 0
    finally:
        await client.close()


async def _oversized_declared(_request: web.Request) -> web.Response:
    return web.Response(body=b" " * 10_000, content_type="application/json")


async def _oversized_streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(10):
        await response.write(b" " * 1000)
    await response.write_eof()
    return response


async def _garbage(_request: web.Request) -> web.Response:
    return web.Response(body=b"\xff\xfe<html>", content_type="text/html")


async def _server_error(_request: web.Request) -> web.Response:
    return web.json_response({"error": "boom"}, status=500)


async def _slow(_request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response(_body())


async def _redirect(_request: web.Request) -> web.Response:
    raise web.HTTPFound("http://127.0.0.1:9/elsewhere")


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_oversized_declared, PeerDataError),
        (_oversized_streamed, PeerDataError),
        (_garbage, PeerDataError),
        (_server_error, PeerUnavailable),
        (_slow, PeerUnavailable),
        (_redirect, PeerUnavailable),
    ],
    ids=["oversized-declared", "oversized-streamed", "garbage", "http-500", "slow", "redirect"],
)
async def test_a_bad_peer_fails_fast_and_backs_off(
    serve: Any, handler: Handler, error: type
) -> None:
    client = _client(await serve(handler))
    peer = client.peers[0]
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(error):
            await _fetch(client)
        assert asyncio.get_running_loop().time() - started < 2.0  # the timeout held
        assert peer.failures == 1 and not peer.ready(time.monotonic())  # skipped for now
        first_delay = peer.next_try_at
        with pytest.raises(error):
            await _fetch(client)
        assert peer.failures == 2 and peer.next_try_at > first_delay
    finally:
        await client.close()


async def test_a_peer_that_is_down_backs_off_exponentially_then_recovers(serve: Any) -> None:
    from tests.fixtures.bitcoind import free_port

    port = free_port()
    client = PeerClient(
        urls=(f"http://user:hunter2@127.0.0.1:{port}/",),
        timeout_s=0.5,
        max_response_bytes=4096,
        backoff_base_s=0.2,
        backoff_max_s=0.5,
    )
    peer = client.peers[0]
    try:
        delays = []
        with structlog.testing.capture_logs() as logs:
            for _ in range(4):
                with pytest.raises(PeerUnavailable):
                    await _fetch(client)
                delays.append(peer.next_try_at)
        assert peer.failures == 4
        assert [e["event"] for e in logs] == ["peer_failed"]  # logged once, not four times
        assert "hunter2" not in repr(logs) and logs[0]["peer"] == f"http://127.0.0.1:{port}"

        entry = _signed(_account())

        async def good(_request: web.Request) -> web.Response:
            return web.json_response(_body(entry))

        peer.url = await serve(good)
        with structlog.testing.capture_logs() as logs:
            assert await _fetch(client) == [entry]
        assert peer.failures == 0 and peer.ready(0.0)
        assert [e["event"] for e in logs] == ["peer_recovered"]
    finally:
        await client.close()


# ---------------------------------------------------------------- configuration


def test_peer_settings_are_validated() -> None:
    problems = validate(
        Config(
            peers=PeersConfig(
                urls=("ftp://x", "http://ok:8080"),
                poll_interval_s=0,
                submit_delay_s=-1,
            )
        )
    )
    text = "\n".join(problems)
    assert "peers.urls[0]" in text and "peers.urls[1]" not in text
    assert "peers.poll_interval_s" in text and "peers.submit_delay_s" in text
    assert "[publisher] must be enabled" in text
    assert not validate(
        Config(
            peers=PeersConfig(urls=("http://ok:8080",)),
            publisher=PublisherConfig(enabled=True),
        )
    )
    assert not validate(Config())  # no peers: a single operator, nothing to check
