"""``ROUTES``: the one table both the router and the OpenAPI document are built from.

Each ``Route`` carries its handler (``oracle.api.handlers``) *and* its
documentation (parameters, response schema, error statuses), so the OpenAPI
document cannot drift from the router: ``build_app`` (``oracle.api.app``)
registers exactly these routes and ``oracle.api.openapi.build_document``
describes exactly these routes. To add an endpoint, write a handler and append
a ``Route`` (or pass extra routes to ``build_app``); add its response schema to
``oracle.api.openapi.SCHEMAS``.

The documented parameter bounds are the ones ``oracle.api.params`` enforces.
Imports only downwards (handlers, params), so ``app`` and ``openapi`` can both
import it without a cycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from oracle.api.dashboard import dashboard
from oracle.api.handlers import (
    get_attestations,
    get_difficulty_history,
    get_index,
    get_index_history,
    get_retarget,
    health,
    list_disagreements,
    list_retargets,
    metrics,
    openapi,
    ready,
    status,
)
from oracle.api.markets import ADDRESS_PATTERN, NAME_PATTERN, get_market, list_markets
from oracle.api.params import FORMATS, MAX_ABS_TIME, MAX_EPOCH, MAX_LIMIT, MAX_N_DAYS
from oracle.store.states import DISAGREEMENT_KINDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    #: Other media types of the 200 answer (plain text bodies), e.g. CSV with ``?format=csv``.
    alternatives: tuple[str, ...] = ()
    #: Answered with an ETag, and 304 when ``If-None-Match`` names it.
    conditional: bool = True


_EPOCH_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH}
_LIMIT = Param(
    "limit",
    "query",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    "How many rows at most.",
)
_TIME_SCHEMA = {"type": "integer", "minimum": -MAX_ABS_TIME, "maximum": MAX_ABS_TIME}
_N_DAYS = Param(
    "n",
    "path",
    {"type": "integer", "minimum": 14, "maximum": MAX_N_DAYS, "multipleOf": 14},
    "N in days: a positive multiple of 14 (BME14, BME28, BME84, ...).",
    True,
)
_RANGE = (
    Param(
        "from",
        "query",
        _TIME_SCHEMA,
        "Unix time: start with the value in force then (default: the first retarget).",
    ),
    Param(
        "to",
        "query",
        _TIME_SCHEMA,
        "Unix time: end with the value in force then (default: the latest; before from: none).",
    ),
    Param(
        "format",
        "query",
        {"type": "string", "enum": list(FORMATS)},
        "json (the default) or csv (RFC 4180, a header row, the same columns as the points).",
    ),
)

ROUTES: tuple[Route, ...] = (
    # The dashboard (oracle.api.dashboard): server-rendered HTML, inline SVG, no scripts.
    Route(
        "/",
        dashboard,
        "dashboard",
        "Dashboard: epoch progress, BME and difficulty history, sources, publications",
        "",
        errors=(503,),
        tag="dashboard",
        content_type="text/html",
        conditional=False,  # rendered per request (its estimate reads the clock): no ETag
        description="An HTML page for people; it loads nothing else (works offline). "
        "The chain being unreachable shows as 'unavailable' on the page, not as an error.",
    ),
    Route(
        "/health",
        health,
        "health",
        "Liveness: the process answers and processes blocks",
        "Health",
        tag="monitoring",
        description="503 with status 'failing' and the reason when no block feed runs "
        "(every feed died and is being restarted) or the service is stopping after a failure.",
        extra_responses={503: "Health"},
        conditional=False,
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
        conditional=False,
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
            _N_DAYS,
            Param(
                "at",
                "query",
                _TIME_SCHEMA,
                "Unix time: the value for the latest epoch whose retarget header time is <= at.",
            ),
        ),
    ),
    Route(
        "/v1/index/{n}/history",
        get_index_history,
        "getIndexHistory",
        "BME_N at every agreed retarget from one time to another, in JSON or CSV",
        "IndexHistory",
        errors=(400, 503),
        params=(_N_DAYS, *_RANGE),
        alternatives=("text/csv",),
        description="One point per agreed epoch whose value was in force between from and to "
        "(the first is the one in force at from); epochs with fewer than N/14 agreed epochs "
        "behind them have no value and no point.",
    ),
    Route(
        "/v1/difficulty/history",
        get_difficulty_history,
        "getDifficultyHistory",
        "The agreed retargets' bits and difficulty from one time to another, in JSON or CSV",
        "DifficultyHistory",
        errors=(400, 503),
        params=_RANGE,
        alternatives=("text/csv",),
        description="One point per agreed epoch whose retarget was in force between from and "
        "to (the first is the one in force at from).",
    ),
    Route(
        "/v1/status",
        status,
        "getStatus",
        "Progress through the epoch, the estimated next retarget and the projected BME14",
        "Status",
        errors=(503,),
        description="The chain is read once per tip (from any configured source) and the "
        "figures computed once per second; see the difficulty-estimate notes.",
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
    Route(
        "/v1/markets",
        list_markets,
        "listMarketSeries",
        "The BmeMarket's series: terms, tokens and supply, collateral ledger, settlement",
        "MarketList",
        errors=(404, 503),
        tag="market",
        description="Read from the market contract on the EVM node ([market] address), at "
        "most once per market.cache_ttl_s; 503 with the reason when the node does not answer "
        "within market.read_timeout_s, 404 when no market is configured. Index values and "
        "strikes in BTC per TH/s per day (scientific notation, with the 10^18 integer); "
        "amounts as exact decimals with their base units.",
    ),
    Route(
        "/v1/markets/{name}",
        get_market,
        "getMarketSeries",
        "One series of the BmeMarket by name (series or token name)",
        "MarketDetail",
        errors=(400, 404, 503),
        tag="market",
        params=(
            Param(
                "name",
                "path",
                {"type": "string", "pattern": f"^{NAME_PATTERN.pattern}$"},
                "Series name BME<N>-<Floor>-<Cap>-<YYMMDD> (strikes in 1E-7 BTC per TH/s per "
                "day, e.g. BME14-4.85-5.4-261215) or either token's name (L.../S...).",
                True,
            ),
            Param(
                "collateral",
                "query",
                {"type": "string", "pattern": f"^{ADDRESS_PATTERN.pattern}$"},
                "The collateral token, when several series share the name.",
            ),
        ),
        description="The same series object as in /v1/markets. 400 for a name not of the "
        "documented form; 404 when no series has the name (also when none can: N not a "
        "multiple of 14, Floor >= Cap, no such date) or no market is configured.",
    ),
)
