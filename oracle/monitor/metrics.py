"""Prometheus metrics of the oracle, served at ``/metrics``.

Every stage reports here through named methods (``observe_source_request``,
``count_disagreement``, ``set_last_published_epoch`` ...) instead of touching
prometheus objects, so metric names and labels live in one place. Each
``Metrics`` owns its own ``CollectorRegistry`` rather than the process-global
one: several oracles (or test apps) can coexist in one process without
"Duplicated timeseries" errors, and ``/metrics`` shows exactly this oracle.

Label values are bounded sets (source names from the configuration, error
kinds, submission states, alert kinds, route templates) so cardinality stays
small; never a height, hash or URL.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

NAMESPACE = "bme_oracle"

#: Source request latency buckets (seconds): local RPC is ms, public APIs up to seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Publication lag buckets (seconds): from the retarget block's header time to confirmation.
PUBLICATION_LAG_BUCKETS_S = (60, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
#: Gas used by one report transaction.
GAS_BUCKETS = (50_000, 100_000, 150_000, 200_000, 300_000, 500_000, 1_000_000, 2_000_000)
#: API request latency buckets (seconds).
API_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The oracle's metrics in a private registry; one instance per running oracle."""

    def __init__(self, network: str = "mainnet") -> None:
        self.network = network
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Standard process_* (resident memory, CPU, open fds) and python_info series,
        # which the global registry would have carried.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        Gauge(
            f"{NAMESPACE}_info", "Static facts about this oracle", ["network"], registry=r
        ).labels(network=network).set(1)
        self._source_latency = Histogram(
            f"{NAMESPACE}_source_request_seconds",
            "Latency of requests to block sources",
            ["source", "operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self._source_errors = Counter(
            f"{NAMESPACE}_source_errors",
            "Failed source requests by error kind (timeout, malformed, ...)",
            ["source", "kind"],
            registry=r,
        )
        self._source_tip = Gauge(
            f"{NAMESPACE}_source_tip_height",
            "Best height each source reports",
            ["source"],
            registry=r,
        )
        self._source_lag = Gauge(
            f"{NAMESPACE}_source_tip_lag_blocks",
            "Blocks each source is behind the best tip seen from any source",
            ["source"],
            registry=r,
        )
        self._source_healthy = Gauge(
            f"{NAMESPACE}_source_healthy",
            "1 if the source is healthy, else 0",
            ["source"],
            registry=r,
        )
        self._source_stale = Gauge(
            f"{NAMESPACE}_source_stale",
            "1 if the source has not answered for monitor.source_stale_after_s, else 0",
            ["source"],
            registry=r,
        )
        self._disagreements = Counter(
            f"{NAMESPACE}_disagreements",
            "Disagreements between sources, by field (hash, bits, time, ...)",
            ["field"],
            registry=r,
        )
        self._last_agreed = Gauge(
            f"{NAMESPACE}_last_agreed_epoch", "Latest epoch agreed by quorum", registry=r
        )
        self._last_published = Gauge(
            f"{NAMESPACE}_last_published_epoch", "Latest epoch confirmed on chain", registry=r
        )
        self._tip_height = Gauge(
            f"{NAMESPACE}_tip_height", "Best Bitcoin height the oracle has processed", registry=r
        )
        self._submissions = Gauge(
            f"{NAMESPACE}_submissions",
            "Submissions currently in each state (signed, broadcast, mined, confirmed, ...)",
            ["state"],
            registry=r,
        )
        self._submission_transitions = Counter(
            f"{NAMESPACE}_submission_transitions",
            "Submission state changes, by the state entered",
            ["state"],
            registry=r,
        )
        self._gas_used = Histogram(
            f"{NAMESPACE}_gas_used",
            "Gas used by confirmed report transactions",
            buckets=GAS_BUCKETS,
            registry=r,
        )
        self._publication_lag = Histogram(
            f"{NAMESPACE}_publication_lag_seconds",
            "Seconds from the retarget block's header time to on-chain confirmation",
            buckets=PUBLICATION_LAG_BUCKETS_S,
            registry=r,
        )
        self._alerts = Counter(
            f"{NAMESPACE}_alerts",
            "Alerts raised, by kind and outcome (sent, suppressed, failed, resolved)",
            ["kind", "outcome"],
            registry=r,
        )
        self._peer_conflicts = Counter(
            f"{NAMESPACE}_peer_conflicts",
            "Peers seen signing two different reports for one epoch",
            ["peer"],
            registry=r,
        )
        self._readback_mismatches = Counter(
            f"{NAMESPACE}_readback_mismatches",
            "On-chain values found different from the database",
            registry=r,
        )
        self._signer_balance = Gauge(
            f"{NAMESPACE}_signer_balance_wei",
            "Balance of the transaction sender, in wei",
            registry=r,
        )
        self._signer_balance_minimum = Gauge(
            f"{NAMESPACE}_signer_balance_minimum_wei",
            "monitor.min_signer_balance_wei, set with each balance check (0 before the first)",
            registry=r,
        )
        self._publication_late = Gauge(
            f"{NAMESPACE}_publication_late_epochs",
            "Agreed epochs still unpublished monitor.publication_late_s after their retarget block",
            registry=r,
        )
        self._publish_failures = Counter(
            f"{NAMESPACE}_publish_failures",
            "Failed attempts to publish an agreed epoch (retried every 15 s)",
            registry=r,
        )
        self._orphaned_published = Counter(
            f"{NAMESPACE}_orphaned_published",
            "Published retargets found to have left the best chain",
            registry=r,
        )
        self._ticks = Counter(
            f"{NAMESPACE}_pipeline_ticks", "Pipeline ticks, by outcome", ["outcome"], registry=r
        )
        self._api_requests = Counter(
            f"{NAMESPACE}_api_requests",
            "HTTP API requests, by route template and status",
            ["route", "method", "status"],
            registry=r,
        )
        self._api_latency = Histogram(
            f"{NAMESPACE}_api_request_seconds",
            "HTTP API handler latency",
            ["route"],
            buckets=API_BUCKETS_S,
            registry=r,
        )
        self._api_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._source_tips: dict[str, int] = {}

    # -- sources -----------------------------------------------------------------------------

    def observe_source_request(self, source: str, operation: str, seconds: float) -> None:
        """One request to a source took ``seconds`` (success or failure)."""
        self._source_latency.labels(source=source, operation=operation).observe(seconds)

    def count_source_error(self, source: str, kind: str) -> None:
        """A source request failed; ``kind`` as in ``oracle.sources.types.error_kind``."""
        self._source_errors.labels(source=source, kind=kind).inc()

    def set_source_tip(self, source: str, height: int) -> None:
        """A source reported its tip; recomputes every source's lag behind the best tip."""
        self._source_tips[source] = height
        self._source_tip.labels(source=source).set(height)
        best = max(self._source_tips.values())
        for name, tip in self._source_tips.items():
            self._source_lag.labels(source=name).set(best - tip)

    def set_source_healthy(self, source: str, healthy: bool) -> None:
        self._source_healthy.labels(source=source).set(1 if healthy else 0)

    def set_source_stale(self, source: str, stale: bool) -> None:
        """Whether the source is unhealthy because it has been silent too long."""
        self._source_stale.labels(source=source).set(1 if stale else 0)

    # -- cross-check, store, index -----------------------------------------------------------

    def count_disagreement(self, field: str) -> None:
        """Sources disagreed on ``field`` (block_hash, bits, time, height, ...)."""
        self._disagreements.labels(field=field).inc()

    def set_last_agreed_epoch(self, epoch: int) -> None:
        self._last_agreed.set(epoch)

    def set_tip_height(self, height: int) -> None:
        self._tip_height.set(height)

    def count_tick(self, outcome: str) -> None:
        """One pipeline tick ended with ``outcome`` (ok, held, failed)."""
        self._ticks.labels(outcome=outcome).inc()

    # -- publication -------------------------------------------------------------------------

    def set_last_published_epoch(self, epoch: int) -> None:
        self._last_published.set(epoch)

    def set_submission_states(self, counts: dict[str, int]) -> None:
        """How many submissions are in each state now (states absent from ``counts`` -> 0)."""
        for state in set(counts) | self._known_submission_states():
            self._submissions.labels(state=state).set(counts.get(state, 0))

    def count_submission_transition(self, state: str) -> None:
        """A submission entered ``state``."""
        self._submission_transitions.labels(state=state).inc()

    def observe_gas_used(self, gas: int) -> None:
        self._gas_used.observe(gas)

    def observe_publication_lag(self, seconds: float) -> None:
        """Retarget header time -> confirmation, for one published epoch."""
        self._publication_lag.observe(max(0.0, seconds))

    def set_signer_balance(self, wei: int) -> None:
        self._signer_balance.set(wei)

    def set_signer_balance_minimum(self, wei: int) -> None:
        """The balance below which ``signer_balance_low`` fires (``min_signer_balance_wei``)."""
        self._signer_balance_minimum.set(wei)

    def set_publication_late_epochs(self, count: int) -> None:
        """How many agreed epochs are unpublished past ``publication_late_s`` now."""
        self._publication_late.set(count)

    def count_publish_failure(self) -> None:
        """Publishing an agreed epoch failed (it is retried)."""
        self._publish_failures.inc()

    def count_orphaned_published(self) -> None:
        """A published retarget left the best chain."""
        self._orphaned_published.inc()

    def count_readback_mismatch(self) -> None:
        self._readback_mismatches.inc()

    def count_peer_conflict(self, peer: str) -> None:
        self._peer_conflicts.labels(peer=peer).inc()

    # -- monitoring and API ------------------------------------------------------------------

    def count_alert(self, kind: str, outcome: str) -> None:
        """An alert of ``kind`` was sent, suppressed (rate limit), failed or resolved."""
        self._alerts.labels(kind=kind, outcome=outcome).inc()

    def observe_api_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One API request. Called for every request, so the labelled children are kept
        (routes are templates and methods a fixed set: the key set stays small)."""
        key = (route, method, status)
        children = self._api_children.get(key)
        if children is None:
            children = (
                self._api_requests.labels(route=route, method=method, status=str(status)),
                self._api_latency.labels(route=route),
            )
            self._api_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """The current value of one sample (for tests and the status endpoint)."""
        return self.registry.get_sample_value(name, labels or {})

    def _known_submission_states(self) -> set[str]:
        return {
            sample.labels["state"]
            for metric in self._submissions.collect()
            for sample in metric.samples
        }
