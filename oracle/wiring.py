"""The one place the oracle's components are built: for ``run``, ``replay`` and ``dev``.

``build_components`` turns a ``Config`` into one typed value (``Components``):
the repository, the monitor hub, the instrumented sources, the watcher seeded
from the store, the publisher (plain, or coordinated with peers when
``[peers] urls`` is set) and the pipeline that joins them. The drivers only
differ in what they do with it: ``oracle.service`` runs it on new blocks with
the API (``build_api``) and the scheduler, ``oracle.replay`` runs it over a
range of historical epochs, and ``oracle.devstack`` runs the service against a
local regtest + anvil. Components receive their dependencies here, in
``__init__``; none of them reads configuration or reaches into another's state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from oracle.agreement.watcher import RetargetWatcher
from oracle.api.app import build_app
from oracle.api.context import ApiContext
from oracle.api.state import ApiState, signing_of
from oracle.bitcoin.difficulty import get_network
from oracle.config import Config
from oracle.errors import OracleError
from oracle.monitor.chainread import SourceChainView
from oracle.monitor.health import CachedProbe, ReadinessReport, SourceHealth, gather_readiness
from oracle.monitor.hub import MonitorHub
from oracle.monitor.instrument import InstrumentedSource
from oracle.peers.client import PeerClient
from oracle.peers.coordinator import ConflictSink, CoordinatedPublisher, Coordinator
from oracle.pipeline import Pipeline, seed_watcher
from oracle.publish.publisher import Publisher
from oracle.publish.publisher import build_publisher as build_single_publisher
from oracle.sources.factory import build_sources
from oracle.sources.types import HeaderSource
from oracle.store.repository import Repository, open_repository


@dataclass
class Components:
    """Everything one running oracle is made of, built once by ``build_components``."""

    config: Config
    repository: Repository
    monitor: MonitorHub
    sources: list[InstrumentedSource]
    watcher: RetargetWatcher
    pipeline: Pipeline
    publisher: Publisher | None
    #: the read API's memory, once ``build_api`` built it
    api: ApiState | None = None

    @property
    def coordinated(self) -> CoordinatedPublisher | None:
        """The publisher when it exchanges signatures with peers (``[peers] urls``)."""
        return self.publisher if isinstance(self.publisher, CoordinatedPublisher) else None

    async def close(self) -> None:
        """Close in reverse order of building; one failing close does not skip the others."""
        for source in self.sources:
            with contextlib.suppress(Exception):
                await source.close()
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await self.publisher.close()
        with contextlib.suppress(Exception):
            await self.monitor.close()
        await self.repository.close()


async def build_components(
    config: Config,
    *,
    sources: Sequence[HeaderSource] | None = None,
    extra_sources: Sequence[HeaderSource] = (),
    quorum: int | None = None,
    publish: bool,
    check_chain: bool = True,
    check_schema: bool = False,
    record_health: bool = True,
) -> Components:
    """Connect everything for one oracle; on failure, close what was opened and re-raise.

    ``sources`` replaces the configured ones (replay's bundled checkpoints);
    ``extra_sources`` are added to them (tests and benchmarks with more nodes).
    ``quorum`` overrides ``crosscheck.quorum``. With ``publish`` the publisher
    is built and, with ``check_chain`` (the default), checked against the chain
    (chain id, contract code); the daemon passes ``check_chain=False`` and checks
    from its publication task, so an EVM node that is down does not stop it.
    ``record_health=False`` keeps source calls out of the health table and the
    monitor's live judgements (source verdicts, late epochs): replay reads
    history, not the sources' live health.
    """
    network = get_network(config.network.name)
    repository = await open_repository(config.database.url, config.database)
    opened: list[HeaderSource] = []
    monitor: MonitorHub | None = None
    publisher: Publisher | None = None
    try:
        if check_schema:
            await repository.check_schema()
        monitor = MonitorHub(config, repository=repository)
        raw = [*(build_sources(config) if sources is None else sources), *extra_sources]
        opened = list(raw)
        if not raw:
            raise OracleError("no block sources are configured ([bitcoind] or [[sources]])")
        on_call = monitor.source_call if record_health else _ignore_call
        instrumented = [InstrumentedSource(s, on_call) for s in raw]
        monitor.sources, monitor.live = instrumented, record_health
        history = await repository.agreed_history(config.network.name)
        watcher = RetargetWatcher(
            instrumented,
            network,
            quorum=config.crosscheck.quorum if quorum is None else quorum,
            start_epoch=(history[-1].epoch + 1) if history else None,
            use_checkpoints=config.crosscheck.use_checkpoints,
        )
        seed_watcher(watcher, history)
        if publish:
            publisher = await build_publisher(
                config, repository, watchdog=monitor.watchdog, check_chain=check_chain
            )
            monitor.publisher = publisher
            publisher.manager.nonces.alerts = monitor.alerter  # issue 12 item 7
        pipeline = Pipeline(
            network=config.network.name,
            repository=repository,
            notifier=monitor,
            confirmations=config.crosscheck.confirmations,
            index_days=config.service.index_days,
            publisher=publisher,
            use_checkpoints=config.crosscheck.use_checkpoints,
        )
    except BaseException:
        for source in opened:
            with contextlib.suppress(Exception):
                await source.close()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        if monitor is not None:
            with contextlib.suppress(Exception):
                await monitor.close()
        await repository.close()
        raise
    return Components(
        config=config,
        repository=repository,
        monitor=monitor,
        sources=instrumented,
        watcher=watcher,
        pipeline=pipeline,
        publisher=publisher,
    )


async def build_publisher(
    config: Config,
    repository: Repository,
    *,
    watchdog: ConflictSink | None = None,
    **options: Any,
) -> Publisher:
    """The daemon's publisher; coordinated with peers when ``peers.urls`` is set.

    Without peers it is the plain ``Publisher``: a single operator holding
    several keys. With peers it exchanges signatures with the other operators'
    nodes and submits only in its turn; ``watchdog`` receives conflicting peer
    signatures (``Watchdog.peer_conflict``). ``options`` go to the transaction
    manager (tests use them for fee and timing policies).
    """
    peers = config.peers
    if not peers.urls:
        return await build_single_publisher(config, repository, **options)
    coordinator = Coordinator(
        network=config.network.name,
        repository=repository,
        client=PeerClient(
            urls=peers.urls,
            timeout_s=peers.timeout_s,
            max_response_bytes=peers.max_response_bytes,
            backoff_base_s=peers.poll_interval_s,
        ),
        submit_delay_s=peers.submit_delay_s,
        poll_wait_s=peers.poll_interval_s,
        watchdog=watchdog,
    )
    try:
        base = await build_single_publisher(
            config, repository, collect_signatures=coordinator.collected, **options
        )
    except BaseException:
        await coordinator.client.close()
        raise
    return CoordinatedPublisher.wrap(base, coordinator)


#: ``/ready`` probes the database and the chain at most this often, however often it is asked.
READY_PROBE_TTL_S = 10.0


def build_api(
    components: Components, *, liveness: Callable[[], str | None] | None = None
) -> web.Application:
    """The read API of a running oracle: its in-memory state, readiness facts and chain view.

    The state (``oracle.api.state.ApiState``) answers every ``/v1`` request from
    memory: the pipeline reports each change of the store to it
    (``Pipeline.on_change``), the coordinator each signature it made
    (``Coordinator.on_signed``), the service each new best tip (``note_tip``).
    ``/v1/status`` reads the chain through any configured source, bitcoind or
    public APIs alone; ``/ready`` probes the database and the chain at most once
    per ``READY_PROBE_TTL_S``. ``liveness`` says why the node processes no blocks
    (``/health`` answers 503 then); a source whose answers fail verification is
    unhealthy in ``/ready`` and ``/v1/status`` alike.
    """
    config = components.config
    sources = components.sources

    def verdicts() -> list[SourceHealth]:
        now, stale_after_s = time.time(), config.monitor.source_stale_after_s
        return [s.state.verdict(now=now, stale_after_s=stale_after_s) for s in sources]

    state = ApiState(
        components.repository,
        network=config.network.name,
        index_days=config.service.index_days,
        signing=signing_of(config),
        chain=SourceChainView(sources),
        metrics=components.monitor.metrics,
        sources=verdicts,
    )
    components.api = state
    components.pipeline.on_change = state.data_changed
    if components.coordinated is not None:
        components.coordinated.coordinator.on_signed = state.attestations_changed
    publisher = components.publisher
    ping_database = CachedProbe(
        components.repository.ping, ttl_s=READY_PROBE_TTL_S, name="ready-database"
    )
    reach_chain = CachedProbe(
        publisher.ping if publisher is not None else sources[0].tip,
        ttl_s=READY_PROBE_TTL_S,
        name="ready-chain",
    )

    async def readiness() -> ReadinessReport:
        return await gather_readiness(
            ping_database=ping_database,
            reach_chain=reach_chain,
            sources=verdicts(),
            quorum=config.crosscheck.quorum,
        )

    context = ApiContext(
        repository=components.repository,
        config=config,
        metrics=components.monitor.metrics,
        network=config.network.name,
        readiness=readiness,
        chain=state.chain_status.chain if state.chain_status is not None else None,
        state=state,
        liveness=liveness,
    )
    app = build_app(context)

    async def close_probes(_app: web.Application) -> None:
        await ping_database.close()
        await reach_chain.close()

    app.on_cleanup.append(close_probes)
    return app


async def _ignore_call(source: str, latency_ms: float, ok: bool, kind: str | None) -> None:
    """A source-call callback that records nothing."""
