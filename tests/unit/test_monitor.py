"""Metrics registry isolation and content; readiness verdicts and their reasons."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from oracle.monitor.health import SourceHealth, evaluate_readiness, judge_source
from oracle.monitor.metrics import Metrics


def test_two_metrics_instances_do_not_share_samples() -> None:
    first, second = Metrics("mainnet"), Metrics("regtest")
    first.count_disagreement("bits")
    assert first.sample("bme_oracle_disagreements_total", {"field": "bits"}) == 1
    assert second.sample("bme_oracle_disagreements_total", {"field": "bits"}) is None
    assert second.sample("bme_oracle_info", {"network": "regtest"}) == 1


def test_tip_lag_is_measured_against_the_best_source() -> None:
    metrics = Metrics()
    metrics.set_source_tip("bitcoind", 830_000)
    metrics.set_source_tip("esplora", 829_998)
    lag = "bme_oracle_source_tip_lag_blocks"
    assert metrics.sample(lag, {"source": "bitcoind"}) == 0
    assert metrics.sample(lag, {"source": "esplora"}) == 2
    metrics.set_source_tip("esplora", 830_003)  # now esplora leads
    assert metrics.sample(lag, {"source": "bitcoind"}) == 3
    assert metrics.sample(lag, {"source": "esplora"}) == 0


def test_every_pipeline_fact_lands_in_the_exposition() -> None:
    metrics = Metrics()
    metrics.observe_source_request("bitcoind", "header_at", 0.012)
    metrics.count_source_error("esplora", "timeout")
    metrics.set_source_healthy("esplora", False)
    metrics.set_last_agreed_epoch(411)
    metrics.set_last_published_epoch(410)
    metrics.set_tip_height(830_027)
    metrics.set_submission_states({"broadcast": 1, "confirmed": 7})
    metrics.set_submission_states({"confirmed": 8})  # broadcast drops back to 0
    metrics.count_submission_transition("confirmed")
    metrics.observe_gas_used(123_456)
    metrics.observe_publication_lag(4_200.0)
    metrics.set_signer_balance(10**17)
    metrics.count_readback_mismatch()
    metrics.count_peer_conflict("peer-a")
    metrics.count_alert("disagreement", "sent")
    metrics.count_tick("ok")
    metrics.observe_api_request("/health", "GET", 200, 0.0002)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "bme_oracle_source_request_seconds",
        "bme_oracle_source_errors",
        "bme_oracle_source_healthy",
        "bme_oracle_last_agreed_epoch",
        "bme_oracle_last_published_epoch",
        "bme_oracle_submissions",
        "bme_oracle_gas_used",
        "bme_oracle_publication_lag_seconds",
        "bme_oracle_alerts",
        "bme_oracle_peer_conflicts",
        "bme_oracle_api_requests",
    ):
        assert name in families, name
    assert metrics.sample("bme_oracle_submissions", {"state": "broadcast"}) == 0
    assert metrics.sample("bme_oracle_submissions", {"state": "confirmed"}) == 8
    assert metrics.sample("bme_oracle_gas_used_sum") == 123_456
    assert metrics.sample("bme_oracle_last_published_epoch") == 410
    assert (metrics.sample("process_resident_memory_bytes") or 0) > 10_000_000  # this process
    assert "python_info" in families


def test_ready_only_when_everything_holds() -> None:
    healthy = [SourceHealth("bitcoind", True), SourceHealth("esplora", True)]
    report = evaluate_readiness(database_ok=True, sources=healthy, quorum=2, chain_ok=True)
    assert report.ready and report.reasons == ()
    assert report.to_json()["checks"]["sources"]["healthy"] == 2


def test_not_ready_lists_every_reason() -> None:
    sources = [SourceHealth("bitcoind", True), SourceHealth("esplora", False, "stale: 4000 s")]
    report = evaluate_readiness(
        database_ok=False,
        database_error="connection refused",
        sources=sources,
        quorum=2,
        chain_ok=False,
    )
    assert not report.ready
    assert report.reasons == (
        "database unreachable: connection refused",
        "1 of 2 sources healthy, quorum is 2 (esplora: stale: 4000 s)",
        "chain unreachable",
    )
    assert report.to_json()["ready"] is False


def test_judge_source() -> None:
    now = 10_000.0
    assert judge_source("a", now=now, stale_after_s=3600, last_success_at=now - 10).healthy
    never = judge_source("a", now=now, stale_after_s=3600, last_success_at=None)
    assert not never.healthy and "no successful request" in never.reason
    stale = judge_source("a", now=now, stale_after_s=3600, last_success_at=now - 4000)
    assert not stale.healthy and stale.reason == "stale: last success 4000 s ago"
    failing = judge_source(
        "a",
        now=now,
        stale_after_s=3600,
        last_success_at=now - 100,
        last_failure_at=now - 5,
        last_failure="timeout",
    )
    assert not failing.healthy and failing.reason == "failing: timeout"
    recovered = judge_source(
        "a", now=now, stale_after_s=3600, last_success_at=now - 1, last_failure_at=now - 5
    )
    assert recovered.healthy
