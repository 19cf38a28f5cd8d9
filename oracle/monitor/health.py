"""Readiness: may this oracle be trusted to serve and publish right now? (``/ready``)

Pure evaluation of facts the daemon gathers (database ping, per-source health,
chain reachability). Fail closed, as STYLE.md asks: not ready unless every
condition holds, and the report says *why* in plain words so an operator
reading ``/ready`` (or a 503 from it) knows what to fix. ``/health`` is
liveness only and does not use this.

The daemon's probes go through ``CachedProbe``: ``/ready`` may be polled by
every load balancer and dashboard at once, and each poll must not become a
database round trip and a chain read (on a public block API that is rate
limited to about one request a second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from oracle.monitor.cache import Refreshing


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One block source's health as judged now."""

    name: str
    healthy: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """The verdict and its reasons; ``reasons`` is empty exactly when ``ready``."""

    ready: bool
    reasons: tuple[str, ...]
    database_ok: bool
    chain_ok: bool
    quorum: int
    sources: tuple[SourceHealth, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """The ``/ready`` body (no URLs, no credentials: names and reasons only)."""
        return {
            "ready": self.ready,
            "reasons": list(self.reasons),
            "checks": {
                "database": self.database_ok,
                "chain": self.chain_ok,
                "sources": {
                    "quorum": self.quorum,
                    "healthy": sum(1 for s in self.sources if s.healthy),
                    "detail": [
                        {"name": s.name, "healthy": s.healthy, "reason": s.reason}
                        for s in self.sources
                    ],
                },
            },
        }


def evaluate_readiness(
    *,
    database_ok: bool,
    sources: Sequence[SourceHealth],
    quorum: int,
    chain_ok: bool,
    database_error: str = "",
    chain_error: str = "",
) -> ReadinessReport:
    """Ready when the database answers, >= ``quorum`` sources are healthy and the chain answers."""
    reasons: list[str] = []
    if not database_ok:
        reasons.append(
            f"database unreachable: {database_error}" if database_error else "database unreachable"
        )
    healthy = [s for s in sources if s.healthy]
    if len(healthy) < quorum:
        detail = "; ".join(f"{s.name}: {s.reason or 'unhealthy'}" for s in sources if not s.healthy)
        reasons.append(
            f"{len(healthy)} of {len(sources)} sources healthy, quorum is {quorum}"
            + (f" ({detail})" if detail else "")
        )
    if not chain_ok:
        reasons.append(f"chain unreachable: {chain_error}" if chain_error else "chain unreachable")
    return ReadinessReport(
        ready=not reasons,
        reasons=tuple(reasons),
        database_ok=database_ok,
        chain_ok=chain_ok,
        quorum=quorum,
        sources=tuple(sources),
    )


def judge_source(
    name: str,
    *,
    now: float,
    stale_after_s: float,
    last_success_at: float | None,
    last_failure_at: float | None = None,
    last_failure: str = "",
    last_rejected_at: float | None = None,
    last_rejection: str = "",
    last_verified_at: float | None = None,
    feed_down: str = "",
) -> SourceHealth:
    """Judge one source from its last success and last failure (unix seconds).

    Unhealthy when it never answered, when its last answer is older than
    ``stale_after_s`` (``MonitorConfig.source_stale_after_s``), when its
    latest request failed, when its block feed is down (``feed_down`` says
    why), or when its latest retarget answer failed the oracle's own
    verification (``last_rejected_at`` newer than ``last_verified_at``): an
    answer that cannot be trusted is no better than none. A rejection counts
    for ``stale_after_s``, so one bad answer for an epoch that is then agreed
    (and not asked again) does not leave the source red for two weeks.
    """
    if feed_down:
        return SourceHealth(name, False, f"block feed down: {feed_down}")
    if last_success_at is None:
        reason = (
            f"no successful request yet ({last_failure})"
            if last_failure
            else "no successful request yet"
        )
        return SourceHealth(name, False, reason)
    if last_failure_at is not None and last_failure_at > last_success_at:
        return SourceHealth(name, False, f"failing: {last_failure or 'last request failed'}")
    age = now - last_success_at
    if age > stale_after_s:
        return SourceHealth(name, False, f"stale: last success {age:.0f} s ago")
    if (
        last_rejected_at is not None
        and (last_verified_at is None or last_rejected_at > last_verified_at)
        and now - last_rejected_at <= stale_after_s
    ):
        return SourceHealth(
            name, False, f"answers fail verification: {last_rejection or 'unverified'}"
        )
    return SourceHealth(name, True)


async def gather_readiness(
    *,
    ping_database: Callable[[], Awaitable[object]],
    reach_chain: Callable[[], Awaitable[object]] | None,
    sources: Sequence[SourceHealth],
    quorum: int,
    timeout_s: float = 2.0,
) -> ReadinessReport:
    """Probe the database and the chain (each with a deadline) and evaluate readiness.

    The daemon's ``readiness`` callable is typically this, bound to
    ``repository.ping``, a chain tip read and its current source verdicts. A
    probe that raises or times out becomes a reason, never an exception:
    ``/ready`` must answer 503 with the cause, not 500.
    """
    database_ok, database_error = await _probe(ping_database, timeout_s)
    if reach_chain is None:
        chain_ok, chain_error = False, "no chain connection configured"
    else:
        chain_ok, chain_error = await _probe(reach_chain, timeout_s)
    return evaluate_readiness(
        database_ok=database_ok,
        database_error=database_error,
        sources=sources,
        quorum=quorum,
        chain_ok=chain_ok,
        chain_error=chain_error,
    )


async def _probe(probe: Callable[[], Awaitable[object]], timeout_s: float) -> tuple[bool, str]:
    try:
        await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        return False, f"no answer within {timeout_s:g} s"
    except Exception as exc:
        # The exception's class and first line; messages from our own error tree
        # carry no credentials (URLs are redacted where they are raised).
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return False, f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return True, ""


class CachedProbe:
    """A readiness probe run at most once per ``ttl_s``, however many callers ask.

    Calling it re-raises the last probe's failure (or returns) like the probe
    itself would; callers within ``ttl_s`` of the last probe share its outcome,
    and concurrent callers share the probe in flight. The probe runs under its
    own ``timeout_s``, so a hung backend is a failure, not a stuck probe.
    """

    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        *,
        ttl_s: float,
        timeout_s: float = 2.0,
        name: str = "probe",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.timeout_s = timeout_s
        self._cache: Refreshing[None] = Refreshing(
            self._run, ttl_s=ttl_s, error_ttl_s=ttl_s, name=name, clock=clock
        )

    @property
    def runs(self) -> int:
        """How many times the probe itself has run."""
        return self._cache.loads

    async def _run(self) -> None:
        await asyncio.wait_for(self.probe(), self.timeout_s)

    async def __call__(self) -> None:
        await self._cache.get()

    async def close(self) -> None:
        await self._cache.close()
