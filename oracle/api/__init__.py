"""The read-only HTTP API: ``/health``, ``/ready``, ``/metrics``, ``/v1/...``, ``/openapi.json``.

``build_app(ctx)`` makes the aiohttp application from an ``ApiContext`` the
daemon assembles; ``start_api`` serves it. ``ROUTES`` is the single table both
the router and the OpenAPI document (``oracle.api.openapi``) are built from.

Inside, from the bottom up: ``context`` (what the daemon hands over, the app
keys, ``ApiError``), ``bodies`` (rendered answers, ETags, 304s), ``params``
(parameter parsing and bounds), ``views`` (JSON shapes), ``snapshot`` (what
``/v1`` serves, in memory), ``state`` (keeps the snapshot, the chain reading
of ``/v1/status`` and the metrics page current), ``handlers`` (one coroutine
per endpoint), ``routes`` (the table), ``openapi`` (the document), ``app``
(router, middleware, serving).
``ChainView`` is the chain-reading protocol ``ApiContext.chain`` takes; it
lives with the chain reads in ``oracle.monitor.chainread``.
"""

from oracle.api.app import api_middleware, build_app, start_api
from oracle.api.context import CONTEXT, ApiContext, ApiError
from oracle.api.routes import ROUTES, Param, Route
from oracle.api.state import ApiState
from oracle.monitor.chainread import ChainView

__all__ = [
    "CONTEXT",
    "ROUTES",
    "ApiContext",
    "ApiError",
    "ApiState",
    "ChainView",
    "Param",
    "Route",
    "api_middleware",
    "build_app",
    "start_api",
]
