"""Gather other operators' signatures and decide, deterministically, who submits.

Where it sits: between the pipeline and the publisher when ``[peers] urls``
is configured. ``oracle.wiring.build_publisher`` then returns a
``CoordinatedPublisher``: the same ``Publisher`` (so the service, monitor and
read-back use it unchanged) whose ``publish_epoch`` first asks the
``Coordinator``:

1. Ask the contract what the epoch needs (``Publisher.plan``): only a ``submit``
   or a ``replace`` (the correction path after a reorg) needs signatures. Sign
   the report (under the contract's current ``configVersion``) with this node's
   authorised keys and store the signature (``source = "self"``) — only here,
   only with this node's own chain-bound proof at hand, and ``publish_epoch`` is
   only called for epochs the pipeline stored as agreed by its own quorum and
   header checks, with enough confirmations. The API serves it at
   ``/v1/attestations/{epoch}``.
2. Count valid signatures over exactly this report: ours plus peers' stored
   ones whose signer the contract authorises *now* (short of ``threshold``, the
   peers are asked at once, waiting at most ``INLINE_WAIT_S``).
3. Whose turn is it (``signers.submit_rank``)? Rank 0 submits at once; rank k
   waits ``k x submit_delay_s`` from the moment this node first held the
   threshold, then submits unless the contract has the epoch by then.
4. Not submitting now? If the contract already has this block for the epoch,
   the publisher records it (the contract is the only source of truth for
   "done"); otherwise ``PublishDeferred`` says why and the pipeline retries
   quietly.

``poll()`` runs as a scheduled job: for each agreed epoch this node has
signed, it asks every peer (``client.PeerClient``) in a background task per
peer, so a slow peer never holds up the others or the node. Each answer is
checked entry by entry: the signature must recover to its claimed signer, the
signer must be in the contract's set, and the report must equal ours. A valid
signature over a *different* block for the same epoch, under the current
signer configuration, is a conflict: logged, counted and alerted
(``Watchdog.peer_conflict``), and both signed reports are kept as evidence
(``record_conflicting_attestation`` -> ``/v1/disagreements``). Not conflicts: a
signature under another configuration version (void on chain, made before a
signer change), and one over a block this node itself agreed for the epoch
before a reorg orphaned it (honest peers signed it too; after the reorg they
sign the new block, which goes on chain through ``replace``).
``poll()`` returns True when a publication pass is worth running now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import structlog

from oracle.errors import OracleError, PublishDeferred
from oracle.peers.client import Peer, PeerClient, PeerUnavailable
from oracle.peers.signers import SignerSet, read_signer_set, submit_rank
from oracle.peers.wire import PeerDataError, SignedReport
from oracle.publish.contract import ContractReverted
from oracle.publish.publisher import Publisher
from oracle.publish.signing import Report, ReportSignature, recover_signer
from oracle.publish.txmanager import Outcome
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)

SELF = "self"
#: At most this many unpublished epochs are polled at once (publication is oldest first).
MAX_PENDING_EPOCHS = 8
#: How long a publication pass short of signatures waits for the peers it asks at once.
INLINE_WAIT_S = 0.25
#: How long the contract's signer set is reused before it is read again.
SIGNER_SET_TTL_S = 2.0
#: Refusals that mean another operator's report got in first.
ALREADY_STORED = frozenset({"EpochAlreadyStored", "ReportAlreadyAccepted"})


class ConflictSink(Protocol):
    """Where a conflicting peer signature is reported (``oracle.monitor.watchdog.Watchdog``)."""

    async def peer_conflict(self, peer: str, epoch: int, detail: dict[str, Any]) -> None: ...


class Coordinator:
    """Signs, collects and gates publication for one contract; state lives in the database
    except the moment each epoch first reached the threshold here (a restart waits again)."""

    def __init__(
        self,
        *,
        network: str,
        repository: Any,
        client: PeerClient,
        submit_delay_s: float,
        poll_wait_s: float,
        watchdog: ConflictSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.network = network
        self.repository = repository
        self.client = client
        self.submit_delay_s = submit_delay_s
        self.poll_wait_s = poll_wait_s
        self.watchdog = watchdog
        self.clock = clock
        self._publisher: Publisher | None = None
        self._ready_at: dict[tuple[int, str], float] = {}
        self._conflicts: set[tuple[str, str, Report]] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._unauthorised_warned: set[str] = set()
        self._signer_set: tuple[float, SignerSet] | None = None
        # Signing and recovering EIP-712 signatures costs milliseconds each; remember them.
        self._attested: set[Report] = set()
        self._recovered: dict[tuple[Report, str], str] = {}
        #: Called after this node stored a new signature of its own (the API serves them at
        #: ``/v1/attestations/{epoch}`` from memory; ``oracle.wiring.build_api`` sets it).
        self.on_signed: Callable[[], None] | None = None

    async def signer_set(self) -> SignerSet:
        """The contract's signers and threshold, re-read at most every ``SIGNER_SET_TTL_S``
        (a rotation on chain is seen within that; the contract re-checks at submit)."""
        now = self.clock()
        if self._signer_set is None or now - self._signer_set[0] > SIGNER_SET_TTL_S:
            self._signer_set = (now, await read_signer_set(self.publisher.oracle))
        return self._signer_set[1]

    def bind(self, publisher: Publisher) -> None:
        self._publisher = publisher

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            raise RuntimeError("Coordinator.bind(publisher) was not called")
        return self._publisher

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()

    # -- signatures ------------------------------------------------------------------------

    def _own_authorised(self, signer_set: SignerSet) -> list[Any]:
        accounts = []
        for account in self.publisher.signers:
            if account.address in signer_set:
                accounts.append(account)
            elif account.address not in self._unauthorised_warned:
                self._unauthorised_warned.add(account.address)
                log.warning("own_signer_not_authorised", signer=account.address)
        return accounts

    async def attest(self, report: Report, signer_set: SignerSet) -> None:
        """Sign ``report`` with this node's authorised keys and store the signatures."""
        if report in self._attested:
            return  # signed and stored already by this process
        publisher = self.publisher
        signatures = [
            account.sign_report(
                report, chain_id=publisher.chain_id, contract_address=publisher.contract_address
            )
            for account in self._own_authorised(signer_set)
        ]
        for signature in signatures:
            stored = await self.repository.save_attestation(
                chain_id=publisher.chain_id,
                contract_address=publisher.contract_address,
                epoch=report.epoch,
                signer=signature.signer,
                report=report.as_dict(),
                signature_hex="0x" + signature.signature.hex(),
                source=SELF,
            )
            if stored:
                log.info(
                    "report_signed",
                    epoch=report.epoch,
                    block=report.block_hash_hex,
                    signer=signature.signer,
                )
        if signatures:  # with no authorised key yet, sign once one is authorised
            self._attested.add(report)
            if self.on_signed is not None:
                self.on_signed()  # peers ask for it now, while this pass waits for theirs

    async def peer_signatures(self, report: Report, signer_set: SignerSet) -> list[ReportSignature]:
        """Stored peer signatures over exactly ``report`` by currently authorised signers
        other than this node's own keys, one per signer, ascending by signer."""
        publisher = self.publisher
        own = {account.address for account in publisher.signers}
        wanted = report.as_dict()
        found: dict[str, ReportSignature] = {}
        for record in await self.repository.attestations_for_epoch(
            publisher.chain_id, publisher.contract_address, report.epoch
        ):
            if record.source == SELF or dict(record.report) != wanted:
                continue
            signature = bytes.fromhex(record.signature_hex.removeprefix("0x"))
            signer = self._recover(report, signature)
            if signer in own or signer not in signer_set or signer.lower() != record.signer:
                continue
            found.setdefault(signer, ReportSignature(signer=signer, signature=signature))
        return [found[s] for s in sorted(found, key=lambda a: int(a, 16))]

    def _recover(self, report: Report, signature: bytes) -> str:
        key = (report, signature.hex())
        signer = self._recovered.get(key)
        if signer is None:
            signer = recover_signer(
                report,
                signature,
                chain_id=self.publisher.chain_id,
                contract_address=self.publisher.contract_address,
            )
            if len(self._recovered) > 10_000:  # bounded: peers cannot grow it without end
                self._recovered.clear()
            self._recovered[key] = signer
        return signer

    async def collected(self, report: Report) -> Sequence[ReportSignature]:
        """``Publisher.sign``'s hook: just enough peer signatures to reach the threshold."""
        signer_set = await self.signer_set()
        needed = max(signer_set.threshold - len(self._own_authorised(signer_set)), 0)
        return (await self.peer_signatures(report, signer_set))[:needed]

    # -- the gate --------------------------------------------------------------------------

    async def ready_to_submit(self, epoch: int, raw_header: bytes) -> None:
        """Return when this node should hand the epoch to the publisher now; otherwise raise
        ``PublishDeferred`` saying why (too few signatures, or another operator's turn)."""
        signer_set = await self.signer_set()
        report = self.publisher.report_for(epoch, raw_header, signer_set.config_version)
        await self.attest(report, signer_set)
        held = await self._held(report, signer_set)
        if held < signer_set.threshold:
            # Ask the peers now rather than at the next scheduled poll: when this node is the
            # last to sign, the others' signatures are already there. Slow peers are not
            # waited for beyond INLINE_WAIT_S (their answers are still kept when they come).
            await self._gather([report], signer_set, wait_s=INLINE_WAIT_S)
            held = await self._held(report, signer_set)
        if held >= signer_set.threshold and self._wait_s(report, signer_set) <= 0:
            return
        if await self._on_chain(report):
            return  # on chain already: the publisher records it
        if held < signer_set.threshold:
            raise PublishDeferred(
                f"epoch {epoch}: {held} of {signer_set.threshold} signatures so far"
            )
        raise PublishDeferred(
            f"epoch {epoch}: {signer_set.designated(epoch)} submits first; our turn in "
            f"{self._wait_s(report, signer_set):.1f} s unless the contract has it by then"
        )

    async def _on_chain(self, report: Report) -> bool:
        """Whether the contract holds this report's block for its epoch (another operator
        submitted or replaced it)."""
        stored = await self.publisher.oracle.retarget(report.epoch)
        return stored is not None and stored.block_hash_hex == report.block_hash_hex

    async def _held(self, report: Report, signer_set: SignerSet) -> int:
        """Valid signatures over ``report`` this node holds (its own plus peers')."""
        own = len(self._own_authorised(signer_set))
        return own + len(await self.peer_signatures(report, signer_set))

    def _wait_s(self, report: Report, signer_set: SignerSet) -> float:
        """Seconds until this node's turn to submit (threshold already held)."""
        key = (report.epoch, report.block_hash_hex)
        now = self.clock()
        ready_at = self._ready_at.setdefault(key, now)
        rank = submit_rank(report.epoch, signer_set, (a.address for a in self.publisher.signers))
        if rank is None:
            return float("inf")  # no authorised key here: never submit
        return ready_at + rank * self.submit_delay_s - now

    # -- polling ---------------------------------------------------------------------------

    async def poll(self) -> bool:
        """Scheduled: ask every peer about the epochs we signed and have not published.

        Returns True when a publication pass should run now: the oldest such epoch is on
        chain, or this node holds the threshold and it is its turn."""
        try:
            signer_set = await self.signer_set()
            pending = await self._pending(signer_set)
            if not pending:
                return False
        except OracleError as exc:
            log.warning("peer_poll_skipped", error=str(exc), error_type=type(exc).__name__)
            return False
        await self._gather(pending, signer_set, wait_s=self.poll_wait_s)
        return await self._due(pending[0], signer_set)

    async def _gather(self, pending: list[Report], signer_set: SignerSet, *, wait_s: float) -> None:
        """Ask every peer that is not backing off and not already being asked, each in its
        own task; wait at most ``wait_s`` for them (later answers are processed anyway)."""
        now = self.clock()
        for peer in self.client.peers:
            if peer.url in self._tasks or not peer.ready(now):
                continue
            task = asyncio.create_task(self._poll_peer(peer, pending, signer_set))
            self._tasks[peer.url] = task
            task.add_done_callback(self._forget(peer.url))
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=wait_s)

    def _forget(self, url: str) -> Callable[[asyncio.Task[None]], None]:
        def done(_task: asyncio.Task[None]) -> None:
            self._tasks.pop(url, None)

        return done

    async def _pending(self, signer_set: SignerSet) -> list[Report]:
        """Agreed, unpublished epochs (oldest first) that this node has already signed."""
        publisher = self.publisher
        reports = []
        epochs = await self.repository.epochs_with_status(self.network, RetargetStatus.AGREED)
        for epoch in epochs[:MAX_PENDING_EPOCHS]:
            record = await self.repository.get_retarget(self.network, epoch)
            if record is None or not record.raw_header:
                continue
            report = publisher.report_for(epoch, record.raw_header, signer_set.config_version)
            if report in self._attested:
                reports.append(report)
                continue
            stored = await self.repository.attestations_for_epoch(
                publisher.chain_id, publisher.contract_address, epoch
            )
            if any(r.source == SELF and dict(r.report) == report.as_dict() for r in stored):
                self._attested.add(report)
                reports.append(report)
        return reports

    async def _due(self, report: Report, signer_set: SignerSet) -> bool:
        """Our turn with the threshold held (checked first: no chain read), or on chain."""
        held = await self._held(report, signer_set)
        if held >= signer_set.threshold and self._wait_s(report, signer_set) <= 0:
            return True
        try:
            return await self._on_chain(report)
        except OracleError as exc:
            log.warning("peer_poll_chain_read_failed", error=str(exc))
            return False

    async def _poll_peer(self, peer: Peer, pending: list[Report], signer_set: SignerSet) -> None:
        publisher = self.publisher
        try:
            for ours in pending:
                try:
                    entries = await self.client.fetch(
                        peer,
                        ours.epoch,
                        chain_id=publisher.chain_id,
                        contract_address=publisher.contract_address,
                    )
                except (PeerUnavailable, PeerDataError):
                    return  # logged and backed off by the client
                for entry in entries:
                    await self._consider(peer, ours, entry, signer_set)
        except asyncio.CancelledError:
            raise
        except Exception:  # a background task: log it here, or nobody would
            log.exception("peer_poll_failed", peer=peer.label)

    async def _consider(
        self, peer: Peer, ours: Report, entry: SignedReport, signer_set: SignerSet
    ) -> None:
        """Keep a valid signature over our report; report one over a different report."""
        publisher = self.publisher
        recovered = self._recover(entry.report, entry.signature)
        if recovered != entry.signer:
            log.warning(
                "peer_signature_invalid", peer=peer.label, claimed=entry.signer, recovered=recovered
            )
            return
        if entry.signer not in signer_set:
            log.debug("peer_signer_not_authorised", peer=peer.label, signer=entry.signer)
            return
        if entry.report != ours and await self._not_a_conflict(peer, ours, entry.report):
            return
        if entry.report == ours:
            if await self.repository.save_attestation(
                chain_id=publisher.chain_id,
                contract_address=publisher.contract_address,
                epoch=ours.epoch,
                signer=entry.signer,
                report=ours.as_dict(),
                signature_hex="0x" + entry.signature.hex(),
                source=peer.label,
            ):
                log.info(
                    "peer_signature_collected", peer=peer.label, signer=entry.signer,
                    epoch=ours.epoch,
                )  # fmt: skip
            return
        await self._conflict(peer, ours, entry, signer_set)

    async def _not_a_conflict(self, peer: Peer, ours: Report, theirs: Report) -> bool:
        """A different report that is no evidence of lying: another signer configuration
        (void on chain), or a block this node itself agreed for the epoch before a reorg."""
        if theirs.config_version != ours.config_version:
            log.debug("peer_signature_other_config", peer=peer.label, version=theirs.config_version)
            return True
        record = await self.repository.get_retarget(self.network, ours.epoch)
        orphaned = {
            candidate.block_hash_hex
            for candidate in ((record, *record.others) if record is not None else ())
            if candidate.status == RetargetStatus.ORPHANED and candidate.agreed_at is not None
        }
        if theirs.block_hash_hex in orphaned:
            log.info("peer_signature_orphaned_block", peer=peer.label, block=theirs.block_hash_hex)
            return True
        return False

    async def _conflict(
        self, peer: Peer, ours: Report, entry: SignedReport, signer_set: SignerSet
    ) -> None:
        theirs = entry.report
        key = (peer.label, entry.signer, theirs)
        if key in self._conflicts:
            return
        self._conflicts.add(key)
        publisher = self.publisher
        own_keys = self._own_authorised(signer_set)
        if not own_keys:  # our key was rotated out meanwhile: we no longer vouch for anything
            return
        mine = own_keys[0].sign_report(
            ours, chain_id=publisher.chain_id, contract_address=publisher.contract_address
        )
        disagreement_id = await self.repository.record_conflicting_attestation(
            self.network,
            chain_id=publisher.chain_id,
            contract_address=publisher.contract_address,
            epoch=ours.epoch,
            signer=entry.signer,
            report_a={**ours.as_dict(), "signer": mine.signer},
            signature_a="0x" + mine.signature.hex(),
            report_b={**theirs.as_dict(), "signer": entry.signer},
            signature_b="0x" + entry.signature.hex(),
        )
        detail = {
            "signer": entry.signer,
            "our_report": ours.as_dict(),
            "their_report": theirs.as_dict(),
            "disagreement_id": disagreement_id,
        }
        log.error("peer_conflict", peer=peer.label, epoch=ours.epoch, **detail)
        if self.watchdog is not None:
            await self.watchdog.peer_conflict(peer.label, ours.epoch, detail)


class CoordinatedPublisher(Publisher):
    """A ``Publisher`` that submits only with enough peer signatures and in its turn."""

    coordinator: Coordinator

    @classmethod
    def wrap(cls, base: Publisher, coordinator: Coordinator) -> CoordinatedPublisher:
        publisher = cls(
            w3=base.w3,
            oracle=base.oracle,
            manager=base.manager,
            signers=base.signers,
            chain_id=base.chain_id,
            collect_signatures=coordinator.collected,
        )
        publisher.coordinator = coordinator
        coordinator.bind(publisher)
        return publisher

    async def publish_epoch(
        self, epoch: int, raw_header: bytes, last_header: bytes | None = None
    ) -> Outcome:
        plan = await self.plan(epoch, raw_header)
        if plan.action in ("submit", "replace"):
            self.proof_for(epoch, raw_header, last_header)  # no proof here: never sign it
            await self.coordinator.ready_to_submit(epoch, raw_header)
        try:
            return await super().publish_epoch(epoch, raw_header, last_header)
        except ContractReverted as exc:
            if exc.name not in ALREADY_STORED:
                raise
            # Another operator's transaction got in first; the contract now says done.
            log.info("published_by_another_operator", epoch=epoch)
            return await super().publish_epoch(epoch, raw_header, last_header)

    async def poll_peers(self) -> bool:
        """The service's scheduled peer job (see ``Coordinator.poll``)."""
        return await self.coordinator.poll()

    async def close(self) -> None:
        await self.coordinator.close()
        await super().close()
