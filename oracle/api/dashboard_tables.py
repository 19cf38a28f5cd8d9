"""The dashboard's tables: sources' health, recent disagreements, publications and their txs.

Pure HTML fragments for ``oracle.api.dashboard_page`` (which draws the rest of
the page). Everything a source or a peer said is escaped, and messages that may
carry a URL are scrubbed of credentials (``oracle.api.views.scrub``), as in the
JSON API. Hashes are shown whole (operators copy them), wrapped anywhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from oracle.api.views import scrub
from oracle.index.bme import format_decimal
from oracle.monitor.health import ReadinessReport, SourceHealth
from oracle.store.records import (
    DisagreementRecord,
    RetargetRecord,
    SourceHealthSummary,
    SubmissionRecord,
    SubmissionTxRecord,
)


@dataclass(frozen=True, slots=True)
class Publication:
    """A published epoch: its retarget (with ``publications``), its submission and attempts."""

    retarget: RetargetRecord
    submission: SubmissionRecord | None
    transactions: tuple[SubmissionTxRecord, ...]


def _esc(value: object) -> str:
    return html.escape(str(value))


def utc_text(moment: int | datetime | None, *, date_only: bool = False) -> str:
    """``2024-04-20 00:09 UTC`` (or ``2024-04-20``) from unix seconds or an aware datetime."""
    if moment is None:
        return "never"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d") if date_only else moment.strftime("%Y-%m-%d %H:%M UTC")


def _badge(ok: bool, text: str) -> str:
    return f'<span class="badge {"ok" if ok else "bad"}">{_esc(text)}</span>'


def _table(label: str, caption: str, head: Sequence[str], rows: Sequence[str]) -> str:
    columns = "".join(f'<th scope="col">{_esc(h)}</th>' for h in head)
    return (
        f'<div class="scroll" tabindex="0" role="region" aria-label="{_esc(label)}">'
        f"<table><caption>{_esc(caption)}</caption><thead><tr>{columns}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _section(ident: str, title: str, body: str) -> str:
    return f'<section aria-labelledby="h-{ident}"><h2 id="h-{ident}">{title}</h2>{body}</section>'


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _verdict(current: SourceHealth | None) -> str:
    if current is None:
        return '<span class="muted">not judged</span>'
    reason = f" {_esc(scrub(current.reason))}" if current.reason else ""
    return _badge(current.healthy, "healthy" if current.healthy else "unhealthy") + reason


_SOURCE_COLUMNS = (
    "Source",
    "Now",
    "Calls",
    "OK",
    "Errors",
    "Error kinds",
    "Latency avg / max (ms)",
    "Last OK",
    "Last error",
)


def sources_section(
    readiness: ReadinessReport | None,
    readiness_error: str | None,
    summaries: Sequence[SourceHealthSummary],
    since: int,
) -> str:
    """The ``/ready`` verdict and, per source, its verdict now and its samples since ``since``."""
    if readiness is None:
        verdict = f'<p class="note">Readiness unavailable: {_esc(readiness_error)}</p>'
        current: dict[str, SourceHealth] = {}
    else:
        reasons = "; ".join(scrub(r) or "" for r in readiness.reasons)
        verdict = (
            f"<p>{_badge(readiness.ready, 'ready' if readiness.ready else 'not ready')} "
            f"{_esc(reasons)} Quorum: {readiness.quorum} sources; database "
            f"{'reachable' if readiness.database_ok else 'unreachable'}; chain "
            f"{'reachable' if readiness.chain_ok else 'unreachable'}.</p>"
        )
        current = {s.name: s for s in readiness.sources}
    by_name = {s.source: s for s in summaries}
    rows = []
    for name in sorted(set(current) | set(by_name)):
        summary = by_name.get(name)
        if summary is None:
            samples = '<td class="num">0</td>' * 3 + "<td></td><td>n/a</td>" + "<td>never</td>" * 2
        else:
            kinds = ", ".join(f"{k}: {v}" for k, v in sorted(summary.error_kinds.items()))
            samples = (
                f'<td class="num">{summary.samples:,}</td><td class="num">{summary.ok_count:,}</td>'
                f'<td class="num">{summary.error_count:,}</td><td>{_esc(kinds)}</td>'
                f"<td>{_ms(summary.latency_avg_ms)} / {_ms(summary.latency_max_ms)}</td>"
                f"<td>{utc_text(summary.last_ok_at)}</td>"
                f"<td>{utc_text(summary.last_error_at)}"
                + (f" ({_esc(summary.last_error_kind)})" if summary.last_error_kind else "")
                + "</td>"
            )
        verdict_cell = f"<td>{_verdict(current.get(name))}</td>"
        rows.append(f'<tr><th scope="row">{_esc(name)}</th>{verdict_cell}{samples}</tr>')
    table = (
        _table(
            "Sources' health table",
            f"Calls to each source since {utc_text(since)}",
            _SOURCE_COLUMNS,
            rows,
        )
        if rows
        else '<p class="muted">No source has been called or judged yet.</p>'
    )
    return _section("sources", "Sources' health", verdict + table)


def _claims(claims: dict[str, Any]) -> str:
    items = "".join(
        f"<li>{_esc(source)}: <code>"
        f"{_esc(scrub(value if isinstance(value, str) else json.dumps(value, sort_keys=True)))}"
        "</code></li>"
        for source, value in sorted(claims.items())
    )
    return f"<ul>{items}</ul>"


def disagreements_section(disagreements: Sequence[DisagreementRecord]) -> str:
    """The newest disagreements between sources (or conflicting peer signatures)."""
    rows = [
        f'<tr><th scope="row">{d.epoch}</th><td>{_esc(d.kind)}</td><td>{_esc(d.field)}</td>'
        f"<td>{_claims(d.claims)}</td><td>{utc_text(d.recorded_at)}</td></tr>"
        for d in disagreements
    ]
    body = (
        _table(
            "Disagreements table",
            f"The {len(rows)} most recent, newest first",
            ("Epoch", "Kind", "Field", "Claims", "Recorded"),
            rows,
        )
        if rows
        else '<p class="muted">No disagreement recorded.</p>'
    )
    return _section("disagreements", "Recent disagreements", body)


def _gwei(wei: int) -> str:
    return format_decimal(Fraction(wei, 10**9), 3)


def _transactions(item: Publication) -> str:
    if item.submission is None:
        return '<span class="muted">no submission stored (published by another node)</span>'
    attempts = "".join(
        f"<li>nonce {tx.nonce}: <code>{_esc(tx.tx_hash)}</code>, max fee "
        f"{_gwei(tx.max_fee_per_gas)} gwei (tip {_gwei(tx.max_priority_fee_per_gas)}), "
        + (f"gas used {tx.gas_used:,}, " if tx.gas_used is not None else "")
        + f"sent {utc_text(tx.sent_at)}</li>"
        for tx in item.transactions
    )
    return (
        f"submission {item.submission.id}: {_esc(item.submission.state)}, "
        f"{len(item.transactions)} attempt(s)" + (f"<ul>{attempts}</ul>" if attempts else "")
    )


def publications_section(publications: Sequence[Publication]) -> str:
    """The newest published epochs: where, by which transaction, and every attempt made."""
    rows = []
    for item in publications:
        record = item.retarget
        for pub in record.publications:
            rows.append(
                f'<tr><th scope="row">{record.epoch}</th><td class="num">{record.height:,}</td>'
                f"<td>{utc_text(pub.published_at)}</td>"
                f"<td>chain {pub.chain_id}<br><code>{_esc(pub.contract_address)}</code></td>"
                f"<td><code>{_esc(pub.tx_hash or 'found on chain')}</code></td>"
                f"<td>{_transactions(item)}</td></tr>"
            )
    body = (
        _table(
            "Publications table",
            f"The {len(publications)} most recently published epochs, newest first",
            ("Epoch", "Height", "Published", "Chain and contract", "Transaction", "Submission"),
            rows,
        )
        if rows
        else '<p class="muted">Nothing published yet.</p>'
    )
    return _section("publications", "Publications", body)
