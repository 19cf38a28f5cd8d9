"""Only keys the contract authorises now sign (issue 12 item 7), on a real anvil.

The publisher holds four signer keys of a 3-of-5 contract. The owner rotates one of
them out on chain (the real timelocked ``scheduleSignerConfig``/``executeSignerConfig``):
the next report is signed by the three still authorised, the removed key is skipped and
logged once, and the report lands. When a second key is rotated out, two authorised keys
are left for a threshold of three: a clear ``TooFewAuthorisedSigners`` and nothing sent,
instead of a transaction that reverts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from structlog.testing import capture_logs

from oracle.config import Config, NetworkConfig, PublisherConfig, Secret
from oracle.errors import NotPublishable, TooFewAuthorisedSigners
from oracle.publish.contract import OracleContract
from oracle.publish.publisher import build_publisher
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
DELAY_S = 3 * 86400


def last_header(epoch: int) -> bytes:
    return mainnet_boundary_headers()[epoch * 2016 - 1]


async def rotate(onchain: OnChain, oracle: OracleContract, signers: Sequence[str]) -> None:
    """The owner's signer change, through the contract's timelock (threshold stays 3)."""
    new = sorted(signers, key=lambda a: int(a, 16))
    await onchain.transact(oracle, "scheduleSignerConfig", new, 3)
    onchain.advance(DELAY_S + 1)
    await onchain.transact(oracle, "executeSignerConfig", new, 3)


async def test_only_keys_the_contract_authorises_now_sign(
    anvil_factory: Callable[..., AnvilNode], test_accounts: ChainAccounts, repository: Repository
) -> None:
    node = anvil_factory()
    onchain = OnChain(node, test_accounts)
    oracle = await onchain.deploy(
        genesis=mainnet_checkpoint(GENESIS), threshold=3, governance_delay_s=DELAY_S
    )
    signers = test_accounts.signers  # five, all authorised at deployment
    paths = test_accounts.keystore_paths
    config = Config(
        network=NetworkConfig(name="mainnet"),
        publisher=PublisherConfig(
            enabled=True,
            rpc_url=node.url,
            chain_id=CHAIN_ID,
            contract_address=oracle.address,
            keystore_files=tuple(str(paths[s.address]) for s in signers[:4]),
            keystore_password=Secret(KEYSTORE_PASSWORD),
            sender_keystore_file=str(paths[test_accounts.outsider.address]),
            receipt_timeout_s=60.0,
        ),
    )
    publisher = await build_publisher(config, repository, poll_interval_s=0.05)
    try:

        async def publish(epoch: int) -> str:
            outcome = await publisher.publish_epoch(epoch, HEADERS[epoch], last_header(epoch))
            assert outcome.status == "confirmed"
            submission = await repository.submission_for_epoch(CHAIN_ID, oracle.address, epoch)
            assert submission is not None
            return ",".join(submission.signers)

        assert await publish(410) == ",".join(s.address.lower() for s in signers[:4])
        removed = signers[0]
        await rotate(onchain, oracle, [s.address for s in signers[1:]])
        with capture_logs() as logs:
            used = [await publish(411), await publish(412)]  # skipped, logged once
        assert used == [",".join(s.address.lower() for s in signers[1:4])] * 2
        skipped = [e for e in logs if e["event"] == "signer_key_not_authorised_skipped"]
        assert [e["signer"] for e in skipped] == [removed.address]

        # A second key rotated out: two authorised keys left for a threshold of three.
        await rotate(onchain, oracle, [s.address for s in signers[2:]])
        sent = await onchain.w3.eth.get_transaction_count(test_accounts.outsider.address)
        with pytest.raises(TooFewAuthorisedSigners) as caught:
            await publisher.publish_epoch(413, HEADERS[413], last_header(413))
        assert isinstance(caught.value, NotPublishable)  # alerted once, not retried in a loop
        message = str(caught.value)
        assert "only 2 signature(s)" in message and "threshold is 3" in message
        assert removed.address in message and signers[1].address in message
        assert await repository.submission_for_epoch(CHAIN_ID, oracle.address, 413) is None
        assert await onchain.w3.eth.get_transaction_count(test_accounts.outsider.address) == sent
        assert await oracle.retarget(413) is None
    finally:
        await publisher.close()
        await onchain.w3.provider.disconnect()  # type: ignore[attr-defined]
