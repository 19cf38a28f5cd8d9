"""Alerter against a real local aiohttp webhook receiver: delivery, retries, rate limit, secrets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from oracle.config import MonitorConfig
from oracle.monitor.alerts import Alerter, webhook_label
from oracle.monitor.metrics import Metrics

ALERTS = "bme_oracle_alerts_total"


@dataclass
class Receiver:
    """A webhook endpoint that answers with a scripted list of statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    delay_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.received.append(await request.json())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({"ok": status < 300}, status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{token}", hook.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield hook, str(server.make_url("/hook/s3cr3t-token"))
    finally:
        await server.close()


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _alerter(
    webhooks: tuple[str, ...], *, retries: int = 3, interval_s: float = 300.0, **kw: Any
) -> tuple[Alerter, Metrics]:
    metrics = Metrics(network="regtest")
    config = MonitorConfig(
        webhooks=webhooks,
        webhook_timeout_s=kw.pop("timeout_s", 2.0),
        webhook_retries=retries,
        alert_min_interval_s=interval_s,
    )
    return Alerter(config, metrics, backoff_base_s=0.01, backoff_max_s=0.05, **kw), metrics


async def test_alert_is_posted_as_json_to_every_webhook(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    second = url.replace("s3cr3t-token", "other")
    alerter, metrics = _alerter((url, second))
    sent = await alerter.alert(
        "disagreement", "sources disagree on bits", key="epoch:411", epoch=411, field="bits"
    )
    await alerter.drain()
    await alerter.close()
    assert sent is True
    assert sorted(hook.paths) == ["/hook/other", "/hook/s3cr3t-token"]
    payload = hook.received[0]
    assert payload["kind"] == "disagreement"
    assert payload["key"] == "epoch:411"
    assert payload["status"] == "firing"
    assert payload["network"] == "regtest"
    assert payload["message"] == "sources disagree on bits"
    assert payload["fields"] == {"epoch": 411, "field": "bits"}
    assert payload["suppressed_since_last"] == 0
    assert metrics.sample(ALERTS, {"kind": "disagreement", "outcome": "sent"}) == 1


async def test_retries_on_500_until_delivered(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [500, 503]
    alerter, metrics = _alerter((url,), retries=3)
    await alerter.alert("source_failing", "esplora down", key="esplora")
    await alerter.drain()
    await alerter.close()
    assert len(hook.received) == 3  # two 5xx, then 200
    assert metrics.sample(ALERTS, {"kind": "source_failing", "outcome": "failed"}) is None


async def test_gives_up_after_the_configured_retries(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [500, 500, 500, 500]
    alerter, metrics = _alerter((url,), retries=2)
    assert await alerter.alert("source_failing", "esplora down", key="esplora") is True
    await alerter.drain()
    await alerter.close()
    assert len(hook.received) == 3  # 1 + 2 retries
    assert metrics.sample(ALERTS, {"kind": "source_failing", "outcome": "failed"}) == 1


async def test_client_errors_are_not_retried(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [404]
    alerter, metrics = _alerter((url,), retries=3)
    await alerter.alert("publication_late", "epoch 411 not published", key="411")
    await alerter.drain()
    await alerter.close()
    assert len(hook.received) == 1
    assert metrics.sample(ALERTS, {"kind": "publication_late", "outcome": "failed"}) == 1


async def test_429_is_retried(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [429]
    alerter, _ = _alerter((url,), retries=1)
    await alerter.alert("publication_late", "late", key="411")
    await alerter.drain()
    await alerter.close()
    assert len(hook.received) == 2


async def test_slow_webhook_times_out_and_is_retried(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    # The receiver records each request once its body arrived, then answers too late: a
    # timeout of 0.5 s leaves a loaded machine time to deliver the body (0.1 s did not).
    hook.delay_s = 2.0
    alerter, metrics = _alerter((url,), retries=1, timeout_s=0.5)
    await alerter.alert("readback_mismatch", "contract differs", key="411")
    await alerter.drain()
    await alerter.close()
    assert len(hook.received) == 2
    assert metrics.sample(ALERTS, {"kind": "readback_mismatch", "outcome": "failed"}) == 1


async def test_rate_limited_per_kind_and_key(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    clock = Clock()
    alerter, metrics = _alerter((url,), interval_s=300.0, clock=clock)
    results = [await alerter.alert("source_stale", "stale", key="esplora") for _ in range(5)]
    assert results == [True, False, False, False, False]
    assert await alerter.alert("source_stale", "stale", key="blockchain_com") is True
    assert await alerter.alert("source_failing", "failing", key="esplora") is True
    clock.now += 299.0
    assert await alerter.alert("source_stale", "stale", key="esplora") is False
    clock.now += 2.0
    assert await alerter.alert("source_stale", "still stale", key="esplora") is True
    await alerter.drain()
    await alerter.close()
    stale_esplora = [
        p for p in hook.received if (p["kind"], p["key"]) == ("source_stale", "esplora")
    ]
    assert [p["suppressed_since_last"] for p in stale_esplora] == [0, 5]
    assert len(hook.received) == 4
    assert metrics.sample(ALERTS, {"kind": "source_stale", "outcome": "suppressed"}) == 5
    assert metrics.sample(ALERTS, {"kind": "source_stale", "outcome": "sent"}) == 3


async def test_resolve_notifies_once_and_only_after_an_alert(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    alerter, metrics = _alerter((url,))
    assert await alerter.resolve("source_stale", "fine", key="esplora") is False
    await alerter.alert("source_stale", "stale", key="esplora")
    assert await alerter.resolve("source_stale", "recovered", key="esplora") is True
    assert await alerter.resolve("source_stale", "recovered", key="esplora") is False
    # After resolution, a new incident alerts at once (no leftover rate limit).
    assert await alerter.alert("source_stale", "stale again", key="esplora") is True
    await alerter.drain()
    await alerter.close()
    assert [p["status"] for p in hook.received] == ["firing", "resolved", "firing"]
    assert metrics.sample(ALERTS, {"kind": "source_stale", "outcome": "resolved"}) == 1


async def test_unreachable_webhook_never_raises_into_the_caller() -> None:
    # A port that was just bound and released: connection refused.
    server = TestServer(web.Application(), host="127.0.0.1")
    await server.start_server()
    dead = str(server.make_url("/hook"))
    await server.close()
    alerter, metrics = _alerter((dead,), retries=2)
    assert await alerter.alert("signer_balance_low", "top up", key="0xabc", balance_wei=5) is True
    await alerter.drain()
    await alerter.close()
    assert metrics.sample(ALERTS, {"kind": "signer_balance_low", "outcome": "failed"}) == 1


async def test_fields_that_are_not_json_are_stringified(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    alerter, _ = _alerter((url,))
    await alerter.alert("peer_conflict", "two reports", key="peer", seen=object.__new__(Clock))
    await alerter.drain()
    await alerter.close()
    assert isinstance(hook.received[0]["fields"]["seen"], str)


async def test_secrets_stay_out_of_logs_and_payloads(receiver: tuple[Receiver, str]) -> None:
    hook, url = receiver
    hook.statuses = [500]
    alerter, _ = _alerter((url,), retries=1)
    with structlog.testing.capture_logs() as logs:
        await alerter.alert("source_failing", "down", key="x", api_token="abc123", height=5)
        await alerter.drain()
        await alerter.close()
    assert hook.received[0]["fields"] == {"api_token": "***", "height": 5}
    text = repr(logs)
    assert "s3cr3t-token" not in text and "abc123" not in text
    assert any(entry["event"] == "webhook_retry" for entry in logs)
    assert any(entry["event"] == "alert" and entry["alert"] == "source_failing" for entry in logs)
    assert webhook_label("https://hooks.example/services/T0/B0/XYZ") == "https://hooks.example"


async def test_no_webhooks_still_logs_and_counts() -> None:
    alerter, metrics = _alerter(())
    with structlog.testing.capture_logs() as logs:
        assert await alerter.alert("disagreement", "bits differ", key="411") is True
    await alerter.close()
    assert metrics.sample(ALERTS, {"kind": "disagreement", "outcome": "sent"}) == 1
    assert logs[0]["log_level"] == "error"


async def test_url_credentials_are_scrubbed_from_messages_and_fields(
    receiver: tuple[Receiver, str],
) -> None:
    hook, url = receiver
    alerter, _ = _alerter((url,))
    with structlog.testing.capture_logs() as logs:
        await alerter.alert(
            "publish_failed",
            "send failed: HTTPConnectionPool(host='http://signer:pa55w0rd@10.0.0.1:8545/')",
            key="411",
            error="POST https://u:topsecret@rpc.example/v1 refused",
        )
        await alerter.drain()
        await alerter.close()
    payload = hook.received[0]
    assert "pa55w0rd" not in repr(payload) and "topsecret" not in repr(payload)
    assert "pa55w0rd" not in repr(logs) and "topsecret" not in repr(logs)
    assert payload["fields"]["error"] == "POST https://***@rpc.example/v1 refused"
    assert "http://***@10.0.0.1:8545/" in payload["message"]


async def test_an_orphaned_publication_is_one_critical_alert_resolved_by_its_replacement(
    receiver: tuple[Receiver, str],
) -> None:
    """``MonitorHub``: the alert carries what the contract allows (replace or re-anchor);
    the replacement on chain resolves it; a replacement without an alert sends nothing."""
    from oracle.config import Config
    from oracle.monitor.hub import MonitorHub

    hook, url = receiver
    config = Config(monitor=MonitorConfig(webhooks=(url,), webhook_retries=0))
    hub = MonitorHub(config, repository=None)  # type: ignore[arg-type]
    try:
        await hub.orphaned(7, "aa" * 32, published=True, detail="its challenge window is open")
        await hub.replaced(7, "aa" * 32, "bb" * 32, "0x" + "01" * 32)
        await hub.replaced(8, None, "cc" * 32, None)  # never alerted: nothing to resolve
        await hub.alerter.drain()
    finally:
        await hub.close()
    firing, resolved = hook.received
    assert (firing["kind"], firing["severity"], firing["status"]) == (
        "orphaned_published",
        "critical",
        "firing",
    )
    assert firing["message"].endswith("left the best chain; its challenge window is open")
    assert (resolved["kind"], resolved["status"], resolved["key"]) == (
        "orphaned_published",
        "resolved",
        "epoch:7",
    )
    assert f"replaced on chain by block {'bb' * 32}" in resolved["message"]
    assert hub.metrics.sample("bme_oracle_orphaned_published_total") == 1
