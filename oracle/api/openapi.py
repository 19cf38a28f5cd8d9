"""The OpenAPI 3 document of the HTTP API, generated from the route table.

Paths, parameters and status codes come from the route table itself
(``oracle.api.routes``; ``oracle.api.app.build_app`` renders the document once
for the routes it serves), so the document lists exactly what the router
serves; the response schemas below
mirror ``oracle.api.views`` field by field with ``additionalProperties:
false``, so a handler that grows or drops a field fails the schemathesis
conformance test instead of silently drifting from the document.

Exact values are strings with a pattern: bits as 8 hex digits, difficulties
and index values as decimal strings, the 10^18 on-chain integer as a decimal
integer string (JSON numbers lose precision above 2^53). Answers that carry an
ETag document the 304 a matching ``If-None-Match`` gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from oracle.api.routes import Route
from oracle.store.states import DISAGREEMENT_KINDS, FINAL_RETARGET_STATUSES, RETARGET_STATUSES

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"

_DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]+$"}
_FRACTION = {"type": "string", "pattern": r"^-?[0-9]+/[0-9]+$"}
_INTEGER_TEXT = {"type": "string", "pattern": r"^[0-9]+$"}
_BITS = {"type": "string", "pattern": r"^[0-9a-f]{8}$"}
_HASH = {"type": "string", "pattern": r"^[0-9a-f]{64}$"}
_TIME = {"type": "string", "format": "date-time"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_NUMBER = {"type": "number"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _object(properties: dict[str, Any], *, required: Sequence[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


_RETARGET_FIELDS: dict[str, Any] = {
    "epoch": _INT,
    "height": _INT,
    "block_hash": _HASH,
    "bits": _BITS,
    "difficulty": _DECIMAL,
    "time": _INT,
    "status": {"type": "string", "enum": [str(s) for s in RETARGET_STATUSES]},
    "sources": _array(_STR),
    "observed_at": _TIME,
    "agreed_at": _nullable(_TIME),
    "published_at": _nullable(_TIME),
    "orphaned_at": _nullable(_TIME),
}

_ADDRESS = {"type": "string", "pattern": r"^0x[0-9a-fA-F]{40}$"}
_UNITS = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}
_SCIENTIFIC = {"type": "string", "pattern": r"^(0|[0-9](\.[0-9]+)?E[+-][0-9]+)$"}
_AMOUNT = _object({"base": _INTEGER_TEXT, "units": _UNITS})
_POSITION_TOKEN = _object(
    {
        "name": _STR,
        "address": _ADDRESS,
        "decimals": _INT,
        "supply": _UNITS,
        "supply_base": _INTEGER_TEXT,
    }
)
_MARKET = _object(
    {"address": _ADDRESS, "chain_id": _INT, "oracle": _ADDRESS, "collaterals": _array(_ADDRESS)}
)

_INDEX_AT_EPOCH = _object(
    {"n_days": _INT, "value": _DECIMAL, "value_exact": _FRACTION, "value_fixed": _INTEGER_TEXT}
)

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object(
        {
            "error": _object(
                {"status": _INT, "code": _STR, "message": _STR},
            )
        }
    ),
    "Health": _object(
        {"status": {"type": "string", "enum": ["ok", "failing"]}, "reason": _STR},
        required=["status"],
    ),
    "Ready": _object(
        {
            "ready": _BOOL,
            "reasons": _array(_STR),
            "checks": _object(
                {
                    "database": _BOOL,
                    "chain": _BOOL,
                    "sources": _object(
                        {
                            "quorum": _INT,
                            "healthy": _INT,
                            "detail": _array(
                                _object({"name": _STR, "healthy": _BOOL, "reason": _STR})
                            ),
                        }
                    ),
                }
            ),
        }
    ),
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": {"openapi": _STR, "info": {"type": "object"}, "paths": {"type": "object"}},
    },
    "Retarget": _object(_RETARGET_FIELDS),
    "RetargetList": _object(
        {
            "network": _STR,
            "retargets": _array(_ref("Retarget")),
            "next_before_epoch": _nullable(_INT),
        }
    ),
    "Observation": _object(
        {
            "source": _STR,
            "ok": _BOOL,
            "height": _nullable(_INT),
            "block_hash": _nullable(_HASH),
            "bits": _nullable(_BITS),
            "time": _nullable(_INT),
            "error_kind": _nullable(_STR),
            "error_message": _nullable(_STR),
            "observed_at": _TIME,
            "last_observed_at": _TIME,
        }
    ),
    "Publication": _object(
        {
            "chain_id": _INT,
            "contract_address": _STR,
            "tx_hash": _STR,
            "block_hash": _HASH,
            "published_at": _TIME,
        }
    ),
    "RetargetDetail": _object(
        {
            **_RETARGET_FIELDS,
            "network": _STR,
            "header_hex": _nullable({"type": "string", "pattern": r"^[0-9a-f]{160}$"}),
            "observations": _array(_ref("Observation")),
            "publications": _array(_ref("Publication")),
            "other_blocks": _array(_ref("Retarget")),
            "indices": _array(_INDEX_AT_EPOCH),
        }
    ),
    "IndexValue": _object(
        {
            "network": _STR,
            "n_days": _INT,
            "epoch": _INT,
            "height": _INT,
            "retarget_time": _INT,
            "status": {"type": "string", "enum": [str(s) for s in FINAL_RETARGET_STATUSES]},
            "at": _nullable(_INT),
            "value": _DECIMAL,
            "value_exact": _FRACTION,
            "value_scientific": _STR,
            "value_fixed": _INTEGER_TEXT,
            "stored": _BOOL,
        }
    ),
    "Status": _object(
        {
            "network": _STR,
            "now": _INT,
            "tip": _object({"height": _INT, "time": _INT}),
            "epoch": _INT,
            "blocks_in_epoch": _INT,
            "progress_percent": _NUMBER,
            "remaining_blocks": _INT,
            "next_retarget_height": _INT,
            "epoch_start_time": _INT,
            "current_bits": _BITS,
            "current_difficulty": _DECIMAL,
            "previous_retarget_percent": _nullable(_NUMBER),
            "previous_retarget_percent_exact": _nullable(_FRACTION),
            "difficulty_change_percent": _NUMBER,
            "difficulty_change_percent_exact": _FRACTION,
            "estimated_next_difficulty": _DECIMAL,
            "locked_in": _BOOL,
            "next_bits": _nullable(_BITS),
            "sliding_window": _BOOL,
            "time_avg_ms": _INT,
            "adjusted_time_avg_ms": _INT,
            "remaining_time_ms": _INT,
            "estimated_retarget_time_ms": _INT,
            "expected_blocks": _NUMBER,
            "projected_bme14": _object(
                {
                    "epoch": _INT,
                    "value": _DECIMAL,
                    "value_exact": _FRACTION,
                    "value_scientific": _STR,
                    "value_fixed": _INTEGER_TEXT,
                }
            ),
            "oracle": _object(
                {
                    "latest_epoch": _nullable(_INT),
                    "latest_status": _nullable(_STR),
                }
            ),
            "sources": _array(_object({"name": _STR, "healthy": _BOOL, "reason": _STR})),
        }
    ),
    "Disagreement": _object(
        {
            "id": _INT,
            "epoch": _INT,
            "kind": {"type": "string", "enum": [str(k) for k in DISAGREEMENT_KINDS]},
            "field": _STR,
            "claims": {"type": "object"},
            "evidence": _nullable({"type": "object"}),
            "recorded_at": _TIME,
        }
    ),
    "IndexPoint": _object(
        {
            "epoch": _INT,
            "height": _INT,
            "time": _INT,
            "value": _DECIMAL,
            "value_scientific": _STR,
            "value_fixed": _INTEGER_TEXT,
            "value_exact": _FRACTION,
        }
    ),
    "IndexHistory": _object(
        {
            "network": _STR,
            "n_days": _INT,
            "from": _nullable(_INT),
            "to": _nullable(_INT),
            "points": _array(_ref("IndexPoint")),
        }
    ),
    "DifficultyPoint": _object(
        {"epoch": _INT, "height": _INT, "time": _INT, "bits": _BITS, "difficulty": _DECIMAL}
    ),
    "DifficultyHistory": _object(
        {
            "network": _STR,
            "from": _nullable(_INT),
            "to": _nullable(_INT),
            "points": _array(_ref("DifficultyPoint")),
        }
    ),
    "DisagreementList": _object({"network": _STR, "disagreements": _array(_ref("Disagreement"))}),
    "Attestation": _object(
        {
            "signer": {"type": "string", "pattern": r"^0x[0-9a-fA-F]{40}$"},
            "report": _object({"epoch": _INT, "block_hash_hex": _HASH, "bits": _INT, "time": _INT}),
            "signature": {"type": "string", "pattern": r"^0x[0-9a-f]{130}$"},
        }
    ),
    "MarketSeries": _object(
        {
            "id": {"type": "string", "pattern": r"^0x[0-9a-f]{64}$"},
            "name": _STR,
            "n_days": _INT,
            "floor": _SCIENTIFIC,
            "floor_fixed": _INTEGER_TEXT,
            "cap": _SCIENTIFIC,
            "cap_fixed": _INTEGER_TEXT,
            "multiplier": _INT,
            "expiry": _INT,
            "expiry_iso": _TIME,
            "created_at": _INT,
            "settlement_opens_at": _INT,
            "fallback_opens_at": _INT,
            "status": {"type": "string", "enum": ["open", "settled", "fallback"]},
            "collateral": _object({"address": _ADDRESS, "symbol": _STR, "decimals": _INT}),
            "pair_collateral": _AMOUNT,
            "long_token": _POSITION_TOKEN,
            "short_token": _POSITION_TOKEN,
            "ledger": _object({"deposited": _AMOUNT, "paid_out": _AMOUNT, "held": _AMOUNT}),
            "settlement": _nullable(
                _object(
                    {
                        "value": _SCIENTIFIC,
                        "value_fixed": _INTEGER_TEXT,
                        "epoch": _nullable(_INT),
                        "long_payout_per_token": _AMOUNT,
                        "short_payout_per_token": _AMOUNT,
                    }
                )
            ),
        }
    ),
    "MarketList": _object(
        {"market": _MARKET, "chain_time": _INT, "series": _array(_ref("MarketSeries"))}
    ),
    "MarketDetail": _object(
        {"market": _MARKET, "chain_time": _INT, "series": _ref("MarketSeries")}
    ),
    "AttestationList": _object(
        {
            "epoch": _INT,
            "chain_id": _INT,
            "contract_address": {"type": "string", "pattern": r"^0x[0-9a-fA-F]{40}$"},
            "attestations": _array(_ref("Attestation")),
        }
    ),
}

_STATUS_TEXT = {
    200: "OK",
    304: "Not modified: the If-None-Match ETag is current (no body)",
    400: "Bad parameter",
    404: "Not found",
    503: "Unavailable (database or chain not reachable, or not ready)",
}


def _operation(route: Route) -> dict[str, Any]:
    if route.response_schema:
        ok: dict[str, Any] = {
            "description": _STATUS_TEXT[200],
            "content": {route.content_type: {"schema": _ref(route.response_schema)}},
        }
    else:
        ok = {"description": _STATUS_TEXT[200], "content": {route.content_type: {"schema": _STR}}}
    for media_type in route.alternatives:
        ok["content"][media_type] = {"schema": _STR}
    responses: dict[str, Any] = {"200": ok}
    if route.conditional:
        responses["304"] = {"description": _STATUS_TEXT[304]}
    for status, schema in route.extra_responses.items():
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(schema)}},
        }
    for status in route.errors:
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if route.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.location,
                "required": p.required or p.location == "path",
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    return operation


def build_document(routes: Sequence[Route], *, network: str = "mainnet") -> dict[str, Any]:
    """The OpenAPI document for exactly ``routes`` (all GET, read-only)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "bme-oracle",
            "version": API_VERSION,
            "description": (
                "Read-only API of a Bitcoin difficulty oracle: retargets cross-checked from "
                f"several sources, BME mining-earnings indices and monitoring ({network})."
            ),
        },
        "paths": {route.path: {"get": _operation(route)} for route in routes},
        "components": {"schemas": SCHEMAS},
    }
