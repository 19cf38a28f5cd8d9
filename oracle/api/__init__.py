"""The read-only HTTP API: ``/health``, ``/ready``, ``/metrics``, ``/v1/...``, ``/openapi.json``.

``build_app(ctx)`` makes the aiohttp application from an ``ApiContext`` the
daemon assembles; ``start_api`` serves it. ``ROUTES`` is the single table both
the router and the OpenAPI document (``oracle.api.openapi``) are built from.
"""

from oracle.api.app import api_middleware, build_app, start_api
from oracle.api.context import ApiContext, ApiError, ChainView
from oracle.api.handlers import CONTEXT, ROUTES, Param, Route

__all__ = [
    "CONTEXT",
    "ROUTES",
    "ApiContext",
    "ApiError",
    "ChainView",
    "Param",
    "Route",
    "api_middleware",
    "build_app",
    "start_api",
]
