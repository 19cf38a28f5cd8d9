"""No silent faults (issue 12, item 5): an epoch stuck without agreement alerts within
``monitor.publication_late_s``; a source that answers but fails verification is shown
unhealthy; a dead block feed is restarted, or the service turns /health red and exits
with an error.

Real regtest bitcoind nodes and Postgres; the daemon runs in-process (``Service``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from oracle.config import Config
from oracle.errors import FeedFailed
from oracle.monitor import instrument
from oracle.service import Service
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.types import Observation, Tip
from tests.e2e.helpers import (
    WebhookReceiver,
    daemon_config,
    http_get_json,
    node_source,
    peered_nodes,
    running,
    status_of,
    wait_for,
)
from tests.fixtures.bitcoind import BitcoindNode, NodeFactory

pytestmark = [pytest.mark.bitcoind, pytest.mark.postgres, pytest.mark.slow]
OTHER_ADDRESS = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
LATE_S = 2.0


def late_config(db_url: str, node: BitcoindNode, *, quorum: int, webhook: str) -> Config:
    """A node that calls an epoch late ``LATE_S`` after its retarget block."""
    config = daemon_config(db_url, node, quorum=quorum, confirmations=0, webhooks=(webhook,))
    return dataclasses.replace(
        config, monitor=dataclasses.replace(config.monitor, publication_late_s=LATE_S)
    )


async def test_an_epoch_without_quorum_alerts_within_publication_late_s(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    # Both sources follow the chain (so the quorum-th highest tip moves past the retarget
    # and the epoch is observed), but one of the two the quorum needs fails verification
    # for it: the epoch is stuck without quorum. (A source that is simply down stops the
    # effective tip instead; that is `source_stale` / `source_failing`.)
    a, b = peered_nodes(bitcoind_factory)
    async with WebhookReceiver() as hooks:
        service = Service(
            late_config(pg_url, a, quorum=2, webhook=hooks.url),
            extra_sources=[Misquoting(node_source(b, "bitcoind-b"))],
        )
        async with running(service):
            await wait_for(lambda: _is(service, 0, "agreed"), 30, "epoch 0 agreed by both")
            a.mine(2016)
            alert = await wait_for(
                lambda: _late(hooks, 1), 10 + LATE_S, "publication_late for epoch 1"
            )
            assert "no agreed retarget" in alert["message"] and "no quorum" in alert["message"]
            assert await status_of(service, 1) == "observed"  # not agreed
            late = service.parts.monitor.metrics.sample("bme_oracle_publication_late_epochs")
            assert late == 1


async def test_a_disputed_epoch_alerts_within_publication_late_s(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    a = bitcoind_factory()
    liar = bitcoind_factory()  # its own chain: verified blocks, other hashes
    async with WebhookReceiver() as hooks:
        service = Service(
            late_config(pg_url, a, quorum=2, webhook=hooks.url),
            extra_sources=[node_source(liar, "liar")],
        )
        async with running(service):
            liar.mine(2016 + 1, address=OTHER_ADDRESS)
            a.mine(2016 + 1)
            alert = await wait_for(
                lambda: _late(hooks, 1), 10 + LATE_S, "publication_late for epoch 1"
            )
            assert "disputed" in alert["message"]


class Misquoting:
    """A source that answers with real headers, but serves the block at 2016e-2 as the one
    at 2016e-1: every answer is well formed and hashes right, yet fails verification."""

    def __init__(self, inner: BitcoindSource) -> None:
        self.inner = inner
        self.name = inner.name

    async def tip(self) -> Tip:
        return await self.inner.tip()

    async def header_at(self, height: int) -> Observation:
        return await self.inner.header_at(height)

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        answers = await self.inner.headers_at(heights)
        if len(answers) == 3:
            wrong = await self.inner.header_at(heights[1] - 1)
            answers[1] = dataclasses.replace(wrong, height=heights[1])
        return answers

    def new_blocks(self) -> AsyncIterator[Tip]:
        return self.inner.new_blocks()

    async def close(self) -> None:
        await self.inner.close()


async def test_a_source_failing_verification_is_unhealthy_in_ready_status_and_metrics(
    bitcoind_factory: NodeFactory, pg_url: str
) -> None:
    node = bitcoind_factory()
    service = Service(
        daemon_config(pg_url, node, quorum=1, confirmations=0),
        extra_sources=[Misquoting(node_source(node, "misquoting"))],
    )
    async with running(service):
        node.mine(2016)
        await wait_for(lambda: _is(service, 1, "agreed"), 60, "epoch 1 agreed by bitcoind")
        url = service.api_url
        status, ready = await asyncio.to_thread(http_get_json, f"{url}/ready")
        detail = {s["name"]: s for s in ready["checks"]["sources"]["detail"]}
        assert status == 200  # bitcoind alone makes the quorum of 1
        assert detail["bitcoind"]["healthy"] is True
        assert detail["misquoting"]["healthy"] is False
        assert "answers fail verification" in detail["misquoting"]["reason"]
        assert "linkage" in detail["misquoting"]["reason"]
        status, body = await asyncio.to_thread(http_get_json, f"{url}/v1/status")
        assert status == 200, body
        shown = {s["name"]: s for s in body["sources"]}
        assert shown["misquoting"]["healthy"] is False
        assert "answers fail verification" in shown["misquoting"]["reason"]
        assert shown["bitcoind"] == {"name": "bitcoind", "healthy": True, "reason": ""}
        metrics = service.parts.monitor.metrics
        assert metrics.sample("bme_oracle_source_healthy", {"source": "misquoting"}) == 0
        assert metrics.sample("bme_oracle_source_healthy", {"source": "bitcoind"}) == 1


class DiesOnce:
    """A source whose block feed dies (raises) after its first tip, once."""

    def __init__(self, inner: BitcoindSource) -> None:
        self.inner = inner
        self.name = inner.name
        self.deaths = 0

    async def tip(self) -> Tip:
        return await self.inner.tip()

    async def header_at(self, height: int) -> Observation:
        return await self.inner.header_at(height)

    async def headers_at(self, heights: Sequence[int]) -> list[Observation]:
        return await self.inner.headers_at(heights)

    async def new_blocks(self) -> AsyncIterator[Tip]:
        async for tip in self.inner.new_blocks():
            yield tip
            if not self.deaths:
                self.deaths += 1
                raise ConnectionResetError("the feed's socket was reset")

    async def close(self) -> None:
        await self.inner.close()


async def test_a_dead_block_feed_is_restarted(
    bitcoind_factory: NodeFactory, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instrument, "FEED_BACKOFF_S", 0.2)
    node = bitcoind_factory()
    flaky = DiesOnce(node_source(node, "flaky"))
    service = Service(daemon_config(pg_url, node, quorum=2, confirmations=0), extra_sources=[flaky])
    async with running(service) as task:
        node.mine(1)
        await wait_for(lambda: _deaths(flaky), 30, "the feed died")
        node.mine(2016)
        await wait_for(lambda: _is(service, 1, "agreed"), 60, "epoch 1 agreed by both sources")
        assert not task.done()
        state = next(s.state for s in service.parts.sources if s.name == "flaky")
        assert state.feed_restarts >= 1 and state.feed_down == ""


async def test_a_feed_that_keeps_dying_turns_health_red_and_ends_the_service(
    bitcoind_factory: NodeFactory, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instrument, "FEED_BACKOFF_S", 0.5)
    monkeypatch.setattr(instrument, "FEED_MAX_RESTARTS", 4)
    node = bitcoind_factory()
    # A ZMQ endpoint the socket refuses: the only block feed dies at every start.
    config = daemon_config(
        pg_url, node, quorum=1, confirmations=0, zmq_url="tcp://127.0.0.1:notaport"
    )
    service = Service(config)
    ready = asyncio.Event()

    async def on_ready(_service: Service) -> None:
        ready.set()

    service.on_ready = on_ready
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(ready.wait(), 30)
    _, body = await wait_for(lambda: _health(service, 503), 10, "/health 503")
    assert body["status"] == "failing" and "block feed" in body["reason"]
    with pytest.raises(FeedFailed, match="died 5 times in a row"):
        await asyncio.wait_for(task, 30)


async def _health(service: Service, expected: int) -> tuple[int, Any] | None:
    answer = await asyncio.to_thread(http_get_json, f"{service.api_url}/health")
    return answer if answer[0] == expected else None


async def _late(hooks: WebhookReceiver, epoch: int) -> dict[str, Any] | None:
    return next(
        (
            a
            for a in hooks.alerts
            if a["kind"] == "publication_late"
            and a["key"] == f"epoch:{epoch}"
            and a["status"] == "firing"
        ),
        None,
    )


async def _deaths(source: DiesOnce) -> bool:
    return source.deaths > 0


async def _is(service: Service, epoch: int, status: str) -> bool:
    return await status_of(service, epoch) == status
