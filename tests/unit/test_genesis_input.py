"""The inputs of ``contract deploy``: networks, durations, genesis files and node genesis."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oracle.bitcoin.header import Header, parse_header
from oracle.commands.chain import duration_s, network_mode, signer_set
from oracle.errors import InputError
from oracle.publish.anchor import mainnet_genesis
from oracle.publish.genesis import (
    REGTEST_GENESIS,
    bundled_genesis,
    checkpoint_from_file,
    genesis_from_node,
)
from oracle.sources.types import Observation, Tip
from tests.fixtures.anvil import mainnet_boundary_headers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("600", 600), ("600s", 600), ("10m", 600), ("12h", 43200), ("3d", 259200)],
)
def test_durations(text: str, seconds: int) -> None:
    assert duration_s(text, "--x", maximum=259200) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("-1", "not a duration"), ("1.5h", "not a duration"), ("", "not a duration"),
     ("4d", "more than the maximum 259200")],
)  # fmt: skip
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        duration_s(text, "--x", maximum=259200)


def test_networks() -> None:
    assert [network_mode(n) for n in ("mainnet", "Testnet4", " regtest")] == [
        "mainnet",
        "testnet4",
        "regtest",
    ]
    with pytest.raises(InputError, match="signet is refused by design"):
        network_mode("signet")
    with pytest.raises(InputError, match="testnet3 is refused by design"):
        network_mode("testnet3")
    with pytest.raises(InputError, match="unknown network"):
        network_mode("main")


def test_signer_sets() -> None:
    a, b = "0x" + "1" * 40, "0x" + "2" * 40
    assert len(signer_set(f"{a}, {b}", 2)) == 2
    for text, threshold, message in [
        (f"{a},{a}", 1, "twice"),
        (f"{a},{b}", 3, "1..2"),
        (f"{a},{b}", 0, "1..2"),
        ("", 1, "no address"),
        ("0x12", 1, "not an address"),
    ]:
        with pytest.raises(InputError, match=message):
            signer_set(text, threshold)


def test_genesis_files(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(json.dumps(mainnet_genesis(300).as_dict()))
    assert checkpoint_from_file(path) == mainnet_genesis(300)
    for content, message in [
        ("[1, 2]", "must hold a JSON object"),
        ("{", "is not JSON"),
        (json.dumps({**mainnet_genesis(3).as_dict(), "seed_bits": []}), "needs the bits of 3"),
        (json.dumps({**mainnet_genesis(0).as_dict(), "bits": "04923456"}), "negative target"),
        (json.dumps({**mainnet_genesis(0).as_dict(), "time": 2**32}), "time 4294967296"),
        (json.dumps({**mainnet_genesis(0).as_dict(), "bits": "xyz"}), "ValueError"),
    ]:
        path.write_text(content)
        with pytest.raises(InputError, match=message):
            checkpoint_from_file(path)
    with pytest.raises(InputError, match="no bundled mainnet retarget header for epoch 9999"):
        bundled_genesis(9999)


class FakeNode:
    """A HeaderSource over a dict of real headers (mainnet data standing in for a chain)."""

    name = "fake"

    def __init__(self, headers: dict[int, bytes], tip: int) -> None:
        self.headers = headers
        self.height = tip

    async def tip(self) -> Tip:
        return Tip(self.name, self.height, "00" * 32, datetime.now(UTC))

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        out = []
        for height in heights:
            header: Header = parse_header(self.headers[height])
            out.append(
                Observation(self.name, height, header.block_hash_hex, header, datetime.now(UTC))
            )
        return out


async def test_genesis_from_a_node() -> None:
    headers = mainnet_boundary_headers()
    node = FakeNode(headers, tip=400 * 2016 + 5)
    # mainnet data is not testnet4: refused by block 0
    with pytest.raises(InputError, match="is not on testnet4"):
        await genesis_from_node(node, "testnet4")
    # default: the latest retarget with 6 confirmations (epoch 400 has 6 at 2016*400+5)
    assert await genesis_from_node(node, "mainnet") == mainnet_genesis(400)
    node.height = 400 * 2016 + 4
    assert await genesis_from_node(node, "mainnet") == mainnet_genesis(399)
    assert await genesis_from_node(node, "mainnet", 2) == mainnet_genesis(2)
    with pytest.raises(InputError, match="past the tip"):
        await genesis_from_node(node, "mainnet", 401)


def test_regtest_genesis_is_the_regtest_genesis_block() -> None:
    assert REGTEST_GENESIS.as_dict() == {
        "epoch": 0,
        "block_hash_hex": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
        "bits": "207fffff",
        "time": 1296688602,
        "seed_bits": [],
    }
