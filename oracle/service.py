"""``bme-oracle run``: the long-running service (its components come from ``oracle.wiring``).

One ``asyncio.TaskGroup`` owns the watcher loop, the scheduler and the API
server. Every new block from any source triggers one pipeline pass for the
current and any missed epochs; APScheduler runs the periodic jobs (publication
retries, on-chain read-back, stale-source detection, health pruning). A pass
runs under one lock, so a scheduled job and a block event never interleave.
The API answers from memory (``oracle.api.state``): the pipeline reports each
change of the store to it, this loop each new best tip, and a scheduled job
rebuilds it once a minute for writes from outside the pipeline (peers'
conflicting signatures, another process on the same database).

The EVM side runs in a task of its own (``oracle.publish.driver``): it connects
to the chain (the daemon starts, serves the API, observes and agrees while the
chain's RPC is down), reconciles, and publishes outside the pass lock, one
publication pass after each pipeline pass, so a stuck transaction delays
neither the observation of new epochs nor the shutdown.

SIGTERM/SIGINT set the stop event, which is honoured at any point: during
start-up, while a transaction waits for its receipt, during a pass. The
publication task is cancelled at once (a submission in flight is stored and
resumed by ``reconcile`` at the next start), no new pass starts, the pass in
flight may finish within ``service.shutdown_timeout_s`` (then it is cancelled —
every step is idempotent, so an abandoned pass is simply redone at the next
start), connections are closed, and the process exits 0.

Block feeds are supervised by ``oracle.monitor.instrument``: a feed that dies
is restarted with backoff; while no feed runs ``/health`` answers 503, and a
feed that keeps dying ends the service with ``FeedFailed`` (non-zero exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from oracle.config import Config
from oracle.errors import FeedFailed, OracleError, SourceError
from oracle.publish.driver import PublicationDriver
from oracle.publish.publisher import Publisher
from oracle.publish.senderlock import DaemonLocks
from oracle.sources.types import HeaderSource
from oracle.store.repository import Repository
from oracle.store.states import RetargetStatus
from oracle.wiring import Components, build_api, build_components

log = structlog.get_logger(__name__)

#: The API's snapshot is rebuilt at least this often (on top of every pipeline change).
API_REFRESH_S = 60.0


@dataclass
class Service:
    """``run``: the ``oracle.wiring`` components driven by new blocks, the scheduler, the API."""

    config: Config
    extra_sources: list[HeaderSource] = field(default_factory=list)
    on_ready: Callable[[Service], Awaitable[None]] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    pass_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    components: Components | None = None
    #: one daemon per database and per sender key (issue 12 item 7)
    locks: DaemonLocks | None = None
    api_url: str | None = None
    #: the EVM side's task (``open`` builds it when publishing is enabled)
    driver: PublicationDriver | None = None
    #: why the service stopped processing (``/health`` says it), None while it runs
    failure: str | None = None
    #: the best tip as of the last finished pass (what publication counts confirmations to)
    _settled_height: int | None = None
    _runner: web.AppRunner | None = None

    @property
    def parts(self) -> Components:
        """The running components (``open`` builds them)."""
        if self.components is None:
            raise RuntimeError("the service is not open")
        return self.components

    @property
    def repository(self) -> Repository:
        return self.parts.repository

    @property
    def publisher(self) -> Publisher | None:
        return self.parts.publisher

    @property
    def best_height(self) -> int | None:
        return self.parts.watcher.best_height

    # -- start-up --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to everything but the EVM chain; fail fast with a clear error when
        something is wrong. The chain is the publication task's (``PublicationDriver``)."""
        self.locks = await DaemonLocks.acquire(self.config, stop=self.stop_event)  # item 7
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise

    async def _open(self) -> None:
        self.components = await build_components(
            self.config,
            extra_sources=self.extra_sources,
            publish=self.config.publisher.enabled,
            check_chain=False,
        )
        parts = self.components
        if parts.publisher is not None:
            assert self.locks is not None  # issue 12 item 7: one process per sender key
            self.locks.hold_sender(parts.publisher.manager.sender.address)
            self.driver = PublicationDriver(
                publisher=parts.publisher,
                pipeline=parts.pipeline,
                monitor=parts.monitor,
                best_height=lambda: self._settled_height,
                holding=self._api_held,
            )

    def liveness(self) -> str | None:
        """None while blocks can be processed; else why not (``/health`` answers 503)."""
        if self.failure is not None:
            return self.failure
        sources = self.parts.sources
        if sources and all(s.state.feed_down for s in sources):
            return "no block feed is running: " + "; ".join(
                f"{s.name}: {s.state.feed_down}" for s in sources
            )
        return None

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.components is not None:
            await self.components.close()
        if self.locks is not None:  # issue 12 item 7
            await self.locks.release()

    # -- the passes ------------------------------------------------------------------------

    async def _watch(self) -> None:
        """New blocks from every source -> one pass per burst of tips.

        Each pass lets the watcher observe pending epochs and re-check reorgs and
        stores what it found; then the publication task is asked to publish
        whatever has become confirmed, even when the round observed nothing new
        (confirmations accrue with blocks, not with events). The watcher's tip
        loop raises when a block feed is given up, which ends the service with
        an error.
        """
        parts = self.parts
        async with self.pass_lock:
            await self._refill_proofs()
        async for tips in parts.watcher.tip_batches():
            async with self.pass_lock:
                with self._api_held():
                    for event in await parts.watcher.handle_tips(tips):
                        await parts.pipeline.handle(event)
                # The store now holds what the watcher saw up to this tip (a reorg's new
                # block included): publication counts confirmations from here, never from
                # a tip whose pass is still running.
                self._settled_height = parts.watcher.best_height
            if self.driver is not None:
                self.driver.request()  # publication runs in its own task, outside the lock
            effective = parts.watcher.effective_tip()
            if parts.api is not None and tips and effective is not None:
                # After the pass: its reads of the sources go first (public APIs are
                # rate limited), the status reading next. The effective (quorum-th
                # highest) tip, never one source's claim alone.
                parts.api.note_tip(effective.height, effective.block_hash_hex)
            if self.stop_event.is_set():
                return

    async def _refill_proofs(self, *, recent: int = 16) -> None:
        """Observe once more, at start, the agreed and unpublished epochs stored without the
        proof's 2016e-1 header (agreed by the [1/4, 4] bound, or before the release that
        stores it): an answer verified by the retarget rule fills it in. The most recent
        ``recent`` epochs; the genesis epoch 0 has no such header."""
        parts = self.parts
        if parts.publisher is None:
            return
        network = self.config.network.name
        agreed = await parts.repository.epochs_with_status(network, RetargetStatus.AGREED)
        for epoch in agreed[-recent:]:
            record = await parts.repository.get_retarget(network, epoch)
            if epoch == 0 or record is None or record.last_header is not None:
                continue
            log.info("proof_header_refill", epoch=epoch)
            try:
                await parts.pipeline.on_observed(await parts.watcher.observe(epoch))
            except OracleError as exc:  # the regular passes carry on; this was a bonus
                log.warning("proof_header_refill_failed", epoch=epoch, error=str(exc))

    def _api_held(self) -> contextlib.AbstractContextManager[None]:
        """While a pass runs, the API keeps its snapshot and rebuilds once afterwards."""
        api = self.parts.api
        return api.deferring() if api is not None else contextlib.nullcontext()

    async def publish_pending(self) -> None:
        """Scheduled: retry publication (e.g. after the EVM node was down)."""
        if self.driver is not None and not self.stop_event.is_set():
            self.driver.request()

    async def check_epochs(self) -> None:
        """Scheduled: alert on epochs late for publication, agreed or not."""
        if not self.stop_event.is_set():
            await self.parts.monitor.check_publication(
                self.config.network.name, agreed=self.driver is not None
            )

    async def recheck_publications(self) -> None:
        """Scheduled (issue 12 item 7): send again a confirmed publication that an EVM reorg
        dropped (``oracle.publish.reorgs``)."""
        publisher = self.parts.publisher
        if publisher is None or self.driver is None or self.stop_event.is_set():
            return
        if not self.driver.connected:
            return  # the driver reconnects and reconciles first
        async with self.driver.sending:  # one sender of transactions at a time (nonces)
            await publisher.manager.reorgs.recheck()

    async def poll_peers(self) -> None:
        """Scheduled with ``[peers]``: collect other operators' signatures; publish when due."""
        coordinated = self.parts.coordinated
        if coordinated is None or self.stop_event.is_set():
            return
        if await coordinated.poll_peers() and self.driver is not None:
            self.driver.request()

    async def prune_health(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=self.config.monitor.health_retention_days)
        removed = await self.parts.repository.prune_health(cutoff)
        log.info("health_pruned", removed=removed)

    async def check_sources(self) -> None:
        """Scheduled: alert on sources that are stale or failing."""
        await self.parts.monitor.check_sources(self.parts.sources)

    async def poll_tips(self) -> None:
        """Scheduled fallback: ask every source for its tip (feeds health and lag)."""
        for source in self.parts.sources:
            with contextlib.suppress(SourceError):
                await source.tip()

    async def refresh_api(self) -> None:
        """Scheduled: rebuild the API's snapshot (writes the pipeline did not report)."""
        if self.parts.api is not None:
            self.parts.api.data_changed()
            self.parts.api.attestations_changed()

    async def readback(self) -> None:
        """Scheduled: compare what the contract holds with the database; check the balance
        (once the publication task reached the chain)."""
        if self.driver is not None and self.driver.connected:
            await self.parts.monitor.readback(self.config.network.name)

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the stop event; return the process exit status."""
        if not await self._until_stopped(self.open()):
            await self.close()
            log.info("service_stopped", during="start-up")
            return 0
        scheduler = AsyncIOScheduler(timezone=UTC)
        monitor_cfg = self.config.monitor
        for job, seconds in (
            (self.publish_pending, 15.0),
            (self.recheck_publications, 15.0),  # issue 12 item 7
            (self.check_epochs, min(15.0, max(1.0, monitor_cfg.publication_late_s / 4))),
            (self.check_sources, 60.0),
            (self.poll_tips, max(self.config.bitcoind.poll_interval_s, 5.0)),
            (self.readback, monitor_cfg.readback_interval_s),
            (self.prune_health, 3600.0),
            (self.refresh_api, API_REFRESH_S),
            *(
                [(self.poll_peers, self.config.peers.poll_interval_s)]
                if self.config.peers.urls
                else []
            ),
        ):
            scheduler.add_job(
                job,
                "interval",
                seconds=seconds,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        publishing: asyncio.Task[None] | None = None
        try:
            if self.config.api.enabled:
                await self._start_api()
            scheduler.start()
            if self.on_ready is not None:
                await self.on_ready(self)
            log.info(
                "service_started",
                network=self.config.network.name,
                api=self.api_url,
                sources=[s.name for s in self.parts.sources],
            )
            if self.driver is not None:
                publishing = asyncio.create_task(self.driver.run(), name="publish")
            watch = asyncio.create_task(self._watch(), name="watch")
            stop = asyncio.create_task(self.stop_event.wait(), name="stop")
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            await _cancel(publishing)  # resumable: reconcile finishes it at the next start
            if watch in done:
                self._crashed(watch)
            await self._drain(watch)
            if self.locks is not None:  # issue 12 item 7: another daemon took the database
                self.locks.raise_if_lost()
            return 0
        finally:
            await _cancel(publishing)
            scheduler.shutdown(wait=False)
            await self.close()
            log.info("service_stopped")

    async def _until_stopped(self, work: Awaitable[None]) -> bool:
        """Run ``work`` unless the stop event comes first (then cancel it); True if it ran."""
        task = asyncio.ensure_future(work)
        stop = asyncio.create_task(self.stop_event.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task.done():
            task.result()
            return True
        await _cancel(task)
        return False

    def _crashed(self, watch: asyncio.Task[None]) -> None:
        """A watcher that raised is a crash of the service: mark it failed (``/health``)
        and raise (``FeedFailed`` itself when a block feed was given up)."""
        exc = watch.exception()
        if exc is None:  # it returned: the stop event came during its pass
            return
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, FeedFailed):
            cause = cause.__cause__
        self.failure = str(cause or exc)
        log.error("service_failed", error=self.failure)
        raise cause if isinstance(cause, FeedFailed) else exc

    async def _drain(self, watch: asyncio.Task[None]) -> None:
        """Let the pass in flight finish within the shutdown timeout, then cancel."""
        timeout = self.config.service.shutdown_timeout_s
        try:
            async with asyncio.timeout(timeout):
                async with self.pass_lock:
                    watch.cancel()
        except TimeoutError:
            log.warning("shutdown_abandoned_pass", timeout_s=timeout)
            watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch

    async def _start_api(self) -> None:
        app = build_api(self.parts, liveness=self.liveness)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.api.host, self.config.api.port)
        await site.start()
        sockets = self._runner.addresses
        host, port = sockets[0][:2] if sockets else (self.config.api.host, self.config.api.port)
        self.api_url = f"http://{host}:{port}"


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT -> orderly shutdown."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


async def _cancel(task: asyncio.Future[None] | None) -> None:
    """Cancel ``task`` and wait until it has ended (its own errors were logged)."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run_service(config: Config) -> int:
    service = Service(config)
    install_signal_handlers(service.stop_event)
    return await service.run()
