"""JSON shapes of the API's answers, built from store records and status estimates.

Pure. Values that must stay exact never pass through a float: bits are hex
strings, difficulties and index values are decimal strings (truncated, with
the exact fraction alongside), the on-chain 10^18 integer is a decimal string
(JSON numbers lose precision above 2^53). Floats appear only for display
percentages. The shapes are mirrored by the schemas in ``oracle.api.openapi``; a
test fuzzes one against the other. The history series (``/v1/index/{n}/history``,
``/v1/difficulty/history``) have one point shape each, written as JSON objects
or as CSV rows with the same columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from oracle.bitcoin.difficulty import difficulty_from_bits
from oracle.index.bme import BmeValue, format_decimal, format_scientific
from oracle.monitor.alerts import scrub_credentials
from oracle.monitor.health import ReadinessReport, SourceHealth
from oracle.monitor.status import RetargetEstimate
from oracle.sources.checks import elide_upstream
from oracle.store.records import (
    DisagreementRecord,
    IndexRecord,
    ObservationRecord,
    PublicationRecord,
    RetargetRecord,
)

#: Decimal places of index values (exact fraction given too).
INDEX_DIGITS = 30
#: Decimal places of difficulties.
DIFFICULTY_DIGITS = 8


def scrub(text: str | None) -> str | None:
    """A message fit for a public answer: our own words only, no credentials.

    Whatever a source sent, quoted in the message as an excerpt
    (``oracle.sources.checks.upstream``), becomes ``«…»``: the API never echoes
    upstream content (logs keep it). Credentials and API keys in URLs become ``***``.
    """
    return scrub_credentials(elide_upstream(text)) if text is not None else None


def public_readiness(report: ReadinessReport) -> ReadinessReport:
    """The readiness report with every reason passed through ``scrub``."""
    return dataclasses.replace(
        report,
        reasons=tuple(scrub(r) or "" for r in report.reasons),
        sources=tuple(
            SourceHealth(s.name, s.healthy, scrub(s.reason) or "") for s in report.sources
        ),
    )


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def bits_hex(bits: int) -> str:
    return f"{bits:08x}"


def fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def retarget_json(record: RetargetRecord) -> dict[str, Any]:
    return {
        "epoch": record.epoch,
        "height": record.height,
        "block_hash": record.block_hash_hex,
        "bits": bits_hex(record.bits),
        "difficulty": format_decimal(difficulty_from_bits(record.bits), DIFFICULTY_DIGITS),
        "time": record.time,
        "status": record.status,
        "sources": list(record.sources),
        "observed_at": iso(record.observed_at),
        "agreed_at": iso(record.agreed_at),
        "published_at": iso(record.published_at),
        "orphaned_at": iso(record.orphaned_at),
    }


def observation_json(record: ObservationRecord) -> dict[str, Any]:
    return {
        "source": record.source,
        "ok": record.ok,
        "height": record.height,
        "block_hash": record.block_hash_hex,
        "bits": bits_hex(record.bits) if record.bits is not None else None,
        "time": record.time,
        "error_kind": record.error_kind,
        "error_message": scrub(record.error_message),
        "observed_at": iso(record.observed_at),
        "last_observed_at": iso(record.last_observed_at),
    }


def publication_json(record: PublicationRecord) -> dict[str, Any]:
    return {
        "chain_id": record.chain_id,
        "contract_address": record.contract_address,
        "tx_hash": record.tx_hash,
        "block_hash": record.block_hash_hex,
        "published_at": iso(record.published_at),
    }


def retarget_detail_json(
    record: RetargetRecord, indices: list[IndexRecord] | None = None
) -> dict[str, Any]:
    body = retarget_json(record)
    body["header_hex"] = record.raw_header.hex() if record.raw_header is not None else None
    body["observations"] = [observation_json(o) for o in record.observations]
    body["publications"] = [publication_json(p) for p in record.publications]
    body["other_blocks"] = [retarget_json(r) for r in record.others]
    body["indices"] = [
        {
            "n_days": i.n_days,
            "value": format_decimal(i.value, INDEX_DIGITS),
            "value_exact": fraction_text(i.value),
            "value_fixed": str(i.fixed),
        }
        for i in indices or []
    ]
    return body


def index_json(
    *,
    network: str,
    value: BmeValue | IndexRecord,
    height: int,
    retarget_time: int,
    status: str,
    at: int | None,
    stored: bool,
) -> dict[str, Any]:
    return {
        "network": network,
        "n_days": value.n_days,
        "epoch": value.epoch,
        "height": height,
        "retarget_time": retarget_time,
        "status": status,
        "at": at,
        "value": format_decimal(value.value, INDEX_DIGITS),
        "value_exact": fraction_text(value.value),
        "value_scientific": format_scientific(value.value),
        "value_fixed": str(value.fixed),
        "stored": stored,
    }


def disagreement_json(record: DisagreementRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "epoch": record.epoch,
        "kind": record.kind,
        "field": record.field,
        "claims": record.claims,
        "evidence": record.evidence,
        "recorded_at": iso(record.recorded_at),
    }


def status_json(
    network: str,
    estimate: RetargetEstimate,
    latest: RetargetRecord | None,
    sources: Sequence[SourceHealth] = (),
) -> dict[str, Any]:
    """``/v1/status``: mempool-compatible figures (snake_case) plus exact values and BME14,
    and each block source's health (reasons in the oracle's own words, ``scrub``)."""
    projected = estimate.projected_bme14
    return {
        "network": network,
        "now": estimate.now,
        "tip": {"height": estimate.tip_height, "time": estimate.tip_time},
        "epoch": estimate.epoch,
        "blocks_in_epoch": estimate.blocks_in_epoch,
        "progress_percent": estimate.progress_percent,
        "remaining_blocks": estimate.remaining_blocks,
        "next_retarget_height": estimate.next_retarget_height,
        "epoch_start_time": estimate.epoch_start_time,
        "current_bits": bits_hex(estimate.current_bits),
        "current_difficulty": format_decimal(estimate.current_difficulty, DIFFICULTY_DIGITS),
        "previous_retarget_percent": (
            float(estimate.previous_retarget_percent)
            if estimate.previous_retarget_percent is not None
            else None
        ),
        "previous_retarget_percent_exact": (
            fraction_text(estimate.previous_retarget_percent)
            if estimate.previous_retarget_percent is not None
            else None
        ),
        "difficulty_change_percent": float(estimate.difficulty_change_percent),
        "difficulty_change_percent_exact": fraction_text(estimate.difficulty_change_percent),
        "estimated_next_difficulty": format_decimal(
            estimate.estimated_next_difficulty, DIFFICULTY_DIGITS
        ),
        "locked_in": estimate.locked_in,
        "next_bits": bits_hex(estimate.next_bits) if estimate.next_bits is not None else None,
        "sliding_window": estimate.used_sliding_window,
        "time_avg_ms": estimate.time_avg_ms,
        "adjusted_time_avg_ms": estimate.adjusted_time_avg_ms,
        "remaining_time_ms": estimate.remaining_time_ms,
        "estimated_retarget_time_ms": estimate.estimated_retarget_date_ms,
        "expected_blocks": float(estimate.expected_blocks),
        "projected_bme14": {
            "epoch": projected.epoch,
            "value": format_decimal(projected.value, INDEX_DIGITS),
            "value_exact": fraction_text(projected.value),
            "value_scientific": format_scientific(projected.value),
            "value_fixed": str(projected.fixed),
        },
        "oracle": {
            "latest_epoch": latest.epoch if latest is not None else None,
            "latest_status": latest.status if latest is not None else None,
        },
        "sources": [
            {"name": s.name, "healthy": s.healthy, "reason": scrub(s.reason) or ""} for s in sources
        ],
    }


#: Columns of a ``/v1/index/{n}/history`` point (JSON keys and CSV header alike).
INDEX_POINT_FIELDS = (
    "epoch",
    "height",
    "time",
    "value",
    "value_scientific",
    "value_fixed",
    "value_exact",
)
#: Columns of a ``/v1/difficulty/history`` point.
DIFFICULTY_POINT_FIELDS = ("epoch", "height", "time", "bits", "difficulty")


def index_point_json(value: BmeValue | IndexRecord, *, height: int, time: int) -> dict[str, Any]:
    """One point of an index history: the value in force from this retarget on."""
    return {
        "epoch": value.epoch,
        "height": height,
        "time": time,
        "value": format_decimal(value.value, INDEX_DIGITS),
        "value_scientific": format_scientific(value.value),
        "value_fixed": str(value.fixed),
        "value_exact": fraction_text(value.value),
    }


def difficulty_point_json(record: RetargetRecord) -> dict[str, Any]:
    """One point of the difficulty history: an agreed retarget's bits and difficulty."""
    return {
        "epoch": record.epoch,
        "height": record.height,
        "time": record.time,
        "bits": bits_hex(record.bits),
        "difficulty": format_decimal(difficulty_from_bits(record.bits), DIFFICULTY_DIGITS),
    }


def csv_header(fields: Sequence[str]) -> bytes:
    return (",".join(fields) + "\r\n").encode()


def csv_row(point: dict[str, Any], fields: Sequence[str]) -> bytes:
    """One RFC 4180 row. Every value is a number, hex or decimal text: nothing to quote."""
    return (",".join(str(point[name]) for name in fields) + "\r\n").encode()
