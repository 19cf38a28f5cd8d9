"""``ApiState``: the API's memory, kept current by the daemon. Requests only read it.

Four things live here, each renewed by what changes it; requests only read:

* the data ``Snapshot`` (``oracle.api.snapshot``): built from the repository
  when the API starts, and again after every pipeline event that changed the
  store (``data_changed``, wired to ``Pipeline.on_change`` by
  ``oracle.wiring.build_api``). A burst of changes coalesces into one rebuild;
  a rebuild first asks the store for its ``contents_marker`` (one cheap
  statement) and keeps the current snapshot when nothing changed, so the
  daemon's periodic check costs next to nothing;
* the chain reading behind ``/v1/status`` (``oracle.monitor.chainread.ChainStatus``):
  one per tip, from whatever sources are configured; a new best tip reported
  by the daemon's watcher (``note_tip``) makes it out of date, and the first
  request after that starts the new reading (answered from the previous one
  meanwhile), so nothing is read while nobody asks;
* this node's own signatures (``SignedReports``), reloaded at once when the
  coordinator stores one (``attestations_changed``);
* the rendered ``/metrics`` page, at most once per ``metrics_ttl_s``.

The status body itself depends on the wall clock (``now`` and the times
derived from it), so it is computed at most once per second and tip.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import structlog

from oracle.api.bodies import Body, json_body
from oracle.api.context import ApiError
from oracle.api.snapshot import SignedReports, Snapshot
from oracle.api.views import status_json
from oracle.bitcoin.difficulty import get_network
from oracle.config import Config
from oracle.errors import OracleError
from oracle.monitor.cache import Refreshing
from oracle.monitor.chainread import ChainMoving, ChainStatus, ChainView
from oracle.monitor.health import SourceHealth
from oracle.monitor.metrics import Metrics
from oracle.monitor.status import ChainSnapshot, estimate_next_retarget
from oracle.store.repository import Repository

if TYPE_CHECKING:
    from oracle.api.context import ApiContext

log = structlog.get_logger(__name__)


def signing_of(config: Config) -> tuple[int, str] | None:
    """``(chain_id, contract_address)`` when this node signs reports (``[publisher]``)."""
    publisher = config.publisher
    if publisher.enabled and publisher.contract_address:
        return publisher.chain_id, publisher.contract_address
    return None


class ApiState:
    """The snapshot, the chain status and the metrics page of one API; see the module doc."""

    def __init__(
        self,
        repository: Repository,
        *,
        network: str,
        index_days: Sequence[int] = (14, 28, 84),
        signing: tuple[int, str] | None = None,
        chain: ChainView | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        metrics_ttl_s: float = 1.0,
        status_max_age_s: float = 60.0,
        sources: Callable[[], Sequence[SourceHealth]] | None = None,
    ) -> None:
        """``signing``: ``(chain_id, contract_address)`` when this node signs reports;
        ``sources``: the block sources' health now (shown by ``/v1/status``)."""
        self.repository = repository
        self.network = network
        self.index_days = tuple(index_days)
        self.signing = signing
        self.clock = clock
        self.metrics = metrics
        self.sources = sources
        self._version = 0
        self._holds = 0
        self._pending = False
        # After a reported change requests wait for the new snapshot (a write the
        # pipeline finished is visible to the next request); if the store fails,
        # the last snapshot is served rather than an error.
        self._snapshots: Refreshing[Snapshot] = Refreshing(
            self._build,
            ttl_s=math.inf,
            error_ttl_s=1.0,
            serve_stale_s=math.inf,
            wait_for_load=True,
            name="api-snapshot",
        )
        self.chain_status = (
            ChainStatus(chain, known=self._known_header, max_age_s=status_max_age_s)
            if chain is not None
            else None
        )
        self._metrics_page: Refreshing[Body] = Refreshing(
            self._render_metrics, ttl_s=metrics_ttl_s, name="metrics-page"
        )
        self._status_body: tuple[tuple[object, ...], Body] | None = None
        self._signed: Refreshing[SignedReports] = Refreshing(
            self._load_signed,
            ttl_s=math.inf,
            error_ttl_s=1.0,
            serve_stale_s=math.inf,
            wait_for_load=True,
            name="api-attestations",
        )

    @classmethod
    def for_context(cls, ctx: ApiContext) -> ApiState:
        """The state of an API built without one (tests, tools): everything from ``ctx``."""
        return cls(
            ctx.repository,
            network=ctx.network,
            index_days=ctx.config.service.index_days,
            signing=signing_of(ctx.config),
            chain=ctx.chain,
            metrics=ctx.metrics,
            clock=ctx.clock,
        )

    # -- the data snapshot -----------------------------------------------------------------

    async def snapshot(self) -> Snapshot:
        """The current snapshot; the first call loads it (StoreError when the store is away).

        After a reported change the caller waits for the rebuild (so what the pipeline
        wrote is what the next request sees), except while a pass holds rebuilds
        (``deferring``): then the snapshot from before the pass is served.
        """
        if self._holds:
            current = self._snapshots.peek()
            if current is not None:
                return current
        return await self._snapshots.get()

    def peek(self) -> Snapshot | None:
        """The current snapshot if one is loaded, without waiting."""
        return self._snapshots.peek()

    @property
    def refreshes(self) -> int:
        """How many snapshot builds have started."""
        return self._snapshots.loads

    async def _build(self) -> Snapshot:
        """A new snapshot, or the current one when the store's marker says nothing changed."""
        started = time.perf_counter()
        current = self._snapshots.peek()
        if current is not None:
            marker = await self.repository.contents_marker(self.network)
            if marker == current.marker:
                return current
        contents = await self.repository.read_contents(self.network)
        self._version += 1
        snapshot = Snapshot(contents, index_days=self.index_days, version=self._version)
        log.debug(
            "api_snapshot_built",
            version=snapshot.version,
            epochs=len(contents.retargets),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return snapshot

    def data_changed(self) -> None:
        """The store changed: rebuild now in the background (a burst of calls, one rebuild),
        or when the pass holding rebuilds ends (``deferring``)."""
        self._snapshots.invalidate()
        if self._holds:
            self._pending = True
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule
            asyncio.get_running_loop()
            self._snapshots.refresh_soon()

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        """Hold rebuilds during a pipeline pass; rebuild once when the last hold ends.

        A rebuild reads the whole store and renders it (~0.2 s of one core for the
        mainnet history): the daemon runs it after the pass, so it never delays the
        publication of a retarget. Requests meanwhile get the snapshot from before.
        """
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if not self._holds and self._pending:
                self._pending = False
                self.data_changed()

    async def refresh(self) -> Snapshot:
        """Rebuild now (or join the rebuild in flight) and return the new snapshot."""
        self._snapshots.invalidate()
        return await self._snapshots.refresh()

    async def settled(self) -> Snapshot:
        """The snapshot once every change reported so far is in it (for tests and tools)."""
        while not self._snapshots.is_fresh:
            await self._snapshots.refresh()
        snapshot = self._snapshots.peek()
        assert snapshot is not None
        return snapshot

    def _known_header(self, height: int) -> tuple[int, int] | None:
        snapshot = self._snapshots.peek()
        return snapshot.known_header(height) if snapshot is not None else None

    # -- /v1/attestations ------------------------------------------------------------------

    async def attestations(self) -> SignedReports:
        """This node's own signatures (reloaded at once after ``attestations_changed``)."""
        return await self._signed.get()

    def attestations_changed(self) -> None:
        """This node stored a new signature: reload them now (never held by a pass: the
        peers ask for it while the pass that made it waits for theirs)."""
        self._signed.invalidate()
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._signed.refresh_soon()

    async def _load_signed(self) -> SignedReports:
        if self.signing is None:
            return SignedReports((), None)
        chain_id, contract = self.signing
        return SignedReports(
            await self.repository.contract_attestations(chain_id, contract), self.signing
        )

    # -- /v1/status ------------------------------------------------------------------------

    def note_tip(self, height: int, block_hash_hex: str) -> None:
        """The daemon's best tip (from the watcher): a new tip makes the chain reading out of
        date; the next ``/v1/status`` request starts the new one."""
        if self.chain_status is not None:
            self.chain_status.note_tip(height, block_hash_hex)

    async def status(self) -> Body:
        """``/v1/status`` from the last chain reading and the snapshot, for this second."""
        if self.chain_status is None:
            raise ApiError(503, "chain_unavailable", "this oracle has no chain connection")
        snapshot = await self.snapshot()
        try:
            reading = await self.chain_status.reading()
        except ChainMoving as exc:
            raise ApiError(503, "chain_moving", str(exc)) from exc
        except OracleError as exc:
            log.warning("status_chain_read_failed", error=type(exc).__name__)
            raise ApiError(
                503, "chain_unavailable", f"cannot read the chain: {type(exc).__name__}"
            ) from exc
        now = int(self.clock())
        health = tuple(self.sources()) if self.sources is not None else ()
        key = (reading, now, snapshot.version, health)
        cached = self._status_body
        if cached is not None and cached[0] == key:
            return cached[1]
        body = self._render_status(reading, now, snapshot, health)
        self._status_body = (key, body)
        return body

    def _render_status(
        self,
        reading: ChainSnapshot,
        now: int,
        snapshot: Snapshot,
        health: Sequence[SourceHealth] = (),
    ) -> Body:
        estimate = estimate_next_retarget(get_network(self.network), reading, now=now)
        return json_body(status_json(self.network, estimate, snapshot.latest, health))

    # -- /metrics --------------------------------------------------------------------------

    async def metrics_page(self) -> Body:
        """The Prometheus page, rendered at most once per ``metrics_ttl_s``."""
        return await self._metrics_page.get()

    async def _render_metrics(self) -> Body:
        if self.metrics is None:
            raise ApiError(503, "metrics_unavailable", "this API has no metrics registry")
        data, content_type = self.metrics.render()
        return Body(data, content_type)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the first snapshot and start the first chain reading (failures are logged:
        requests retry them)."""
        try:
            await self.snapshot()
            await self.attestations()
        except Exception as exc:
            log.warning("api_snapshot_not_loaded", error=f"{type(exc).__name__}: {exc}")
        if self.chain_status is not None:
            self.chain_status.start()

    async def close(self) -> None:
        """Cancel background work (at shutdown)."""
        await self._snapshots.close()
        await self._signed.close()
        await self._metrics_page.close()
        if self.chain_status is not None:
            await self.chain_status.close()
