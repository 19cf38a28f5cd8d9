"""The dashboard at ``/``: what it shows is gathered here, drawn by ``dashboard_page``.

``dashboard_data(ctx)`` is the one place the dashboard reads anything: the
agreed history (difficulty and, computed from it with the index stage's own
``oracle.index.bme.bme_series``, BME14/28/84), recent disagreements, the
sources' health samples and current verdicts, the latest publications with
their transactions, and the next-retarget estimate read from the chain
(``oracle.monitor.chainread`` + ``oracle.monitor.status``, as ``/v1/status``
does). It returns a plain ``DashboardData``; ``render_dashboard``
(``oracle.api.dashboard_page``) turns that into HTML without I/O, so the
gathering can move to another read path without touching the page.

The chain and the readiness probe are optional for the page: if they fail or
are slow, it says "unavailable" with the reason instead of failing. The store
is not optional: without it the middleware answers 503 like every endpoint.
"""

from __future__ import annotations

import asyncio
import hashlib
from base64 import b64encode
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web

from oracle.api.context import CONTEXT, ApiContext
from oracle.api.dashboard_page import STYLE, DashboardData, Publication, render_dashboard
from oracle.api.views import public_readiness, scrub
from oracle.bitcoin.difficulty import get_network
from oracle.errors import OracleError
from oracle.index.bme import BmeValue, EpochTarget, bme_series
from oracle.monitor.chainread import ChainMoving, read_snapshot
from oracle.monitor.health import ReadinessReport
from oracle.monitor.status import RetargetEstimate, estimate_next_retarget
from oracle.store.records import AgreedEpoch, SubmissionRecord
from oracle.store.states import RetargetStatus

log = structlog.get_logger(__name__)

#: The indices the dashboard charts (the issue's BME14/28/84).
INDEX_DAYS = (14, 28, 84)
#: Epochs drawn at most (mainnet has ~414; this bounds the page on long test chains).
MAX_CHART_EPOCHS = 1000
#: Rows of the disagreement and publication tables.
MAX_DISAGREEMENTS = 20
MAX_PUBLICATIONS = 12
#: Health samples summarised over this window.
HEALTH_WINDOW = timedelta(hours=24)
#: The chain and readiness reads get this long; the page is drawn without them after.
OPTIONAL_READ_TIMEOUT_S = 3.0


async def dashboard_data(ctx: ApiContext) -> DashboardData:
    """Read everything the dashboard shows: the store, while the chain and readiness are asked.

    Store errors propagate (the middleware answers 503); the chain and the
    readiness probe are bounded by ``OPTIONAL_READ_TIMEOUT_S`` and never fail the page.
    """
    now = int(ctx.clock())
    since = datetime.fromtimestamp(now, UTC) - HEALTH_WINDOW
    estimate_task = asyncio.ensure_future(_estimate(ctx, now))
    readiness_task = asyncio.ensure_future(_readiness(ctx))
    try:
        # One store read after another: a page view takes one pooled connection at a time.
        history = await ctx.repository.agreed_history(ctx.network)
        disagreements = await ctx.repository.list_disagreements(
            ctx.network, limit=MAX_DISAGREEMENTS
        )
        health = await ctx.repository.health_summary(since)
        publications = await _publications(ctx)
        (estimate, estimate_error), (readiness, readiness_error) = await asyncio.gather(
            estimate_task, readiness_task
        )
    finally:
        estimate_task.cancel()
        readiness_task.cancel()
    shown = tuple(history[-MAX_CHART_EPOCHS:])
    return DashboardData(
        network=ctx.network,
        now=now,
        history=shown,
        history_total=len(history),
        indices=_indices(history, first_epoch=shown[0].epoch if shown else 0),
        estimate=estimate,
        estimate_error=estimate_error,
        readiness=readiness,
        readiness_error=readiness_error,
        source_health=tuple(health[name] for name in sorted(health)),
        health_since=int(since.timestamp()),
        disagreements=tuple(disagreements),
        publications=publications,
    )


def _indices(history: list[AgreedEpoch], *, first_epoch: int) -> dict[int, tuple[BmeValue, ...]]:
    """BME_N over the whole history (exact, O(n)), kept from ``first_epoch`` on."""
    targets = [EpochTarget.from_bits(h.epoch, h.bits, h.time) for h in history]
    result: dict[int, tuple[BmeValue, ...]] = {}
    for n_days in INDEX_DAYS:
        series = bme_series(n_days, targets)
        result[n_days] = tuple(series[e] for e in sorted(series) if e >= first_epoch)
    return result


async def _publications(ctx: ApiContext) -> tuple[Publication, ...]:
    """The newest published epochs, each with its publications and submission attempts."""
    epochs = await ctx.repository.epochs_with_status(ctx.network, RetargetStatus.PUBLISHED)
    result: list[Publication] = []
    for epoch in reversed(epochs[-MAX_PUBLICATIONS:]):
        record = await ctx.repository.get_retarget(ctx.network, epoch)
        if record is None:  # re-orged away between the two reads
            continue
        submission: SubmissionRecord | None = None
        for publication in record.publications:
            submission = await ctx.repository.submission_for_epoch(
                publication.chain_id, publication.contract_address, epoch
            )
            if submission is not None:
                break
        transactions = (
            tuple(await ctx.repository.submission_txs(submission.id))
            if submission is not None
            else ()
        )
        result.append(Publication(record, submission, transactions))
    return tuple(result)


async def _estimate(ctx: ApiContext, now: int) -> tuple[RetargetEstimate | None, str | None]:
    """The next-retarget estimate, or why there is none (never raises for chain trouble)."""
    if ctx.chain is None:
        return None, "this oracle has no chain connection"
    try:
        async with asyncio.timeout(OPTIONAL_READ_TIMEOUT_S):
            snapshot = await read_snapshot(ctx.chain)
        return estimate_next_retarget(get_network(ctx.network), snapshot, now=now), None
    except ChainMoving:
        return None, "the chain tip moved during every read; reload in a moment"
    except TimeoutError:
        return None, f"the chain did not answer within {OPTIONAL_READ_TIMEOUT_S:g} s"
    except OracleError as exc:
        log.warning("dashboard_chain_read_failed", error=type(exc).__name__)
        return None, f"cannot read the chain ({type(exc).__name__})"


async def _readiness(ctx: ApiContext) -> tuple[ReadinessReport | None, str | None]:
    """The ``/ready`` verdict, or why it could not be had (the page is drawn anyway)."""
    try:
        async with asyncio.timeout(OPTIONAL_READ_TIMEOUT_S):
            return public_readiness(await ctx.readiness()), None
    except TimeoutError:
        return None, f"the readiness check did not finish within {OPTIONAL_READ_TIMEOUT_S:g} s"
    except Exception as exc:
        log.warning("dashboard_readiness_failed", error=type(exc).__name__)
        return None, scrub(f"the readiness check failed ({type(exc).__name__})")


def content_security_policy(style: str) -> str:
    """Nothing may load but the page itself: no scripts, no requests, only its own style block."""
    digest = b64encode(hashlib.sha256(style.encode()).digest()).decode()
    return (
        "default-src 'none'; "
        f"style-src 'sha256-{digest}'; img-src data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


async def dashboard(request: web.Request) -> web.Response:
    """``GET /``: the dashboard, server-rendered HTML with inline SVG charts and no scripts."""
    data = await dashboard_data(request.app[CONTEXT])
    return web.Response(
        text=render_dashboard(data),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": content_security_policy(STYLE),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
