"""The publisher: turn an agreed, stored retarget into a signed report and land it on chain.

Where it sits: the last stage of the pipeline (``pipeline.publish_confirmed``
calls ``publish_epoch``; ``bme-oracle publish --epoch E`` does the same by
hand). It first asks the contract what the epoch needs (``plan.plan_epoch``:
nothing below the genesis or when the block is already there, ``submit`` for
the next epoch, ``replace`` inside the challenge window after a reorg), then
builds the chain-bound proof (the stored headers at 2016e-1 and 2016e,
``anchor.build_proof``) and the EIP-712 ``Report`` under the contract's current
``configVersion``, signs it with this host's operator keys (plus any signatures
collected from other operators), and hands it to the ``TxManager``, which owns
nonces, fees, fee bumps, confirmations and crash recovery. ``reconcile`` runs
on start.

The daemon builds it without touching the chain (``check_chain=False``) and
calls ``check_chain`` from its publication task (``oracle.publish.driver``), so
an EVM node that is down at start holds publication only. "Already on chain"
names the transaction from the contract's events, read from the block the
contract was deployed in (found once by a binary search on ``eth_getCode``) in
chunks of ``LOG_CHUNK_BLOCKS``, newest first, as range-limited providers
require; a lookup that fails is logged and the publication recorded without
its transaction hash.

``build_publisher(config, repository)`` wires it from ``PublisherConfig``:
keystores decrypted with the password from ``ORACLE_PUBLISHER__KEYSTORE_PASSWORD``
or ``keystore_password_file``; the key material stays inside ``KeystoreAccount``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from web3 import AsyncWeb3

from oracle.bitcoin.header import parse_header
from oracle.config import Config, read_secret
from oracle.errors import (
    ChainUnavailable,
    ConfigError,
    InputError,
    ProofUnavailable,
    PublishError,
)
from oracle.publish.anchor import build_proof
from oracle.publish.authorised import AuthorisedKeys
from oracle.publish.contract import OnChainRetarget, OracleContract, connect
from oracle.publish.evmnode import RPC_ERRORS
from oracle.publish.fees import FeePolicy
from oracle.publish.plan import Correction, Plan, correction_outlook, plan_epoch
from oracle.publish.ports import SubmissionStore
from oracle.publish.signing import (
    KeystoreAccount,
    Report,
    ReportSignature,
    load_keystore,
    load_keystores,
    recover_signer,
)
from oracle.publish.txmanager import Outcome, TxManager

log = structlog.get_logger(__name__)

#: Blocks per ``eth_getLogs`` request (public providers refuse wider ranges).
LOG_CHUNK_BLOCKS = 10_000
#: At most this many chunks are read for one lookup (10 million blocks back).
MAX_LOG_CHUNKS = 1_000
#: What a failed "already on chain" lookup may raise (logged; the hash stays unknown).
_LOOKUP_ERRORS: tuple[type[BaseException], ...] = (PublishError, *RPC_ERRORS)

#: Optional source of other operators' signatures for a report (peer exchange).
SignatureSource = Callable[[Report], Awaitable[Sequence[ReportSignature]]]


class Publisher:
    """Signs and submits agreed retargets to one DifficultyOracle."""

    def __init__(
        self,
        *,
        w3: AsyncWeb3[Any],
        oracle: OracleContract,
        manager: TxManager,
        signers: Sequence[KeystoreAccount],
        chain_id: int,
        collect_signatures: SignatureSource | None = None,
        deployment_block: int | None = None,
        log_chunk_blocks: int = LOG_CHUNK_BLOCKS,
    ) -> None:
        self.w3 = w3
        self.oracle = oracle
        self.manager = manager
        self.signers = list(signers)
        self.chain_id = chain_id
        self.contract_address = oracle.address
        self._collect = collect_signatures
        self.authorised = AuthorisedKeys(oracle, self.signers)  # issue 12 item 7
        #: the block the contract was deployed in (found once, see ``deployment_block``)
        self._deployed_at = deployment_block
        self.log_chunk_blocks = log_chunk_blocks

    # -------------------------------------------------------------- lifecycle

    async def ping(self) -> None:
        """Raise PublishError unless the node answers with the configured chain id."""
        try:
            chain_id = await self.w3.eth.chain_id
        except RPC_ERRORS as exc:
            raise ChainUnavailable(f"EVM node unreachable: {type(exc).__name__}") from exc
        if chain_id != self.chain_id:
            raise PublishError(f"EVM node is on chain {chain_id}, configured {self.chain_id}")

    async def check_chain(self) -> None:
        """Raise PublishError unless the node answers with the configured chain id and holds
        the contract's code."""
        await self.ping()
        try:
            code = await self.w3.eth.get_code(self.oracle.address)
        except RPC_ERRORS as exc:
            raise ChainUnavailable(f"EVM node unreachable: {type(exc).__name__}") from exc
        if not code:
            raise PublishError(f"no contract at {self.oracle.address} on chain {self.chain_id}")

    async def live_submissions(self) -> int:
        """How many submissions a previous run left in flight (``reconcile`` settles them)."""
        manager = self.manager
        rows = await manager.store.live_submissions(manager.chain_id, self.oracle.address.lower())
        return len(rows)

    async def reconcile(self) -> list[Outcome]:
        """Settle submissions left live by a previous run (contract state first)."""
        outcomes = await self.manager.reconcile()
        for outcome in outcomes:
            log.info(
                "reconciled", epoch=outcome.epoch, status=outcome.status, tx_hash=outcome.tx_hash
            )
        return outcomes

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    # -------------------------------------------------------------- publishing

    def report_for(self, epoch: int, raw_header: bytes, config_version: int) -> Report:
        """The report of ``epoch`` from its retarget header (the hash is computed here),
        under the contract's signer configuration ``config_version``."""
        return Report.for_epoch(epoch, parse_header(bytes(raw_header)), config_version)

    async def plan(self, epoch: int, raw_header: bytes) -> Plan:
        """What the contract needs for this block of ``epoch`` (``plan.plan_epoch``)."""
        return await plan_epoch(self.oracle, epoch, parse_header(bytes(raw_header)).block_hash_hex)

    async def correction(self, epoch: int, orphaned_hex: str, *, confirmations: int) -> Correction:
        """Can a published block of ``epoch`` that left the best chain still be replaced?"""
        return await correction_outlook(
            self.oracle, epoch, orphaned_hex, confirmations=confirmations
        )

    @staticmethod
    def proof_for(epoch: int, raw_header: bytes, last_header: bytes | None) -> bytes:
        """The 160-byte chain-bound proof; ``ProofUnavailable`` without the 2016e-1 header."""
        if last_header is None:
            raise ProofUnavailable(
                f"epoch {epoch} was agreed without the oracle's own header at height "
                f"{epoch * 2016 - 1} (its bits were checked by the [1/4, 4] bound, or it was "
                "stored before the release that keeps that header), so there is no "
                "chain-bound proof: it is stored and shown, not published"
            )
        try:
            return build_proof(epoch, bytes(last_header), bytes(raw_header))
        except InputError as exc:  # the store checks the link; a mismatch here is a bug
            raise PublishError(str(exc)) from exc

    async def sign(self, report: Report) -> list[ReportSignature]:
        """This host's signatures plus valid collected ones, one per signer, all by signers
        the contract authorises now (``oracle.publish.authorised``); fewer than its threshold
        raise ``TooFewAuthorisedSigners``."""
        authorised, threshold = await self.authorised.read()  # issue 12 item 7
        signatures: dict[str, ReportSignature] = {
            s.address: s.sign_report(
                report, chain_id=self.chain_id, contract_address=self.contract_address
            )
            for s in self.authorised.usable(authorised)
        }
        if self._collect is not None:
            for item in await self._collect(report):
                recovered = recover_signer(
                    report,
                    item.signature,
                    chain_id=self.chain_id,
                    contract_address=self.contract_address,
                )
                if recovered != item.signer:
                    log.warning("peer_signature_invalid", claimed=item.signer, recovered=recovered)
                    continue
                if item.signer in authorised:
                    signatures.setdefault(item.signer, item)
        self.authorised.require(signatures, threshold, report.epoch)  # issue 12 item 7
        return list(signatures.values())

    async def publish(
        self,
        epoch: int,
        raw_header: bytes,
        last_header: bytes | None = None,
        *,
        plan: Plan | None = None,
    ) -> Outcome:
        """Land this block of ``epoch`` as the contract needs it (see ``plan``).

        Returns ``before_genesis`` (nothing to do), ``already_on_chain`` or ``confirmed``
        (``function`` says whether a ``submit`` or a ``replace`` stored it). Raises
        ``PublishDeferred`` while earlier epochs are missing on chain, ``ReanchorRequired``
        when the contract holds another, final block, and ``ProofUnavailable`` when the
        epoch has to be sent but was agreed without its 2016e-1 header.
        """
        retarget = parse_header(bytes(raw_header))
        with structlog.contextvars.bound_contextvars(epoch=epoch, block=retarget.block_hash_hex):
            plan = plan or await self.plan(epoch, raw_header)
            if plan.action == "before_genesis":
                return Outcome(epoch=epoch, status="before_genesis")
            if plan.action == "on_chain":
                return await self.manager.settle(epoch, retarget.block_hash_hex)
            proof = self.proof_for(epoch, raw_header, last_header)
            report = self.report_for(epoch, raw_header, await self.oracle.config_version())
            if plan.action == "replace":
                log.warning(
                    "replacing_on_chain",
                    on_chain=plan.on_chain_hex,
                    window_closes_at=plan.window_closes_at,
                )
            outcome = await self.manager.submit(
                report, await self.sign(report), proof, function=plan.action
            )
            log.info(
                "publish_outcome",
                status=outcome.status,
                function=outcome.function,
                tx_hash=outcome.tx_hash,
            )
            return outcome

    async def publish_epoch(
        self, epoch: int, raw_header: bytes, last_header: bytes | None = None
    ) -> Outcome:
        """The pipeline's entry point: ``publish``, with the hash of the transaction that
        stored the block filled in when it was already on chain (another operator, an
        earlier run), from the contract's ``ReportAccepted``/``EpochReplaced`` events; it
        stays None only if no such event can be found (e.g. a pruned node, or the genesis).
        """
        outcome = await self.publish(epoch, raw_header, last_header)
        if outcome.tx_hash is not None or outcome.status == "before_genesis":
            return outcome
        block = parse_header(bytes(raw_header)).block_hash_hex
        try:
            tx_hash = await self.accepted_tx_hash(epoch, block)
        except _LOOKUP_ERRORS as exc:  # a detail of the record, not a failure
            log.warning(
                "accepted_tx_lookup_failed",
                epoch=epoch,
                block=block,
                error=f"{type(exc).__name__}: {exc}",
            )
            tx_hash = None
        return dataclasses.replace(outcome, tx_hash=tx_hash)

    async def deployment_block(self) -> int:
        """The block the contract was deployed in: found once by a binary search on
        ``eth_getCode`` (about 25 calls on a chain of 20 million blocks), then kept."""
        if self._deployed_at is None:
            address = self.oracle.address
            try:
                earliest = await self.w3.eth.get_block("earliest")
                low, high = int(earliest["number"]), int(await self.w3.eth.block_number)
                if not await self.w3.eth.get_code(address, block_identifier=high):
                    raise PublishError(f"no contract at {address} on chain {self.chain_id}")
                while low < high:
                    middle = (low + high) // 2
                    if await self.w3.eth.get_code(address, block_identifier=middle):
                        high = middle
                    else:
                        low = middle + 1
            except RPC_ERRORS as exc:  # e.g. a node without the historic state
                raise PublishError(
                    f"cannot find the contract's deployment block: {type(exc).__name__}"
                ) from exc
            self._deployed_at = low
            log.info("contract_deployment_block", block=low)
        return self._deployed_at

    async def accepted_tx_hash(self, epoch: int, block_hash_hex: str | None = None) -> str | None:
        """The transaction whose ``ReportAccepted`` (or, for a replacement, ``EpochReplaced``)
        event stored ``block_hash_hex`` (any block, without it) as ``epoch``; the latest.

        Read from the head back to the deployment block in ranges of ``log_chunk_blocks``
        (at most ``MAX_LOG_CHUNKS`` of them), stopping at the first range with a match."""
        start = await self.deployment_block()
        try:
            to_block = int(await self.w3.eth.block_number)
        except RPC_ERRORS as exc:
            raise ChainUnavailable(f"EVM node unreachable: {type(exc).__name__}") from exc
        for _ in range(MAX_LOG_CHUNKS):
            if to_block < start:
                return None
            from_block = max(start, to_block - self.log_chunk_blocks + 1)
            found = await self._accepted_in(epoch, block_hash_hex, from_block, to_block)
            if found:
                tx_hash = max(found, key=lambda item: (item[0], item[1]))[2]
                return tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
            to_block = from_block - 1
        log.warning("accepted_tx_not_found", epoch=epoch, searched_to_block=to_block)
        return None

    async def _accepted_in(
        self, epoch: int, block_hash_hex: str | None, from_block: int, to_block: int
    ) -> list[tuple[int, int, Any]]:
        """(block, log index, tx hash) of the matching events in ``[from_block, to_block]``."""
        found: list[tuple[int, int, Any]] = []
        events = self.oracle.contract.events
        for event, field in (
            (events.ReportAccepted(), "blockHash"),
            (events.EpochReplaced(), "newHash"),
        ):
            try:
                entries = await event.get_logs(
                    from_block=from_block, to_block=to_block, argument_filters={"epoch": epoch}
                )
            except RPC_ERRORS as exc:
                raise PublishError(
                    f"eth_getLogs {from_block}..{to_block} failed: {type(exc).__name__}: {exc}"
                ) from exc
            for entry in entries:
                stored = bytes(entry["args"][field]).hex()
                if block_hash_hex is None or stored == block_hash_hex:
                    found.append(
                        (entry["blockNumber"], entry["logIndex"], entry["transactionHash"])
                    )
        return found

    async def read_back(self, epoch: int) -> OnChainRetarget | None:
        """What the contract holds for ``epoch`` (None if nothing)."""
        return await self.oracle.retarget(epoch)

    async def bme(self, n_days: int, epoch: int) -> int:
        """BME_N(epoch) x 10^18 as computed by the contract."""
        return await self.oracle.bme(n_days, epoch)


def load_publisher_keys(config: Config) -> tuple[KeystoreAccount, list[KeystoreAccount]]:
    """The sender and the operator signer keys named in ``[publisher]``."""
    section = config.publisher
    password = read_secret(
        section.keystore_password, section.keystore_password_file, "publisher.keystore_password"
    )
    problems = []
    if not section.sender_keystore_file:
        problems.append("publisher.sender_keystore_file is required")
    if not section.keystore_files:
        problems.append("publisher.keystore_files needs at least one operator keystore")
    if not password:
        problems.append(
            "publisher keystore password missing: set ORACLE_PUBLISHER__KEYSTORE_PASSWORD "
            "or publisher.keystore_password_file"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    sender = load_keystore(section.sender_keystore_file, password)
    return sender, load_keystores(section.keystore_files, password)


async def build_publisher(
    config: Config,
    repository: SubmissionStore,
    *,
    collect_signatures: SignatureSource | None = None,
    poll_interval_s: float = 1.0,
    check_chain: bool = True,
    **manager_options: Any,
) -> Publisher:
    """Wire a Publisher from configuration; with ``check_chain`` (the default) the node's
    chain id and the contract are checked now, else the caller checks them later
    (``Publisher.check_chain``: the daemon, which must start while the chain is down)."""
    section = config.publisher
    if not section.contract_address:
        raise ConfigError("publisher.contract_address is required to publish")
    sender, signers = load_publisher_keys(config)
    w3 = connect(section.rpc_url)
    oracle = OracleContract(w3, section.contract_address)
    manager = TxManager(
        w3=w3,
        oracle=oracle,
        store=repository,
        sender=sender,
        chain_id=section.chain_id,
        policy=FeePolicy.from_config(section, poll_interval_s=poll_interval_s),
        **manager_options,
    )
    publisher = Publisher(
        w3=w3,
        oracle=oracle,
        manager=manager,
        signers=signers,
        chain_id=section.chain_id,
        collect_signatures=collect_signatures,
    )
    if not check_chain:
        return publisher
    try:
        await publisher.check_chain()
    except BaseException:
        await publisher.close()
        raise
    return publisher
