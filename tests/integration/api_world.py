"""The world the API tests run in: real mainnet data in a real store, a chain view over
recorded headers, and the API served on a real TCP port.

Why: the API's promises (exact values, statuses, no 500s) only mean something
over a real repository on Postgres and SQLite holding real retargets. The
``CsvChain`` is the ``ChainView`` protocol implemented over recorded mainnet
headers (tests/data), standing in for the daemon's primary source the way a
recorded block would; it is data, not a mock of our code.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oracle.api import ApiContext, start_api
from oracle.api.state import ApiState
from oracle.config import Config, CrossCheckConfig
from oracle.errors import HeightNotFound
from oracle.index.bme import EpochTarget, bme_series
from oracle.monitor.health import SourceHealth, gather_readiness
from oracle.monitor.metrics import Metrics
from oracle.store.records import ObservationInput
from oracle.store.repository import Repository, open_repository
from tests.integration.test_store_data import retarget_headers, sibling

DATA = Path(__file__).resolve().parents[1] / "data"
NET = "mainnet"
CONTRACT = "0x" + "ab" * 20
CHAIN_ID = 31337
PUBLISHED_EPOCHS = range(400, 412)
#: Index values the "index stage" stored; older ones the API computes on the fly.
STORED_INDEX_FROM_EPOCH = 300
STORED_N_DAYS = (14, 28)
#: A password that must never appear in any answer.
SECRET = "hunter2-never-shown"
#: mempool.space's vector 1: tip 830027 seen at this moment (recovered in test_status.py).
VECTOR_NOW = 1707691381


def _load_headers() -> dict[int, tuple[int, int]]:
    """Height -> (time, bits) from the recorded mainnet headers."""
    headers: dict[int, tuple[int, int]] = {}
    for name in ("epoch_boundary_headers_0_832608.csv", "headers_822528_830592.csv"):
        with (DATA / name).open(newline="") as handle:
            for row in csv.DictReader(handle):
                headers[int(row["height"])] = (int(row["time"]), int(row["bits"], 16))
    return headers


HEADERS = _load_headers()


@dataclass
class CsvChain:
    """``ChainView`` over recorded mainnet headers; the tip is where the test puts it."""

    tip_height: int = 830027
    reads: int = 0
    broken: bool = False

    def _header(self, height: int) -> tuple[int, int]:
        self.reads += 1
        if self.broken:
            raise HeightNotFound("chain view broken for this test", source="csv", request="tip")
        if height > self.tip_height or height not in HEADERS:
            raise HeightNotFound(f"no header at height {height}", source="csv")
        return HEADERS[height]

    async def tip(self) -> tuple[int, int]:
        return self.tip_height, self._header(self.tip_height)[0]

    async def header_time(self, height: int) -> int:
        return self._header(height)[0]

    async def header_bits(self, height: int) -> int:
        return self._header(height)[1]


@dataclass
class SourceBoard:
    """The daemon's current verdict per source; tests flip entries to see /ready change."""

    sources: list[SourceHealth] = field(
        default_factory=lambda: [SourceHealth("bitcoind", True), SourceHealth("esplora", True)]
    )


async def fill(repository: Repository) -> None:
    """Every mainnet retarget 0..413 agreed, 400..411 published, one reorged epoch,
    one disputed epoch with a failing source, and index values for recent epochs."""
    headers = retarget_headers()
    epochs = sorted(headers)
    await repository.record_agreed_many(NET, [headers[e].agreed() for e in epochs])
    last = epochs[-1]
    # Epoch 413: a competing block was agreed first, then replaced (kept as orphaned).
    await repository.record_agreed_many(NET, [sibling(headers[last]).agreed()])
    await repository.record_agreed_many(NET, [headers[last].agreed()])
    for epoch in PUBLISHED_EPOCHS:
        await repository.mark_published(
            NET, epoch, tx_hash=f"0x{epoch:064x}", chain_id=CHAIN_ID, contract=CONTRACT
        )
    disputed = headers[412]
    await repository.record_observations(
        NET,
        [
            disputed.observation("bitcoind"),
            disputed.observation("esplora"),
            sibling(disputed).observation("liar"),
            ObservationInput(
                epoch=412,
                source="blockchain_com",
                error_kind="timeout",
                error_message=f"GET http://oracle:{SECRET}@127.0.0.1:9/q timed out",
            ),
        ],
    )
    await repository.record_disagreement(
        NET,
        412,
        "block_hash",
        {"bitcoind": disputed.block_hash_hex, "liar": sibling(disputed).block_hash_hex},
    )
    history = [EpochTarget.from_bits(e, headers[e].bits, headers[e].time) for e in epochs]
    for n_days in STORED_N_DAYS:
        series = bme_series(n_days, history)
        await repository.upsert_index_values(
            NET, [v for e, v in series.items() if e >= STORED_INDEX_FROM_EPOCH]
        )


def make_context(
    repository: Repository,
    *,
    chain: CsvChain | None,
    board: SourceBoard | None = None,
    clock: Callable[[], float] = lambda: float(VECTOR_NOW),
    metrics: Metrics | None = None,
    request_timeout_s: float = 10.0,
) -> ApiContext:
    config = Config(crosscheck=CrossCheckConfig(quorum=2))
    board = board or SourceBoard()

    async def readiness():  # type: ignore[no-untyped-def]
        return await gather_readiness(
            ping_database=repository.ping,
            reach_chain=chain.tip if chain is not None else None,
            sources=board.sources,
            quorum=config.crosscheck.quorum,
        )

    context = ApiContext(
        repository=repository,
        config=config,
        metrics=metrics or Metrics(NET),
        network=NET,
        readiness=readiness,
        chain=chain,
        clock=clock,
        request_timeout_s=request_timeout_s,
    )
    # Built here (build_app would build the same) so tests can reach the API's memory.
    return dataclasses.replace(context, state=ApiState.for_context(context))


class ThreadedApi:
    """The API on a real port, served from its own thread and event loop.

    For synchronous clients (schemathesis, the benchmark): they block, so the
    server cannot share their thread. The thread opens its own repository on
    ``url`` and closes everything on ``stop()``.
    """

    def __init__(self, url: str, chain: CsvChain | None = None) -> None:
        self.url = url
        self.chain = chain or CsvChain()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"API server did not start: {self._error!r}")
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        repository = await open_repository(self.url)
        try:
            runner, self.port = await start_api(
                make_context(repository, chain=self.chain), host="127.0.0.1", port=0
            )
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()
        finally:
            await repository.close()
