"""The read-only endpoints and ``ROUTES``, the one table the router and OpenAPI are built from.

Each ``Route`` carries its handler *and* its documentation (parameters,
response schema, error statuses), so the OpenAPI document cannot drift from
the router: ``build_app`` registers exactly these routes and
``oracle.api.openapi.build_document`` describes exactly these routes. To add an
endpoint, write a handler and append a ``Route`` (or pass extra routes to
``build_app``); add its response schema to ``oracle.api.openapi.SCHEMAS``.

Handlers validate every parameter themselves and answer bad input with a
JSON 400 (``ApiError``); a missing epoch is a JSON 404. Nothing here writes.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from oracle.api.context import ApiContext, ApiError, ChainView
from oracle.api.views import (
    disagreement_json,
    index_json,
    retarget_detail_json,
    retarget_json,
    status_json,
)
from oracle.bitcoin.difficulty import get_network
from oracle.errors import IndexUnavailable, OracleError
from oracle.index.bme import BmeValue, EpochTarget, bme, epoch_at_time
from oracle.monitor.health import ReadinessReport
from oracle.monitor.status import ChainSnapshot, estimate_next_retarget, plan_inputs
from oracle.store.models import DISAGREEMENT_KINDS
from oracle.store.records import AgreedEpoch, IndexRecord, RetargetRecord

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTEXT: web.AppKey[ApiContext] = web.AppKey("bme_oracle_api_context", ApiContext)
OPENAPI_BODY: web.AppKey[bytes] = web.AppKey("bme_oracle_openapi_body", bytes)

MAX_EPOCH = 999_999_999
MAX_N_DAYS = 14_000_000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
#: Unix times are accepted within signed 64 bits.
MAX_ABS_TIME = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,12}")
_SIGNED = re.compile(r"-?[0-9]{1,19}")
_HEALTH_BODY = b'{"status":"ok"}'


@dataclass(frozen=True, slots=True)
class Param:
    """One documented parameter (OpenAPI ``in``: path or query)."""

    name: str
    location: str
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    """A GET endpoint: its handler and its OpenAPI description."""

    path: str
    handler: Handler
    operation_id: str
    summary: str
    response_schema: str  # name in oracle.api.openapi.SCHEMAS; "" for a non-JSON body
    errors: tuple[int, ...] = ()
    params: tuple[Param, ...] = ()
    tag: str = "oracle"
    content_type: str = "application/json"
    description: str = ""
    extra_responses: dict[int, str] = field(default_factory=dict)  # status -> schema name


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"status": status, "code": code, "message": message}}, status)


# -- parameter parsing --------------------------------------------------------------------------


def parse_non_negative(text: str, what: str, *, maximum: int) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > maximum:
        raise ApiError(
            400, "bad_parameter", f"{what} should be an integer 0..{maximum}, got {text!r}"
        )
    return int(text)


def parse_n_days(text: str) -> int:
    n = parse_non_negative(text, "N", maximum=MAX_N_DAYS) if _DIGITS.fullmatch(text) else -1
    if n <= 0 or n % 14:
        raise ApiError(400, "bad_parameter", f"N should be a positive multiple of 14, got {text!r}")
    return n


def parse_at(text: str | None) -> int | None:
    if text is None:
        return None
    if not _SIGNED.fullmatch(text) or abs(int(text)) > MAX_ABS_TIME:
        raise ApiError(400, "bad_parameter", f"at should be an integer unix time, got {text!r}")
    return int(text)


def query_int(
    request: web.Request, name: str, *, default: int | None, minimum: int, maximum: int
) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    value = parse_non_negative(text, name, maximum=maximum)
    if value < minimum:
        raise ApiError(400, "bad_parameter", f"{name} should be at least {minimum}, got {text!r}")
    return value


def _context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


# -- handlers ----------------------------------------------------------------------------------


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
    the agreed history with the same ``oracle.index.bme`` the index stage uses.
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
        epoch = targets[-1].epoch if at is None else epoch_at_time(targets, at)
    except IndexUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    row = next(h for h in history if h.epoch == epoch)
    stored = await ctx.repository.index_value(ctx.network, n_days, epoch)
    if stored is not None:
        return _index_response(ctx, stored, row, at=at, stored=True)
    return _index_response(ctx, _compute_index(n_days, epoch, targets), row, at=at, stored=False)


def _compute_index(n_days: int, epoch: int, targets: list[EpochTarget]) -> BmeValue:
    epochs = n_days // 14
    if epochs > epoch + 1:  # checked first: N may ask for far more epochs than exist
        raise ApiError(
            404,
            "not_found",
            f"BME{n_days} at epoch {epoch} needs {epochs} epochs; {epoch + 1} exist",
        )
    by_epoch = {t.epoch: t for t in targets}
    window = [by_epoch.get(e) for e in range(epoch - epochs + 1, epoch + 1)]
    if any(item is None for item in window):
        raise ApiError(
            404,
            "not_found",
            f"BME{n_days} at epoch {epoch} needs agreed epochs {epoch - epochs + 1}..{epoch}",
        )
    return bme(n_days, window)  # type: ignore[arg-type]


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
    except OracleError as exc:
        log.warning("status_chain_read_failed", error=type(exc).__name__)
        raise ApiError(
            503, "chain_unavailable", f"cannot read the chain: {type(exc).__name__}"
        ) from exc
    latest = await ctx.repository.latest_agreed(ctx.network)
    return json_response(status_json(ctx.network, estimate, latest))


async def read_snapshot(chain: ChainView, attempts: int = 3) -> ChainSnapshot:
    """Read the header facts for the current tip; re-read if the tip moved meanwhile.

    A new block (or a reorg) between the reads would mix two chains into one
    estimate, so the tip is read again at the end and must not have changed.
    """
    for _ in range(attempts):
        tip_height, tip_time = await chain.tip()
        plan = plan_inputs(tip_height)
        start = plan.epoch_start_height
        previous = plan.previous_epoch_start_height
        window = plan.window_start_height
        start_time, epoch_bits, tip_bits, previous_bits, window_time = await asyncio.gather(
            chain.header_time(start),
            chain.header_bits(start),
            chain.header_bits(tip_height),
            chain.header_bits(previous) if previous is not None else _none(),
            chain.header_time(window) if window is not None else _none(),
        )
        if await chain.tip() == (tip_height, tip_time):
            return ChainSnapshot(
                tip_height=tip_height,
                tip_time=tip_time,
                tip_bits=tip_bits,
                epoch_start_time=start_time,
                epoch_bits=epoch_bits,
                previous_epoch_bits=previous_bits,
                window_start_time=window_time,
            )
    raise ApiError(503, "chain_moving", f"the tip changed during each of {attempts} reads")


async def _none() -> None:
    return None


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


# -- the table ---------------------------------------------------------------------------------

_EPOCH_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH}
_LIMIT = Param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    "How many rows at most.",
)

ROUTES: tuple[Route, ...] = (
    Route(
        "/health",
        health,
        "health",
        "Liveness: the process answers",
        "Health",
        tag="monitoring",
    ),
    Route(
        "/ready",
        ready,
        "ready",
        "Readiness: database reachable, >= quorum sources healthy, chain reachable",
        "Ready",
        tag="monitoring",
        description="503 with the same body, listing the reasons, when not ready.",
        extra_responses={503: "Ready"},
    ),
    Route(
        "/metrics",
        metrics,
        "metrics",
        "Prometheus metrics",
        "",
        tag="monitoring",
        content_type="text/plain",
    ),
    Route(
        "/openapi.json",
        openapi,
        "openapi",
        "This OpenAPI document",
        "OpenApiDocument",
        tag="monitoring",
    ),
    Route(
        "/v1/retargets",
        list_retargets,
        "listRetargets",
        "Stored retargets, newest first",
        "RetargetList",
        errors=(400, 503),
        params=(
            _LIMIT,
            Param(
                "before_epoch",
                "query",
                _EPOCH_SCHEMA,
                "Only epochs below this one (paging: pass next_before_epoch).",
            ),
        ),
    ),
    Route(
        "/v1/retargets/{epoch}",
        get_retarget,
        "getRetarget",
        "One retarget with every source's observation, publications and index values",
        "RetargetDetail",
        errors=(400, 404, 503),
        params=(Param("epoch", "path", _EPOCH_SCHEMA, "Epoch number (height // 2016).", True),),
    ),
    Route(
        "/v1/index/{n}",
        get_index,
        "getIndex",
        "BME_N at the latest agreed epoch, or in force at a unix time",
        "IndexValue",
        errors=(400, 404, 503),
        params=(
            Param(
                "n",
                "path",
                {"type": "integer", "minimum": 14, "maximum": MAX_N_DAYS, "multipleOf": 14},
                "N in days: a positive multiple of 14 (BME14, BME28, BME84, ...).",
                True,
            ),
            Param(
                "at",
                "query",
                {"type": "integer", "minimum": -MAX_ABS_TIME, "maximum": MAX_ABS_TIME},
                "Unix time: the value for the latest epoch whose retarget header time is <= at.",
            ),
        ),
    ),
    Route(
        "/v1/status",
        status,
        "getStatus",
        "Progress through the epoch, the estimated next retarget and the projected BME14",
        "Status",
        errors=(503,),
        description="Read from the chain on every request; see difficulty-estimate notes.",
    ),
    Route(
        "/v1/disagreements",
        list_disagreements,
        "listDisagreements",
        "Recorded disagreements between sources (and conflicting peer signatures), newest first",
        "DisagreementList",
        errors=(400, 503),
        params=(
            _LIMIT,
            Param("epoch", "query", _EPOCH_SCHEMA, "Only this epoch."),
            Param(
                "kind",
                "query",
                {"type": "string", "enum": list(DISAGREEMENT_KINDS)},
                "Only this kind.",
            ),
        ),
    ),
    Route(
        "/v1/attestations/{epoch}",
        get_attestations,
        "getAttestations",
        "This node's signatures over the report of an epoch, for the other operators",
        "AttestationList",
        errors=(400, 404, 503),
        params=(Param("epoch", "path", _EPOCH_SCHEMA, "Epoch number (height // 2016).", True),),
        description="Empty until this node's own quorum agreed and it signed; 404 when the "
        "node does not sign reports.",
    ),
)
