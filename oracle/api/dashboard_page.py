"""The dashboard page: ``render_dashboard(data) -> str``, HTML with inline CSS and SVG charts.

Pure (no I/O): ``oracle.api.dashboard`` gathers a ``DashboardData`` and
serves what this returns. The page loads nothing (no script, no font, no
image, no CDN), so it works offline and under a Content-Security-Policy of
``default-src 'none'`` with only the hash of ``STYLE`` allowed.

Top to bottom: the current epoch's progress and the next-retarget estimate,
BME14/28/84 now and their history chart, the difficulty history chart (with
the table of both charts' data), then the tables of ``oracle.api.dashboard_tables``:
sources' health, recent disagreements, publications with their transactions.
Values are exact until formatted here (decimal strings truncated, scientific
notation rounded half-up by ``oracle.index.bme``); floats only for display
percentages, as in the JSON API.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from oracle.api.dashboard_tables import (
    Publication,
    disagreements_section,
    publications_section,
    sources_section,
    utc_text,
)
from oracle.api.svgchart import Point, Series, line_chart
from oracle.bitcoin.difficulty import EPOCH_BLOCKS, difficulty_from_bits
from oracle.index.bme import BmeValue, format_decimal
from oracle.index.bme import format_scientific as _format_scientific
from oracle.monitor.health import ReadinessReport
from oracle.monitor.status import RetargetEstimate
from oracle.store.records import AgreedEpoch, DisagreementRecord, SourceHealthSummary

__all__ = ["STYLE", "DashboardData", "Publication", "render_dashboard"]

#: Line colours (dark enough for 3:1 against the white plot, told apart by the legend too).
INDEX_COLORS = {14: "#0550ae", 28: "#8250df", 84: "#bc4c00"}
DIFFICULTY_COLOR = "#116329"
UNIT = "BTC per TH/s per day"


@dataclass(frozen=True, slots=True)
class DashboardData:
    """Everything the page shows, read at ``now`` (unix seconds); exact values throughout."""

    network: str
    now: int
    history: tuple[AgreedEpoch, ...]  # ascending; the newest epochs when capped
    history_total: int  # agreed epochs stored (history may hold fewer)
    indices: dict[int, tuple[BmeValue, ...]]  # n_days -> values for the epochs of history
    estimate: RetargetEstimate | None
    estimate_error: str | None  # why there is no estimate
    readiness: ReadinessReport | None
    readiness_error: str | None
    source_health: tuple[SourceHealthSummary, ...]
    health_since: int
    disagreements: tuple[DisagreementRecord, ...]
    publications: tuple[Publication, ...]


STYLE = """
:root{color-scheme:light;--fg:#1f2328;--muted:#57606a;--line:#d0d7de;--soft:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:#fff}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 16px}
header{padding-top:16px;border-bottom:1px solid var(--line)}
h1{font-size:1.6rem;margin:0 0 4px}
h2{font-size:1.25rem;margin:32px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:0 0 4px}
p{margin:6px 0}
a{color:#0550ae}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:12px}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 12px;background:var(--soft)}
.big{font-size:1.35rem;font-weight:600;font-variant-numeric:tabular-nums}
dl.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:4px 16px;
margin:12px 0}
dl.facts div{display:flex;justify-content:space-between;gap:8px;border-bottom:1px dotted
var(--line);padding:2px 0}
dt{color:var(--muted)}
dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
progress{width:100%;height:18px;accent-color:#0550ae}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:.85rem;font-weight:600}
.ok{background:#dafbe1;color:#0f5323}
.bad{background:#ffebe9;color:#82071e}
.note{background:#fff8c5;color:#3b2300;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px}
figure{margin:12px 0}
figure>svg{width:100%;height:auto;display:block;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:.9rem}
ul.legend{list-style:none;display:flex;flex-wrap:wrap;gap:16px;margin:4px 0;padding:0}
ul.legend svg{width:14px;height:14px;vertical-align:-2px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem;font-variant-numeric:tabular-nums}
caption{text-align:left;color:var(--muted);padding:4px 0}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft)}
td.num{text-align:right}
td ul{margin:0;padding-left:16px}
code{font-size:.85rem;overflow-wrap:anywhere}
details{margin:8px 0}
summary{cursor:pointer;color:#0550ae}
footer{margin-top:32px;padding:12px 16px 24px;border-top:1px solid var(--line);color:var(--muted)}
"""


@functools.lru_cache(maxsize=8192)
def format_scientific(value: Fraction) -> str:
    """``oracle.index.bme.format_scientific``, remembered: the history is the same on every
    page view and exact formatting of ~3,000 small fractions costs ~0.3 s."""
    return _format_scientific(value)


def _esc(value: object) -> str:
    return html.escape(str(value))


def grouped_decimal(value: Fraction, digits: int = 2) -> str:
    """An exact value truncated to ``digits`` places with thousands separators: 83,148,355.18."""
    whole, _, fraction = format_decimal(value, digits).partition(".")
    sign = "-" if whole.startswith("-") else ""
    grouped = f"{int(whole.lstrip('-')):,}"
    return f"{sign}{grouped}.{fraction}" if fraction else f"{sign}{grouped}"


def _percent(value: Fraction) -> str:
    return f"{float(value):+.2f} %"


def _duration(seconds: int) -> str:
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


def _facts(rows: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<div><dt>{_esc(k)}</dt><dd>{v}</dd></div>" for k, v in rows)
    return f'<dl class="facts">{items}</dl>'


def _bme_text(value: Fraction) -> str:
    return f"{format_scientific(value)} {UNIT}"


def _status_section(data: DashboardData) -> str:
    estimate = data.estimate
    head = '<section aria-labelledby="h-epoch"><h2 id="h-epoch">'
    if estimate is None:
        return (
            f"{head}Current epoch</h2>"
            f'<p class="note">Next-retarget estimate unavailable: {_esc(data.estimate_error)}</p>'
            "</section>"
        )
    blocks, percent = estimate.blocks_in_epoch, estimate.progress_percent
    retarget_s = estimate.estimated_retarget_date_ms // 1000
    change = _percent(estimate.difficulty_change_percent)
    if estimate.locked_in and estimate.next_bits is not None:
        change += f" (exact: next bits {estimate.next_bits:08x})"
    previous = estimate.previous_retarget_percent
    projected = estimate.projected_bme14
    facts = [
        ("Tip", f"{estimate.tip_height:,} at {utc_text(estimate.tip_time)}"),
        ("Blocks to go", f"{estimate.remaining_blocks:,}"),
        ("Next retarget at height", f"{estimate.next_retarget_height:,}"),
        (
            "Estimated retarget",
            f"{utc_text(retarget_s)} (in {_duration(retarget_s - data.now)})",
        ),
        ("Current difficulty", grouped_decimal(estimate.current_difficulty)),
        ("Estimated change", _esc(change)),
        ("Estimated next difficulty", grouped_decimal(estimate.estimated_next_difficulty)),
        ("Previous retarget", _percent(previous) if previous is not None else "n/a"),
        ("Average block time", f"{estimate.adjusted_time_avg_ms / 60_000:.2f} min"),
        (f"Projected BME14 (epoch {projected.epoch})", _esc(_bme_text(projected.value))),
    ]
    return (
        f"{head}Epoch {estimate.epoch}</h2>"
        f'<p><label for="epoch-progress">Block {blocks:,} of {EPOCH_BLOCKS:,} in this epoch '
        f"({percent:.2f} %)</label></p>"
        f'<progress id="epoch-progress" max="{EPOCH_BLOCKS}" value="{blocks}">'
        f"{percent:.2f} %</progress>"
        f"{_facts(facts)}</section>"
    )


def _time_of(data: DashboardData) -> dict[int, int]:
    return {h.epoch: h.time for h in data.history}


def index_series(data: DashboardData) -> list[Series]:
    """One series per N: BME_N at each epoch, placed at its retarget's header time."""
    times = _time_of(data)
    return [
        Series(
            key=f"bme{n}",
            name=f"BME{n}",
            color=INDEX_COLORS.get(n, "#24292f"),
            points=tuple(
                Point(
                    times[v.epoch],
                    v.value,
                    f"BME{n}, epoch {v.epoch} ({utc_text(times[v.epoch])}): {_bme_text(v.value)}",
                )
                for v in values
            ),
        )
        for n, values in sorted(data.indices.items())
    ]


def difficulty_series(data: DashboardData) -> Series:
    """The difficulty of each agreed epoch, from its bits (exact), at its header time."""
    points = tuple(
        Point(
            h.time,
            difficulty_from_bits(h.bits),
            f"Epoch {h.epoch} ({utc_text(h.time)}): difficulty "
            f"{format_scientific(difficulty_from_bits(h.bits))}",
        )
        for h in data.history
    )
    return Series("difficulty", "Difficulty", DIFFICULTY_COLOR, points)


def _span_text(data: DashboardData) -> str:
    if not data.history:
        return "no agreed epoch yet"
    first, last = data.history[0], data.history[-1]
    capped = (
        f" (the newest {len(data.history)} of {data.history_total})"
        if data.history_total > len(data.history)
        else ""
    )
    return (
        f"epochs {first.epoch} to {last.epoch}{capped}, "
        f"{utc_text(first.time, date_only=True)} to {utc_text(last.time, date_only=True)}"
    )


def _indices_section(data: DashboardData) -> str:
    cards = []
    for n, values in sorted(data.indices.items()):
        if not values:
            body = '<p class="muted">Not enough agreed epochs yet.</p>'
        else:
            latest = values[-1]
            sats = grouped_decimal(latest.value * 10**8)
            body = (
                f'<p class="big">{_esc(format_scientific(latest.value))}</p>'
                f"<p>{UNIT} ({sats} sat) at epoch {latest.epoch}</p>"
                f'<p class="muted">On chain (×10¹⁸): <code>{latest.fixed}</code></p>'
            )
        cards.append(f'<div class="card"><h3>BME{n}</h3>{body}</div>')
    series = index_series(data)
    names = ", ".join(s.name for s in series)
    latest_text = "; ".join(
        f"{s.name} {format_scientific(Fraction(s.points[-1].y))}" for s in series if s.points
    )
    chart = line_chart(
        key="bme",
        title=f"{names} history ({UNIT}, log scale)",
        description=f"{names} at each agreed epoch, {_span_text(data)}. "
        f"Latest: {latest_text or 'none'}. The table below lists every value.",
        series=series,
    )
    return (
        '<section aria-labelledby="h-bme"><h2 id="h-bme">BME indices now</h2>'
        '<p class="muted">What one TH/s earned per day in block subsidy, averaged over the '
        "last N days of retargets (exact; the on-chain value is floor(value × 10¹⁸)).</p>"
        f'<div class="cards">{"".join(cards)}</div>{chart}</section>'
    )


def _difficulty_section(data: DashboardData) -> str:
    series = difficulty_series(data)
    latest = data.history[-1] if data.history else None
    latest_text = (
        f"Epoch {latest.epoch}: {grouped_decimal(difficulty_from_bits(latest.bits))} "
        f"(bits {latest.bits:08x}, height {latest.height:,}, {_esc(latest.status)})"
        if latest is not None
        else "No agreed retarget yet."
    )
    chart = line_chart(
        key="difficulty",
        title="Difficulty history (log scale)",
        description=f"Difficulty of each agreed epoch, {_span_text(data)}. {latest_text}",
        series=[series],
    )
    return (
        '<section aria-labelledby="h-difficulty"><h2 id="h-difficulty">Difficulty</h2>'
        f"<p>{latest_text}</p>{chart}{_history_table(data)}</section>"
    )


def _history_table(data: DashboardData) -> str:
    """Both charts' data as a table (newest first), folded away by default."""
    if not data.history:
        return ""
    by_n = {n: {v.epoch: v.value for v in values} for n, values in sorted(data.indices.items())}
    head = "".join(f'<th scope="col">BME{n}</th>' for n in by_n)
    rows = []
    for h in reversed(data.history):
        cells = "".join(
            f'<td class="num">{_esc(format_scientific(values[h.epoch]))}</td>'
            if h.epoch in values
            else '<td class="num">n/a</td>'
            for values in by_n.values()
        )
        rows.append(
            f'<tr><th scope="row">{h.epoch}</th><td class="num">{h.height:,}</td>'
            f"<td>{utc_text(h.time)}</td><td><code>{h.bits:08x}</code></td>"
            f'<td class="num">{_esc(format_scientific(difficulty_from_bits(h.bits)))}</td>'
            f"{cells}</tr>"
        )
    return (
        f"<details><summary>Table of the charts' data ({len(rows)} epochs)</summary>"
        '<div class="scroll" tabindex="0" role="region" aria-label="Charts\' data table">'
        f"<table><caption>Agreed retargets, newest first; BME in {UNIT}</caption>"
        '<thead><tr><th scope="col">Epoch</th><th scope="col">Height</th>'
        '<th scope="col">Retarget (UTC)</th><th scope="col">Bits</th>'
        f'<th scope="col">Difficulty</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def _header(data: DashboardData) -> str:
    latest = data.history[-1] if data.history else None
    summary = (
        f"Latest agreed retarget: epoch {latest.epoch}, height {latest.height:,}, "
        f"{utc_text(latest.time)} ({_esc(latest.status)})."
        if latest is not None
        else "No agreed retarget stored yet."
    )
    return (
        f"<header><h1>bme-oracle · {_esc(data.network)}</h1>"
        f'<p class="muted">Bitcoin difficulty oracle. {summary} '
        f"Page drawn {utc_text(data.now)}.</p></header>"
    )


_LINKS: Sequence[tuple[str, str]] = (
    ("/v1/status", "status"),
    ("/v1/retargets", "retargets"),
    ("/v1/index/14", "BME14"),
    ("/v1/disagreements", "disagreements"),
    ("/ready", "readiness"),
    ("/openapi.json", "OpenAPI"),
)


def render_dashboard(data: DashboardData) -> str:
    """The whole page for ``data``: one HTML document, no external resources."""
    sections = (
        _status_section(data),
        _indices_section(data),
        _difficulty_section(data),
        sources_section(
            data.readiness, data.readiness_error, data.source_health, data.health_since
        ),
        disagreements_section(data.disagreements),
        publications_section(data.publications),
    )
    links = " · ".join(f'<a href="{path}">{_esc(name)}</a>' for path, name in _LINKS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bme-oracle dashboard · {_esc(data.network)}</title>"
        '<link rel="icon" href="data:,">'
        f"<style>{STYLE}</style></head><body>"
        f"{_header(data)}<main>{''.join(sections)}</main>"
        f"<footer><p>The same data as JSON: {links}.</p></footer></body></html>\n"
    )
