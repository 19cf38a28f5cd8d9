"""The request handlers of the read-only HTTP API: one coroutine per endpoint.

Each handler takes the request, reads the ``ApiContext`` the daemon handed to
``build_app`` (``oracle.api.context``), parses its parameters with
``oracle.api.params`` and answers JSON built by ``oracle.api.views``. The
route table (``oracle.api.routes``) maps paths to these handlers and documents
them; ``oracle.api.app`` builds the router from that table and adds the
middleware that turns errors into JSON answers.

Bad input is a JSON 400 (``ApiError``); a missing epoch is a JSON 404. The
chain is read by ``oracle.monitor.chainread`` and the index computed by
``oracle.index.lookup``; nothing here writes.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from oracle.api.context import CONTEXT, OPENAPI_BODY, ApiContext, ApiError, json_response
from oracle.api.params import (
    DEFAULT_LIMIT,
    MAX_EPOCH,
    MAX_LIMIT,
    parse_at,
    parse_n_days,
    parse_non_negative,
    query_int,
)
from oracle.api.views import (
    disagreement_json,
    index_json,
    retarget_detail_json,
    retarget_json,
    status_json,
)
from oracle.bitcoin.difficulty import get_network
from oracle.errors import IndexUnavailable, OracleError
from oracle.index.bme import BmeValue, EpochTarget
from oracle.index.lookup import bme_at_epoch, epoch_in_force
from oracle.monitor.chainread import ChainMoving, read_snapshot
from oracle.monitor.health import ReadinessReport
from oracle.monitor.status import estimate_next_retarget
from oracle.store.records import AgreedEpoch, IndexRecord, RetargetRecord
from oracle.store.states import DISAGREEMENT_KINDS

log = structlog.get_logger(__name__)

_HEALTH_BODY = b'{"status":"ok"}'


def _context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


async def health(_request: web.Request) -> web.Response:
    """Liveness only: the process answers HTTP. No I/O, so it stays cheap under load."""
    return web.Response(body=_HEALTH_BODY, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    ctx = _context(request)
    try:
        report = await ctx.readiness()
    except Exception as exc:
        log.exception("readiness_check_failed")
        report = ReadinessReport(
            ready=False,
            reasons=(f"readiness check failed: {type(exc).__name__}",),
            database_ok=False,
            chain_ok=False,
            quorum=ctx.config.crosscheck.quorum,
        )
    return json_response(report.to_json(), 200 if report.ready else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = _context(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_BODY], content_type="application/json")


async def list_retargets(request: web.Request) -> web.Response:
    ctx = _context(request)
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    before = query_int(request, "before_epoch", default=None, minimum=0, maximum=MAX_EPOCH)
    assert limit is not None
    records = await ctx.repository.list_retargets(ctx.network, limit=limit, before_epoch=before)
    return json_response(
        {
            "network": ctx.network,
            "retargets": [retarget_json(r) for r in records],
            "next_before_epoch": records[-1].epoch if len(records) == limit else None,
        }
    )


async def get_retarget(request: web.Request) -> web.Response:
    ctx = _context(request)
    epoch = parse_non_negative(request.match_info["epoch"], "epoch", maximum=MAX_EPOCH)
    record = await ctx.repository.get_retarget(ctx.network, epoch)
    if record is None:
        raise ApiError(404, "not_found", f"no retarget stored for {ctx.network} epoch {epoch}")
    indices = [
        value
        for n in ctx.config.service.index_days
        if (value := await ctx.repository.index_value(ctx.network, n, epoch)) is not None
    ]
    body = retarget_detail_json(record, indices)
    body["network"] = ctx.network
    return json_response(body)


async def get_index(request: web.Request) -> web.Response:
    """BME_N at the latest agreed epoch, or at the epoch in force at ``?at=`` (DESIGN.md).

    Stored values (the index stage's) are served as they are; for an N or an
    epoch the index stage did not store, the value is computed exactly from
    the agreed history with the same ``oracle.index.bme`` the index stage uses
    (``oracle.index.lookup``).
    """
    ctx = _context(request)
    n_days = parse_n_days(request.match_info["n"])
    at = parse_at(request.query.get("at"))
    if at is None:
        # Fast path: the latest agreed epoch's stored value (two indexed reads).
        latest = await ctx.repository.latest_agreed(ctx.network)
        if latest is None:
            raise ApiError(404, "not_found", f"no agreed retarget stored for {ctx.network} yet")
        stored = await ctx.repository.index_value(ctx.network, n_days, latest.epoch)
        if stored is not None:
            return _index_response(ctx, stored, latest, at=None, stored=True)
    history = await ctx.repository.agreed_history(ctx.network)
    if not history:
        raise ApiError(404, "not_found", f"no agreed retarget stored for {ctx.network} yet")
    targets = [EpochTarget.from_bits(h.epoch, h.bits, h.time) for h in history]
    try:
        epoch = epoch_in_force(targets, at)
    except IndexUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    row = next(h for h in history if h.epoch == epoch)
    stored = await ctx.repository.index_value(ctx.network, n_days, epoch)
    if stored is not None:
        return _index_response(ctx, stored, row, at=at, stored=True)
    try:
        computed = bme_at_epoch(n_days, epoch, targets)
    except IndexUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return _index_response(ctx, computed, row, at=at, stored=False)


def _index_response(
    ctx: ApiContext,
    value: BmeValue | IndexRecord,
    row: RetargetRecord | AgreedEpoch,
    *,
    at: int | None,
    stored: bool,
) -> web.Response:
    return json_response(
        index_json(
            network=ctx.network,
            value=value,
            height=row.height,
            retarget_time=row.time,
            status=row.status,
            at=at,
            stored=stored,
        )
    )


async def status(request: web.Request) -> web.Response:
    """Where the epoch stands, read from the chain on every request (never cached)."""
    ctx = _context(request)
    if ctx.chain is None:
        raise ApiError(503, "chain_unavailable", "this oracle has no chain connection")
    try:
        snapshot = await read_snapshot(ctx.chain)
        estimate = estimate_next_retarget(get_network(ctx.network), snapshot, now=int(ctx.clock()))
    except ChainMoving as exc:
        raise ApiError(503, "chain_moving", str(exc)) from exc
    except OracleError as exc:
        log.warning("status_chain_read_failed", error=type(exc).__name__)
        raise ApiError(
            503, "chain_unavailable", f"cannot read the chain: {type(exc).__name__}"
        ) from exc
    latest = await ctx.repository.latest_agreed(ctx.network)
    return json_response(status_json(ctx.network, estimate, latest))


async def list_disagreements(request: web.Request) -> web.Response:
    ctx = _context(request)
    limit = query_int(request, "limit", default=100, minimum=1, maximum=MAX_LIMIT)
    epoch = query_int(request, "epoch", default=None, minimum=0, maximum=MAX_EPOCH)
    kind = request.query.get("kind")
    if kind is not None and kind not in DISAGREEMENT_KINDS:
        raise ApiError(
            400,
            "bad_parameter",
            f"kind should be one of {', '.join(DISAGREEMENT_KINDS)}, got {kind!r}",
        )
    assert limit is not None
    records = await ctx.repository.list_disagreements(
        ctx.network, limit=limit, kind=kind, epoch=epoch
    )
    return json_response(
        {"network": ctx.network, "disagreements": [disagreement_json(r) for r in records]}
    )


async def get_attestations(request: web.Request) -> web.Response:
    """This node's own signatures over the report of an epoch (for the other operators).

    Only signatures this node made after its own quorum and header checks agreed
    (``oracle.peers``); signatures are public, keys never leave the node."""
    from oracle.peers.coordinator import SELF
    from oracle.peers.wire import SignedReport, attestation_body

    ctx = _context(request)
    epoch = parse_non_negative(request.match_info["epoch"], "epoch", maximum=MAX_EPOCH)
    publisher = ctx.config.publisher
    if not publisher.enabled or not publisher.contract_address:
        raise ApiError(404, "not_found", "this oracle does not sign reports (no [publisher])")
    records = await ctx.repository.attestations_for_epoch(
        publisher.chain_id, publisher.contract_address, epoch
    )
    items = [
        SignedReport.from_json(
            {"signer": r.signer, "report": r.report, "signature": r.signature_hex}
        )
        for r in records
        if r.source == SELF
    ]
    return json_response(
        attestation_body(
            epoch,
            chain_id=publisher.chain_id,
            contract_address=publisher.contract_address,
            items=items,
        )
    )
