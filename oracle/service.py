"""``bme-oracle run``: the long-running service and all of its wiring.

One ``asyncio.TaskGroup`` owns the watcher loop, the scheduler and the API
server. Every new block from any source triggers one pipeline pass for the
current and any missed epochs; APScheduler runs the periodic jobs (publication
retries, on-chain read-back, stale-source detection, health pruning). A pass
runs under one lock, so a scheduled job and a block event never interleave.

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
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from oracle.agreement.watcher import RetargetWatcher
from oracle.bitcoin.difficulty import get_network
from oracle.config import Config
from oracle.errors import OracleError, PublishError, SourceError
from oracle.monitor.instrument import InstrumentedSource
from oracle.pipeline import Pipeline, seed_watcher
from oracle.sources.factory import build_sources
from oracle.sources.types import HeaderSource, Tip

log = structlog.get_logger(__name__)


@dataclass
class Service:
    """Everything ``run`` starts, in the order it is started (closed in reverse)."""

    config: Config
    extra_sources: list[HeaderSource] = field(default_factory=list)
    on_ready: Callable[[Service], Awaitable[None]] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    pass_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    repository: Any = None
    sources: list[InstrumentedSource] = field(default_factory=list)
    watcher: RetargetWatcher | None = None
    pipeline: Pipeline | None = None
    monitor: Any = None
    publisher: Any = None
    api_url: str | None = None
    best_height: int | None = None
    _runner: Any = None

    # -- start-up --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect to everything; fail fast with a clear error when something is wrong."""
        from oracle.monitor.hub import build_notifier
        from oracle.store.repository import open_repository

        config = self.config
        network = get_network(config.network.name)
        self.repository = await open_repository(config.database.url, config.database)
        self.monitor = build_notifier(config, repository=self.repository, metrics=None)
        raw_sources = [*build_sources(config), *self.extra_sources]
        if not raw_sources:
            raise OracleError("no block sources are configured ([bitcoind] or [[sources]])")
        self.sources = [InstrumentedSource(s, self.monitor.source_call) for s in raw_sources]
        history = await self.repository.agreed_history(config.network.name)
        self.watcher = RetargetWatcher(
            self.sources,
            network,
            quorum=config.crosscheck.quorum,
            start_epoch=(history[-1].epoch + 1) if history else None,
        )
        seed_watcher(self.watcher, history)
        if config.publisher.enabled:
            from oracle.publishing import build_publisher

            self.publisher = await build_publisher(
                config, self.repository, watchdog=self.monitor.watchdog
            )
            self.monitor.publisher = self.publisher
            await self._reconcile()
        self.pipeline = Pipeline(
            network=config.network.name,
            repository=self.repository,
            notifier=self.monitor,
            confirmations=config.crosscheck.confirmations,
            index_days=config.service.index_days,
            publisher=self.publisher,
            use_checkpoints=config.crosscheck.use_checkpoints,
        )

    async def _reconcile(self) -> None:
        """Settle what a previous run left in flight, before any new submission.

        A submission that cannot be resumed (e.g. the crash came before its
        transaction was stored) is marked abandoned and reported; the pipeline
        then publishes that epoch afresh. Each failure settles one submission,
        so the loop is bounded by their number.
        """
        assert self.publisher is not None
        for _ in range(1000):
            try:
                await self.publisher.reconcile()
                return
            except PublishError as exc:
                log.warning("reconcile_left_for_pipeline", error=str(exc))
        raise PublishError("reconcile did not settle after 1000 rounds")

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for source in self.sources:
            with contextlib.suppress(Exception):
                await source.close()
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await self.publisher.close()
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                await self.monitor.close()
        if self.repository is not None:
            await self.repository.close()

    # -- the passes ------------------------------------------------------------------------

    async def _watch(self) -> None:
        """New blocks from every source -> one pass per burst of tips.

        Each pass lets the watcher observe pending epochs and re-check reorgs,
        stores what it found, and then publishes whatever has become confirmed,
        even when the round observed nothing new (confirmations accrue with
        blocks, not with events).
        """
        assert self.watcher is not None and self.pipeline is not None
        queue: asyncio.Queue[Tip] = asyncio.Queue()
        pumps = [
            asyncio.create_task(self._pump(s, queue), name=f"pump-{s.name}") for s in self.sources
        ]
        try:
            while not self.stop_event.is_set():
                tips = [await queue.get()]
                while not queue.empty():  # coalesce a burst into one pass
                    tips.append(queue.get_nowait())
                async with self.pass_lock:
                    for event in await self.watcher.handle_tips(tips):
                        await self.pipeline.handle(event)
                    self.best_height = self.watcher._best_height
                    if self.best_height is not None:
                        await self.pipeline.publish_confirmed(self.best_height)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    @staticmethod
    async def _pump(source: InstrumentedSource, queue: asyncio.Queue[Tip]) -> None:
        async for tip in source.new_blocks():
            await queue.put(tip)

    async def publish_pending(self) -> None:
        """Scheduled: retry publication (e.g. after the EVM node was down); flag late epochs."""
        if self.pipeline is None or self.best_height is None or self.stop_event.is_set():
            return
        async with self.pass_lock:
            await self.pipeline.publish_confirmed(self.best_height)
        if self.publisher is not None:
            await self.monitor.check_publication(self.config.network.name)

    async def poll_peers(self) -> None:
        """Scheduled with ``[peers]``: collect other operators' signatures; publish when due."""
        poll = getattr(self.publisher, "poll_peers", None)
        if poll is None or self.pipeline is None or self.stop_event.is_set():
            return
        if await poll() and self.best_height is not None:
            async with self.pass_lock:
                await self.pipeline.publish_confirmed(self.best_height)

    async def prune_health(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(days=self.config.monitor.health_retention_days)
        removed = await self.repository.prune_health(cutoff)
        log.info("health_pruned", removed=removed)

    async def check_sources(self) -> None:
        """Scheduled: alert on sources that are stale or failing."""
        await self.monitor.check_sources(self.sources)

    async def poll_tips(self) -> None:
        """Scheduled fallback: ask every source for its tip (feeds health and lag)."""
        for source in self.sources:
            with contextlib.suppress(SourceError):
                await source.tip()

    async def readback(self) -> None:
        """Scheduled: compare what the contract holds with the database; check the balance."""
        await self.monitor.readback(self.config.network.name)

    # -- readiness -------------------------------------------------------------------------

    # -- run -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the stop event; return the process exit status."""
        await self.open()
        scheduler = AsyncIOScheduler(timezone=UTC)
        monitor_cfg = self.config.monitor
        for job, seconds in (
            (self.publish_pending, 15.0),
            (self.check_sources, 60.0),
            (self.poll_tips, max(self.config.bitcoind.poll_interval_s, 5.0)),
            (self.readback, monitor_cfg.readback_interval_s),
            (self.prune_health, 3600.0),
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
                sources=[s.name for s in self.sources],
            )
            watch = asyncio.create_task(self._watch(), name="watch")
            stop = asyncio.create_task(self.stop_event.wait(), name="stop")
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                watch.result()  # a crashed watcher is a crash of the service
            await self._drain(watch)
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
        from aiohttp import web

        from oracle.apiwiring import build_service_app

        app = build_service_app(self)
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


async def run_service(config: Config, **kwargs: Any) -> int:
    service = Service(config, **kwargs)
    install_signal_handlers(service.stop_event)
    return await service.run()
