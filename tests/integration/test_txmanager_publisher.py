"""The Publisher the daemon uses: wired from configuration, local keys plus peer signatures.

Real anvil, real repository (both backends), keys from keystores with the password
from the environment-style ``Secret``. The peer-signature source returns one valid
signature from another operator and one forged claim, which must be ignored. The
contract (v2) starts at a genesis checkpoint: epochs before it are not published,
the next ones go with their chain-bound proof, and an epoch whose 2016e-1 header the
oracle does not hold is refused before anything is signed or sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from oracle.bitcoin.header import parse_header
from oracle.config import Config, NetworkConfig, PublisherConfig, Secret
from oracle.errors import ConfigError, ProofUnavailable
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
    mainnet_boundary_headers,
    mainnet_retarget_headers,
)
from tests.integration.test_txmanager import mainnet_checkpoint

pytestmark = pytest.mark.anvil

HEADERS = mainnet_retarget_headers()
GENESIS = 409


def last_header(epoch: int) -> bytes:
    """The real mainnet header at height 2016e-1."""
    return mainnet_boundary_headers()[epoch * 2016 - 1]


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
    oracle = await onchain.deploy(genesis=mainnet_checkpoint(GENESIS), threshold=3)
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
        report = publisher.report_for(410, HEADERS[410], await oracle.config_version())
        assert report.config_version == 1
        signed = await publisher.sign(report)
        assert sorted(s.signer for s in signed) == sorted(
            s.address for s in test_accounts.signers[:3]
        )
        # before the genesis: nothing to publish; the genesis itself is on chain already
        before = await publisher.publish_epoch(405, HEADERS[405], last_header(405))
        assert (before.status, before.tx_hash) == ("before_genesis", None)
        genesis = await publisher.publish_epoch(GENESIS, HEADERS[GENESIS], None)
        assert (genesis.status, genesis.tx_hash) == ("already_on_chain", None)
        landed = [await publisher.publish_epoch(e, HEADERS[e], last_header(e)) for e in (410, 411)]
        assert [(o.status, o.function) for o in landed] == [("confirmed", "submit")] * 2
        hashes = [o.tx_hash for o in landed]
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
        again = await publisher.publish_epoch(411, HEADERS[411], last_header(411))
        assert (again.status, again.tx_hash) == ("already_on_chain", hashes[1])
        # Without the 2016e-1 header there is no proof: refused, nothing stored or sent.
        with pytest.raises(ProofUnavailable, match="epoch 412 was agreed without"):
            await publisher.publish_epoch(412, HEADERS[412], None)
        assert await repository.submission_for_epoch(CHAIN_ID, oracle.address, 412) is None
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
