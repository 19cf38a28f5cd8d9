"""The request handlers of the read-only HTTP API: one coroutine per endpoint.

Each handler takes the request, parses its parameters with
``oracle.api.params`` and answers from the API's memory (``ApiState``,
``oracle.api.state``): the data snapshot the daemon keeps current
(``oracle.api.snapshot``), the chain reading of the current tip, the cached
metrics page. No handler reads the database or the chain itself, so a burst
of requests costs no backend calls; every answer carries an ETag and is a 304
when the client already holds it (``oracle.api.bodies``). The route table
(``oracle.api.routes``) maps paths to these handlers and documents them;
``oracle.api.app`` builds the router from that table and adds the middleware
that turns errors into JSON answers.

Bad input is a JSON 400 (``ApiError``); a missing epoch is a JSON 404. Nothing
here writes.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from oracle.api.bodies import CACHE_STATUS, NO_CACHE, Body, respond
from oracle.api.context import CONTEXT, OPENAPI_BODY, ApiError, json_response
from oracle.api.params import (
    DEFAULT_DISAGREEMENTS,
    DEFAULT_LIMIT,
    MAX_EPOCH,
    MAX_LIMIT,
    parse_at,
    parse_n_days,
    parse_non_negative,
    query_csv,
    query_int,
    query_range,
    query_value,
)
from oracle.api.snapshot import Snapshot
from oracle.api.state import ApiState
from oracle.api.views import public_readiness, scrub
from oracle.monitor.health import ReadinessReport
from oracle.store.states import DISAGREEMENT_KINDS

log = structlog.get_logger(__name__)

_HEALTH_BODY = b'{"status":"ok"}'


def _state(request: web.Request) -> ApiState:
    state = request.app[CONTEXT].state
    assert state is not None  # build_app always sets one
    return state


async def _snapshot(request: web.Request) -> Snapshot:
    return await _state(request).snapshot()


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers HTTP and processes blocks (``ApiContext.liveness``).
    No I/O, so it stays cheap under load."""
    liveness = request.app[CONTEXT].liveness
    failing = liveness() if liveness is not None else None
    if failing:
        response = json_response({"status": "failing", "reason": scrub(failing) or ""}, 503)
        response.headers["Cache-Control"] = NO_CACHE
        return response
    return web.Response(
        body=_HEALTH_BODY, content_type="application/json", headers={"Cache-Control": NO_CACHE}
    )


async def ready(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        report = public_readiness(await ctx.readiness())  # no upstream text, no keys
    except Exception as exc:
        log.exception("readiness_check_failed")
        report = ReadinessReport(
            ready=False,
            reasons=(f"readiness check failed: {type(exc).__name__}",),
            database_ok=False,
            chain_ok=False,
            quorum=ctx.config.crosscheck.quorum,
        )
    response = json_response(report.to_json(), 200 if report.ready else 503)
    response.headers["Cache-Control"] = NO_CACHE
    return response


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus page, rendered at most once a second however many scrapers ask."""
    return respond(request, await _state(request).metrics_page(), NO_CACHE)


async def openapi(request: web.Request) -> web.Response:
    return respond(request, Body(request.app[OPENAPI_BODY]))


async def list_retargets(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    before = query_int(request, "before_epoch", default=None, minimum=0, maximum=MAX_EPOCH)
    assert limit is not None
    snapshot = await _snapshot(request)
    return respond(request, snapshot.retargets(limit=limit, before_epoch=before))


async def get_retarget(request: web.Request) -> web.Response:
    epoch = parse_non_negative(request.match_info["epoch"], "epoch", maximum=MAX_EPOCH)
    return respond(request, (await _snapshot(request)).retarget(epoch))


async def get_index(request: web.Request) -> web.Response:
    """BME_N at the latest agreed epoch, or at the epoch in force at ``?at=`` (DESIGN.md).

    Stored values (the index stage's) are served as they are; for an N or an
    epoch the index stage did not store, the value is computed exactly from
    the agreed history with the same ``oracle.index.bme`` formulas
    (``oracle.index.history``).
    """
    n_days = parse_n_days(request.match_info["n"])
    at = parse_at(query_value(request, "at"))
    return respond(request, (await _snapshot(request)).index(n_days, at))


async def get_index_history(request: web.Request) -> web.Response:
    """BME_N in force from ``?from=`` to ``?to=`` (unix times), one point per retarget."""
    n_days = parse_n_days(request.match_info["n"])
    start, end = query_range(request)
    csv = query_csv(request)
    snapshot = await _snapshot(request)
    return respond(request, snapshot.index_history(n_days, start=start, end=end, csv=csv))


async def get_difficulty_history(request: web.Request) -> web.Response:
    """The agreed retargets' bits and difficulty from ``?from=`` to ``?to=``."""
    start, end = query_range(request)
    csv = query_csv(request)
    snapshot = await _snapshot(request)
    return respond(request, snapshot.difficulty_history(start=start, end=end, csv=csv))


async def status(request: web.Request) -> web.Response:
    """Where the epoch stands: the chain reading of the current tip (read once per tip, from
    whatever sources are configured), the snapshot's latest retarget, and now."""
    return respond(request, await _state(request).status(), CACHE_STATUS)


async def list_disagreements(request: web.Request) -> web.Response:
    limit = query_int(request, "limit", default=DEFAULT_DISAGREEMENTS, minimum=1, maximum=MAX_LIMIT)
    epoch = query_int(request, "epoch", default=None, minimum=0, maximum=MAX_EPOCH)
    kind = query_value(request, "kind")
    if kind is not None and kind not in DISAGREEMENT_KINDS:
        raise ApiError(
            400,
            "bad_parameter",
            f"kind should be one of {', '.join(DISAGREEMENT_KINDS)}, got {kind!r}",
        )
    assert limit is not None
    snapshot = await _snapshot(request)
    return respond(request, snapshot.disagreements(limit=limit, epoch=epoch, kind=kind))


async def get_attestations(request: web.Request) -> web.Response:
    """This node's own signatures over the report of an epoch (for the other operators).

    Only signatures this node made after its own quorum and header checks agreed
    (``oracle.peers``); signatures are public, keys never leave the node."""
    epoch = parse_non_negative(request.match_info["epoch"], "epoch", maximum=MAX_EPOCH)
    return respond(request, (await _state(request).attestations()).body(epoch))
