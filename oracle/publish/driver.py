"""The EVM side of a running oracle, in a task of its own: connect, reconcile, publish.

Why a task of its own: the Bitcoin side (observe, verify, agree, store, serve the
API) must never wait for the EVM side. With the chain's RPC down at start, a
stuck transaction (a fee below what the chain asks, a node that mines nothing)
or a reconcile that waits for a receipt, new epochs are still observed and
agreed, and SIGTERM still ends the process within seconds: the service cancels
this task (every publication step is resumable: the transaction manager stores
each signed transaction before it is sent, and ``reconcile`` finishes it at the
next start).

``PublicationDriver.run``:

1. ``check_chain`` until the node answers with the configured chain id and the
   contract's code, with backoff (``publish_failed`` alert, key ``chain``,
   rate-limited; resolved once it answers);
2. ``reconcile`` what a previous run left in flight, bounded: one round per live
   submission plus one (each failed round settles one), and a submission still
   unconfirmed after ``receipt_timeout_s`` is left live for the pipeline, which
   drives live submissions before any new one;
3. then one publication pass (``Pipeline.publish_confirmed``) per ``request()``:
   the service requests one after each pipeline pass, every 15 s, and when
   peers sent signatures. Passes never overlap; requests made during a pass
   coalesce into one more.

An unexpected error ends neither the task nor the service: it is logged with
its traceback and the driver starts again from step 1 after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

import structlog

from oracle.errors import PublishError, TxNotConfirmed
from oracle.publish.evmnode import RPC_ERRORS
from oracle.publish.publisher import Publisher

log = structlog.get_logger(__name__)

#: Waits between attempts to reach the chain: from the first to the cap, doubling.
CONNECT_BACKOFF_S = 1.0
CONNECT_BACKOFF_MAX_S = 60.0
#: A chain that cannot be used yet: unreachable, wrong chain id, no contract.
_CHAIN_ERRORS: tuple[type[BaseException], ...] = (PublishError, *RPC_ERRORS)


class Publishing(Protocol):
    """The pipeline's publication stage (``oracle.pipeline.Pipeline.publish_confirmed``)."""

    async def publish_confirmed(self, tip_height: int) -> object: ...


class ChainWatch(Protocol):
    """Where the driver reports the chain's reachability (``oracle.monitor.hub.MonitorHub``)."""

    async def chain_unavailable(self, error: BaseException) -> None: ...

    async def chain_available(self) -> None: ...


class PublicationDriver:
    """Connects to the chain, reconciles, then runs one publication pass per request."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        pipeline: Publishing,
        monitor: ChainWatch,
        best_height: Callable[[], int | None],
        holding: Callable[[], contextlib.AbstractContextManager[None]] | None = None,
        backoff_s: float = CONNECT_BACKOFF_S,
        backoff_max_s: float = CONNECT_BACKOFF_MAX_S,
    ) -> None:
        self.publisher = publisher
        self.pipeline = pipeline
        self.monitor = monitor
        self.best_height = best_height
        self.holding = holding or contextlib.nullcontext
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        #: True once the chain answered and the previous run's submissions were reconciled
        self.connected = False
        #: publication passes run so far (tests and benchmarks wait on it)
        self.passes = 0
        self._wanted = asyncio.Event()
        #: held while a pass sends transactions; other senders of this key (the EVM-reorg
        #: re-check) take it too, so nonces are never raced
        self.sending = asyncio.Lock()

    def request(self) -> None:
        """Ask for a publication pass (cheap; many requests make one pass)."""
        self._wanted.set()

    async def run(self) -> None:
        """Forever (until cancelled): connect, reconcile, then serve publication requests."""
        delay = self.backoff_s
        while True:
            try:
                await self._connect()
                await self._reconcile()
                self.connected = True
                delay = self.backoff_s
                log.info("publication_ready", contract=self.publisher.contract_address)
                self.request()  # what became due while the chain was away
                await self._serve()
            except Exception:
                self.connected = False
                log.exception("publication_driver_failed", retry_s=delay)
                await asyncio.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)

    async def _connect(self) -> None:
        delay = self.backoff_s
        while True:
            try:
                await self.publisher.check_chain()
            except _CHAIN_ERRORS as exc:
                log.warning("chain_unavailable", error=str(exc), retry_s=delay)
                await self.monitor.chain_unavailable(exc)
                await asyncio.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            await self.monitor.chain_available()
            return

    async def _reconcile(self) -> None:
        """Settle what a previous run left in flight: bounded, see the module docstring."""
        rounds = 1 + await self.publisher.live_submissions()
        for _ in range(rounds):
            try:
                await self.publisher.reconcile()
                return
            except TxNotConfirmed as exc:
                log.warning("reconcile_left_live", error=str(exc))
                return
            except PublishError as exc:
                log.warning("reconcile_left_for_pipeline", error=str(exc))
        log.warning("reconcile_incomplete", rounds=rounds)

    async def _serve(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            height = self.best_height()
            if height is None:
                continue
            async with self.sending:
                with self.holding():
                    await self.pipeline.publish_confirmed(height)
            self.passes += 1
