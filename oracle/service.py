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

SIGTERM/SIGINT set the stop event: no new pass starts, the pass in flight may
finish within ``service.shutdown_timeout_s`` (then it is cancelled — every step
is idempotent, so an abandoned pass is simply redone at the next start),
connections are closed, and the process exits 0.
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
from oracle.errors import OracleError, PublishError, SourceError
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
        """Connect to everything; fail fast with a clear error when something is wrong."""
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
        )
        if self.components.publisher is not None:
            assert self.locks is not None  # issue 12 item 7: one process per sender key
            self.locks.hold_sender(self.components.publisher.manager.sender.address)
            await self._reconcile(self.components.publisher)

    async def _reconcile(self, publisher: Publisher) -> None:
        """Settle what a previous run left in flight, before any new submission.

        A submission that cannot be resumed (e.g. the crash came before its
        transaction was stored) is marked abandoned and reported; the pipeline
        then publishes that epoch afresh. Each failure settles one submission,
        so the loop is bounded by their number.
        """
        for _ in range(1000):
            try:
                await publisher.reconcile()
                return
            except PublishError as exc:
                log.warning("reconcile_left_for_pipeline", error=str(exc))
        raise PublishError("reconcile did not settle after 1000 rounds")

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

        Each pass lets the watcher observe pending epochs and re-check reorgs,
        stores what it found, and then publishes whatever has become confirmed,
        even when the round observed nothing new (confirmations accrue with
        blocks, not with events). The watcher's tip loop raises when a block
        feed dies, which ends the service with an error.
        """
        parts = self.parts
        async with self.pass_lock:
            await self._refill_proofs()
        async for tips in parts.watcher.tip_batches():
            async with self.pass_lock:
                with self._api_held():
                    for event in await parts.watcher.handle_tips(tips):
                        await parts.pipeline.handle(event)
                    if self.best_height is not None:
                        await parts.pipeline.publish_confirmed(self.best_height)
            if parts.api is not None and tips:
                # After the pass: its reads of the sources go first (public APIs are
                # rate limited), the status reading next.
                best = max(tips, key=lambda tip: tip.height)
                parts.api.note_tip(best.height, best.block_hash_hex)
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
        """Scheduled: retry publication (e.g. after the EVM node was down); flag late epochs."""
        parts = self.parts
        if self.best_height is None or self.stop_event.is_set():
            return
        async with self.pass_lock:
            with self._api_held():
                await parts.pipeline.publish_confirmed(self.best_height)
        if parts.publisher is not None:
            await parts.monitor.check_publication(self.config.network.name)

    async def recheck_publications(self) -> None:
        """Scheduled (issue 12 item 7): send again a confirmed publication that an EVM reorg
        dropped (``oracle.publish.reorgs``)."""
        publisher = self.parts.publisher
        if publisher is None or self.stop_event.is_set():
            return
        async with self.pass_lock:
            await publisher.manager.reorgs.recheck()

    async def poll_peers(self) -> None:
        """Scheduled with ``[peers]``: collect other operators' signatures; publish when due."""
        coordinated = self.parts.coordinated
        if coordinated is None or self.stop_event.is_set():
            return
        if await coordinated.poll_peers() and self.best_height is not None:
            async with self.pass_lock:
                with self._api_held():
                    await self.parts.pipeline.publish_confirmed(self.best_height)

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
        """Scheduled: compare what the contract holds with the database; check the balance."""
        await self.parts.monitor.readback(self.config.network.name)

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the stop event; return the process exit status."""
        await self.open()
        scheduler = AsyncIOScheduler(timezone=UTC)
        monitor_cfg = self.config.monitor
        for job, seconds in (
            (self.publish_pending, 15.0),
            (self.recheck_publications, 15.0),  # issue 12 item 7
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
            watch = asyncio.create_task(self._watch(), name="watch")
            stop = asyncio.create_task(self.stop_event.wait(), name="stop")
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                watch.result()  # a crashed watcher is a crash of the service
            await self._drain(watch)
            if self.locks is not None:  # issue 12 item 7: another daemon took the database
                self.locks.raise_if_lost()
            return 0
        finally:
            scheduler.shutdown(wait=False)
            await self.close()
            log.info("service_stopped")

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
        app = build_api(self.parts)
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


async def run_service(config: Config) -> int:
    service = Service(config)
    install_signal_handlers(service.stop_event)
    return await service.run()
