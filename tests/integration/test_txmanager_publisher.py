"""The Publisher the daemon uses: wired from configuration, local keys plus peer signatures.

Real anvil, real repository (both backends), keys from keystores with the password
from the environment-style ``Secret``. The peer-signature source returns one valid
signature from another operator and one forged claim, which must be ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from oracle.bitcoin.difficulty import NETWORKS
from oracle.bitcoin.header import parse_header
from oracle.config import Config, NetworkConfig, PublisherConfig, Secret
from oracle.errors import ConfigError
from oracle.index.bme import EpochTarget, bme
from oracle.publish.publisher import build_publisher
from oracle.publish.signing import Report, ReportSignature
from oracle.store.repository import Repository
from tests.fixtures.anvil import (
    CHAIN_ID,
    KEYSTORE_PASSWORD,
    AnvilNode,
    ChainAccounts,
    OnChain,
    mainnet_retarget_headers,
)

pytestmark = pytest.mark.anvil

HEADERS = mainnet_retarget_headers()


def publisher_config(
    node: AnvilNode, accounts: ChainAccounts, contract: str, password: str
) -> Config:
    paths = accounts.keystore_paths
    return Config(
        network=NetworkConfig(name="mainnet"),
        publisher=PublisherConfig(
            enabled=True,
            rpc_url=node.url,
            chain_id=CHAIN_ID,
            contract_address=contract,
            keystore_files=tuple(str(paths[s.address]) for s in accounts.signers[:2]),
            keystore_password=Secret(password),
            sender_keystore_file=str(paths[accounts.outsider.address]),
            replace_after_s=5.0,
            receipt_timeout_s=60.0,
        ),
    )


async def test_publisher_signs_locally_adds_peer_signatures_and_lands_epochs(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory()
    onchain = OnChain(node, test_accounts)
    oracle = await onchain.deploy(pow_limit=NETWORKS["mainnet"].pow_limit, threshold=3)
    peer = test_accounts.signers[2]
    forger = test_accounts.new_owner  # not a signer; claims to be signers[3]

    async def peers(report: Report) -> Sequence[ReportSignature]:
        good = peer.sign_report(report, chain_id=CHAIN_ID, contract_address=oracle.address)
        forged = forger.sign_report(report, chain_id=CHAIN_ID, contract_address=oracle.address)
        return [
            good,
            ReportSignature(signer=test_accounts.signers[3].address, signature=forged.signature),
        ]

    config = publisher_config(node, test_accounts, oracle.address, KEYSTORE_PASSWORD)
    publisher = await build_publisher(
        config, repository, collect_signatures=peers, poll_interval_s=0.05
    )
    try:
        await publisher.ping()
        assert await publisher.reconcile() == []
        report = publisher.report_for(410, HEADERS[410])
        signed = await publisher.sign(report)
        assert sorted(s.signer for s in signed) == sorted(
            s.address for s in test_accounts.signers[:3]
        )
        hashes = [await publisher.publish_epoch(e, HEADERS[e]) for e in (410, 411)]
        assert all(h is not None and h.startswith("0x") for h in hashes)
        for epoch, tx_hash in zip((410, 411), hashes, strict=True):
            receipt = node.call("eth_getTransactionReceipt", tx_hash)
            assert int(receipt["status"], 16) == 1
            assert receipt["from"].lower() == test_accounts.outsider.address.lower()
            stored = await publisher.read_back(epoch)
            assert (
                stored is not None
                and stored.block_hash_hex == parse_header(HEADERS[epoch]).block_hash_hex
            )
        # Already on chain: the same hash again (found from the contract's event), nothing sent.
        assert await publisher.publish_epoch(411, HEADERS[411]) == hashes[1]
        window = [EpochTarget.from_bits(e, parse_header(HEADERS[e]).bits) for e in (410, 411)]
        assert await publisher.bme(28, 411) == bme(28, window).fixed
    finally:
        await publisher.close()
        await onchain.w3.provider.disconnect()


async def test_publisher_configuration_problems_are_reported_together(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory()
    config = publisher_config(node, test_accounts, "0x" + "3" * 40, "")
    with pytest.raises(ConfigError, match="password missing"):
        await build_publisher(config, repository)
    config = publisher_config(node, test_accounts, "0x" + "3" * 40, "wrong")
    with pytest.raises(ConfigError, match="wrong password"):
        await build_publisher(config, repository)
