"""The EVM side never stops the Bitcoin side (issue 12, item 6).

Real regtest bitcoind, real anvil (stopped, started late, or with automine off so that
a transaction stays in its mempool), real Postgres; the daemon runs in-process
(``Service``), and SIGTERM is a real signal delivered to this process's event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from oracle.service import Service, install_signal_handlers
from tests.e2e.helpers import WebhookReceiver, http_get_json, running, status_of, wait_for
from tests.e2e.test_publish_e2e import accepted_events, publishing_config
from tests.fixtures.anvil import CHAIN_ID, AnvilNode
from tests.fixtures.bitcoind import NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.anvil, pytest.mark.postgres, pytest.mark.slow]


async def test_evm_down_at_start_the_node_observes_agrees_and_publishes_when_it_returns(
    bitcoind_factory: NodeFactory,
    anvil_factory: Callable[..., AnvilNode],
    pg_url: str,
    tmp_path: Path,
) -> None:
    node = bitcoind_factory()
    chain = anvil_factory(persistent=True)  # the same port across stop and start
    async with WebhookReceiver() as hooks:
        config, address = await publishing_config(
            pg_url, node, chain, tmp_path / "k", confirmations=0, webhooks=(hooks.url,)
        )
        chain.stop()  # the contract is deployed; now the EVM RPC is down
        service = Service(config)
        async with running(service):
            assert service.api_url is not None
            status, body = await asyncio.to_thread(http_get_json, f"{service.api_url}/health")
            assert (status, body) == (200, {"status": "ok"})
            node.mine(2016)
            await wait_for(lambda: _is(service, 1, "agreed"), 60, "epoch 1 agreed, EVM down")
            chain_alert = await wait_for(
                lambda: _alert(hooks, "publish_failed", "chain"), 30, "chain alert"
            )
            assert "observation and agreement carry on" in chain_alert["message"]
            status, body = await asyncio.to_thread(http_get_json, f"{service.api_url}/ready")
            assert status == 503 and body["checks"]["chain"] is False
            chain.start()
            await wait_for(lambda: _is(service, 1, "published"), 90, "epoch 1 published")
            await wait_for(lambda: _resolved(hooks, "publish_failed", "chain"), 30, "resolved")
        assert await accepted_events(chain, address) == [1]


async def test_a_stuck_transaction_blocks_neither_observation_nor_sigterm(
    bitcoind_factory: NodeFactory,
    anvil_factory: Callable[..., AnvilNode],
    pg_url: str,
    tmp_path: Path,
) -> None:
    node = bitcoind_factory()
    chain = anvil_factory()
    config, address = await publishing_config(pg_url, node, chain, tmp_path / "k", confirmations=0)
    chain.call("evm_setAutomine", False)  # transactions wait in the mempool from now on
    service = Service(config)
    async with _sigterm_stops(service) as stopped:
        node.mine(2016)
        await wait_for(lambda: _broadcast(service, address, 1), 60, "epoch 1 sent, not mined")
        # The publication waits for its receipt; the next retarget is observed meanwhile.
        node.mine(2016)
        await wait_for(lambda: _is(service, 2, "agreed"), 20, "epoch 2 agreed during the wait")
        assert await status_of(service, 1) == "agreed"
        elapsed = await stopped()
    assert elapsed < 5.0, f"SIGTERM took {elapsed:.1f} s with a transaction in flight"

    # At the next start the live submission is reconciled (it still waits for its
    # receipt): the node starts anyway, and SIGTERM still ends it at once.
    service = Service(config)
    async with _sigterm_stops(service) as stopped:
        assert await _broadcast(service, address, 1)
        elapsed = await stopped()
    assert elapsed < 5.0, f"SIGTERM took {elapsed:.1f} s during reconcile"

    chain.call("evm_setAutomine", True)
    chain.call("evm_mine")  # the waiting transaction is mined now
    service = Service(config)
    async with running(service):
        await wait_for(lambda: _is(service, 2, "published"), 90, "epochs 1 and 2 published")
        assert await status_of(service, 1) == "published"
    assert await accepted_events(chain, address) == [1, 2]  # one transaction each landed


@asynccontextmanager
async def _sigterm_stops(service: Service) -> AsyncIterator[Callable[[], Awaitable[float]]]:
    """Run ``service`` with the real signal handlers; the yielded coroutine function sends
    SIGTERM to this process and returns how long the service took to exit (status 0)."""
    ready = asyncio.Event()

    async def on_ready(_service: Service) -> None:
        ready.set()

    service.on_ready = on_ready
    install_signal_handlers(service.stop_event)
    task = asyncio.create_task(service.run())
    loop = asyncio.get_running_loop()

    async def stop() -> float:
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(asyncio.shield(task), 30) == 0
        return time.monotonic() - started

    try:
        await asyncio.wait_for(ready.wait(), 30)
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if not task.done():
            service.stop_event.set()
            await asyncio.wait_for(task, 30)


async def _broadcast(service: Service, address: str, epoch: int) -> bool:
    row = await service.repository.submission_for_epoch(CHAIN_ID, address, epoch)
    return row is not None and row.state == "broadcast"


async def _is(service: Service, epoch: int, status: str) -> bool:
    return await status_of(service, epoch) == status


async def _alert(hooks: WebhookReceiver, kind: str, key: str) -> dict[str, object] | None:
    firing = (
        a for a in hooks.alerts if (a["kind"], a["key"], a["status"]) == (kind, key, "firing")
    )
    return next(firing, None)


async def _resolved(hooks: WebhookReceiver, kind: str, key: str) -> bool:
    return any(
        a["kind"] == kind and a["key"] == key and a["status"] == "resolved" for a in hooks.alerts
    )
