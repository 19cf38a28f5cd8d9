"""Alerts: log, count and POST to webhooks what an operator must know about.

Kinds the daemon raises (free-form strings, these are the conventional ones):
``disagreement``, ``source_failing``, ``source_stale``, ``readback_mismatch``,
``publication_late``, ``signer_balance_low``, ``peer_conflict``.

Why it is shaped like this:

* An alert must never break what raised it: ``alert`` never raises (except
  cancellation) and delivery runs in background tasks, so a dead webhook
  cannot stall a pipeline tick. ``drain()`` waits for deliveries in flight
  (tests, shutdown); ``close()`` drains with a deadline and closes the session.
* One incident is not a flood: alerts are rate-limited per ``(kind, key)``
  (``key`` names the thing, e.g. the source or the epoch) to one per
  ``alert_min_interval_s``; the next one that goes out says how many were
  suppressed meanwhile. ``resolve`` sends a "resolved" notice once, and only
  for an incident that alerted.
* Webhooks are retried with capped exponential backoff on network errors,
  timeouts, 429 and 5xx; other 4xx are permanent and not retried.
* Webhook URLs often carry a token in their path, so logs name only the
  scheme and host; field names that look like secrets are masked, and message
  and fields go through ``oracle.logs.scrub_secrets`` (URL credentials, API
  keys in URL paths and queries) before they are logged or posted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from oracle.config import MonitorConfig
from oracle.logs import scrub_secrets
from oracle.monitor.metrics import Metrics

log = structlog.get_logger(__name__)

_SECRET_MARKERS = ("password", "secret", "private_key", "privkey", "mnemonic", "token", "api_key")
_SEVERITIES = ("warning", "error", "critical")


def scrub_credentials(text: str) -> str:
    """``text`` with credentials taken out (``oracle.logs.scrub_secrets``).

    Error messages (from RPC clients, drivers) sometimes quote the URL they
    used, API keys in its path included; alerts and API answers pass through
    this before leaving the process.
    """
    return scrub_secrets(text)


def webhook_label(url: str) -> str:
    """The part of a webhook URL that is safe to log: scheme and host (paths hold tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _safe_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe fields with secret-looking keys masked and every string scrubbed."""
    return {
        str(name): "***"
        if any(marker in str(name).lower() for marker in _SECRET_MARKERS)
        else _safe_value(value)
        for name, value in fields.items()
    }


def _safe_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return _safe_fields(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe_value(item) for item in value]
    return scrub_credentials(value if isinstance(value, str) else str(value))


@dataclass(slots=True)
class _Incident:
    last_sent_at: float
    suppressed: int = 0


class Alerter:
    """Raise alerts: structlog line, ``alerts`` metric and JSON POST to every webhook."""

    def __init__(
        self,
        config: MonitorConfig,
        metrics: Metrics,
        *,
        network: str = "",
        session: aiohttp.ClientSession | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._network = network or metrics.network
        self._session = session
        self._own_session = session is None
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._incidents: dict[tuple[str, str], _Incident] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def alert(
        self,
        kind: str,
        message: str,
        *,
        key: str = "",
        severity: str = "error",
        **fields: Any,
    ) -> bool:
        """Raise an alert; returns False when the rate limit suppressed its delivery.

        Never raises: a failure to alert is logged and counted, not propagated.
        """
        try:
            return self._raise(kind, message, key=key, severity=severity, fields=fields)
        except Exception:
            log.exception("alert_failed", kind=kind, key=key)
            self._metrics.count_alert(kind, "failed")
            return False

    async def resolve(self, kind: str, message: str = "", *, key: str = "", **fields: Any) -> bool:
        """The incident ``(kind, key)`` is over; notify webhooks if it had alerted."""
        try:
            incident = self._incidents.pop((kind, key), None)
            if incident is None:
                return False
            message = scrub_credentials(message)
            log.info("alert_resolved", alert=kind, key=key, message=message, **_safe_fields(fields))
            self._metrics.count_alert(kind, "resolved")
            self._deliver(self._payload(kind, message, key, "resolved", "info", fields, 0))
            return True
        except Exception:
            log.exception("alert_failed", kind=kind, key=key)
            return False

    async def drain(self) -> None:
        """Wait until every delivery in flight has finished (succeeded or given up)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let deliveries finish for up to ``timeout_s``, cancel the rest, close the session."""
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- internals ---------------------------------------------------------------------------

    def _raise(
        self, kind: str, message: str, *, key: str, severity: str, fields: dict[str, Any]
    ) -> bool:
        if severity not in _SEVERITIES:
            severity = "error"
        message = scrub_credentials(message)
        safe = _safe_fields(fields)
        now = self._clock()
        incident = self._incidents.get((kind, key))
        if incident is not None and now - incident.last_sent_at < self._config.alert_min_interval_s:
            incident.suppressed += 1
            self._metrics.count_alert(kind, "suppressed")
            log.debug("alert_suppressed", alert=kind, key=key, suppressed=incident.suppressed)
            return False
        suppressed = incident.suppressed if incident is not None else 0
        self._incidents[(kind, key)] = _Incident(last_sent_at=now)
        level = "warning" if severity == "warning" else "error"
        getattr(log, level)(
            "alert", alert=kind, key=key, message=message, suppressed=suppressed, **safe
        )
        self._metrics.count_alert(kind, "sent")
        self._deliver(self._payload(kind, message, key, "firing", severity, fields, suppressed))
        return True

    def _payload(
        self,
        kind: str,
        message: str,
        key: str,
        status: str,
        severity: str,
        fields: dict[str, Any],
        suppressed: int,
    ) -> dict[str, Any]:
        return {
            "service": "bme-oracle",
            "network": self._network,
            "kind": kind,
            "key": key,
            "status": status,
            "severity": severity,
            "message": message,
            "fields": _safe_fields(fields),
            "suppressed_since_last": suppressed,
            "time": datetime.now(UTC).isoformat(),
        }

    def _deliver(self, payload: dict[str, Any]) -> None:
        for url in self._config.webhooks:
            task = asyncio.create_task(self._post_with_retries(url, payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.webhook_timeout_s)
            )
            self._own_session = True
        return self._session

    async def _post_with_retries(self, url: str, payload: dict[str, Any]) -> None:
        where = webhook_label(url)
        attempts = 1 + max(0, self._config.webhook_retries)
        for attempt in range(attempts):
            retry_after_s: float | None = None
            try:
                async with self._client().post(
                    url,
                    json=payload,
                    timeout=aiohttp.ClientTimeout(total=self._config.webhook_timeout_s),
                ) as response:
                    if response.status < 300:
                        log.debug("webhook_delivered", webhook=where, attempt=attempt + 1)
                        return
                    problem = f"HTTP {response.status}"
                    if response.status != 429 and response.status < 500:
                        log.error("webhook_rejected", webhook=where, status=response.status)
                        self._metrics.count_alert(payload["kind"], "failed")
                        return
                    retry_after_s = _retry_after(response.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
            if attempt + 1 < attempts:
                delay = min(self._backoff_max_s, self._backoff_base_s * 2**attempt)
                if retry_after_s is not None:
                    delay = min(self._backoff_max_s, max(delay, retry_after_s))
                log.warning(
                    "webhook_retry",
                    webhook=where,
                    attempt=attempt + 1,
                    problem=problem,
                    delay_s=delay,
                )
                await asyncio.sleep(delay)
        log.error("webhook_failed", webhook=where, attempts=attempts, problem=problem)
        self._metrics.count_alert(payload["kind"], "failed")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
