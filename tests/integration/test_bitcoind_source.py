"""BitcoindSource against the real regtest node: RPC, batches, auth, errors, ZMQ and polling."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

import pytest

from oracle.errors import HeightNotFound, SourceAuthFailed, SourceUnavailable
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.rpc import RpcCredentials
from tests.fixtures.bitcoind import BitcoindNode, free_port

pytestmark = pytest.mark.bitcoind


def make_source(
    node: BitcoindNode,
    *,
    name: str = "core",
    zmq: bool = True,
    poll_interval_s: float = 0.2,
    **kw: object,
) -> BitcoindSource:
    return BitcoindSource(
        name=name,
        url=node.url,
        credentials=RpcCredentials(user=node.user, password=node.password),
        zmq_hashblock=node.zmq_url if zmq else "",
        poll_interval_s=poll_interval_s,
        timeout_s=10,
        **kw,  # type: ignore[arg-type]
    )


async def test_tip_and_batched_headers_match_the_node(bitcoind: BitcoindNode) -> None:
    await asyncio.to_thread(bitcoind.mine, 3)
    source = make_source(bitcoind)
    try:
        tip = await source.tip()
        assert tip.height == bitcoind.height()
        assert tip.block_hash_hex == bitcoind.rpc("getbestblockhash")
        heights = [0, 1, tip.height - 1, tip.height]
        observations = await source.headers_at(heights)
    finally:
        await source.close()
    for observation, height in zip(observations, heights, strict=True):
        assert observation.height == height
        assert observation.block_hash_hex == bitcoind.rpc("getblockhash", height)
        assert observation.header.raw.hex() == bitcoind.rpc(
            "getblockheader", observation.block_hash_hex, False
        )
        assert observation.source == "core" and observation.observed_at.tzinfo is not None


async def test_cookie_and_url_credentials(bitcoind: BitcoindNode) -> None:
    cookie = BitcoindSource(
        name="cookie",
        url=bitcoind.url,
        credentials=RpcCredentials(cookie_file=str(bitcoind.cookie_file)),
    )
    userinfo = f"{quote(bitcoind.user, safe='')}:{quote(bitcoind.password, safe='')}"
    in_url = BitcoindSource(name="url", url=bitcoind.url.replace("http://", f"http://{userinfo}@"))
    try:
        expected = bitcoind.rpc("getbestblockhash")
        assert (await cookie.tip()).block_hash_hex == expected
        assert (await in_url.tip()).block_hash_hex == expected
        assert "***" in repr(in_url) or bitcoind.password not in repr(in_url)
    finally:
        await cookie.close()
        await in_url.close()


async def test_wrong_credentials_are_a_clear_error(bitcoind: BitcoindNode) -> None:
    source = BitcoindSource(
        name="core",
        url=bitcoind.url,
        credentials=RpcCredentials(user=bitcoind.user, password="wrong"),
    )
    missing_cookie = BitcoindSource(
        name="core",
        url=bitcoind.url,
        credentials=RpcCredentials(cookie_file=str(bitcoind.datadir / "no-such-cookie")),
    )
    try:
        with pytest.raises(SourceAuthFailed, match="wrong RPC credentials"):
            await source.tip()
        with pytest.raises(SourceUnavailable, match="is the node running"):
            await missing_cookie.tip()
    finally:
        await source.close()
        await missing_cookie.close()


async def test_unreachable_node() -> None:
    source = BitcoindSource(name="core", url=f"http://u:p@127.0.0.1:{free_port()}", timeout_s=2)
    try:
        with pytest.raises(SourceUnavailable, match="cannot reach") as info:
            await source.header_at(0)
        assert info.value.source == "core"
    finally:
        await source.close()


async def test_height_past_the_tip(bitcoind: BitcoindNode) -> None:
    source = make_source(bitcoind)
    try:
        past = bitcoind.height() + 10
        with pytest.raises(HeightNotFound, match=f"getblockhash\\({past}\\)"):
            await source.headers_at([0, past])
        # the same proxy pool keeps working after an error element
        assert (await source.header_at(0)).block_hash_hex == bitcoind.rpc("getblockhash", 0)
    finally:
        await source.close()


async def next_tip(iterator, timeout_s: float = 10):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(anext(iterator), timeout_s)


async def test_zmq_notification_arrives(bitcoind: BitcoindNode) -> None:
    source = make_source(bitcoind, poll_interval_s=60)  # polling cannot be what sees it
    tips = source.new_blocks()
    try:
        first = await next_tip(tips)
        assert first.height == bitcoind.height()
        (mined,) = await asyncio.to_thread(bitcoind.mine, 1)
        tip = await next_tip(tips)
        assert (tip.height, tip.block_hash_hex) == (first.height + 1, mined)
        assert source.last_notification_at is not None
    finally:
        await tips.aclose()
        await source.close()


@pytest.mark.parametrize("zmq", ["none", "silent"])
async def test_polling_fallback(bitcoind: BitcoindNode, zmq: str) -> None:
    source = make_source(bitcoind, zmq=False, poll_interval_s=0.1)
    if zmq == "silent":  # configured, but nothing publishes there
        source.zmq_hashblock = f"tcp://127.0.0.1:{free_port()}"
    tips = source.new_blocks()
    try:
        first = await next_tip(tips)
        (mined,) = await asyncio.to_thread(bitcoind.mine, 1)
        tip = await next_tip(tips)
        assert (tip.height, tip.block_hash_hex) == (first.height + 1, mined)
        assert source.last_notification_at is None
    finally:
        await tips.aclose()
        await source.close()
