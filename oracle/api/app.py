"""The aiohttp application: router from ``ROUTES``, JSON errors, request metrics, serving.

One middleware does two jobs on every request, because ``/health`` must stay
fast (>= 2,000 requests/s with 50 clients): it turns every failure into a JSON
error with the right status (400/404/405 from the router and handlers, 503
when the database or chain is away, 500 with no detail for bugs), and records
the request in ``Metrics`` by route *template* (never the raw path, so random
URLs cannot grow the label set).

The API is read-only: only GET (and the HEAD aiohttp derives from it) are
routed; anything else on a known path is a 405 JSON error with ``Allow``.
What it serves comes from the context's ``ApiState`` (``oracle.api.state``),
loaded when the application starts and closed when it stops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence

import structlog
from aiohttp import web

from oracle.api.context import CONTEXT, OPENAPI_BODY, ApiContext, ApiError, error_response
from oracle.api.markets import install as install_markets
from oracle.api.openapi import build_document
from oracle.api.routes import ROUTES, Handler, Route
from oracle.api.state import ApiState
from oracle.errors import IndexUnavailable, InputError, StoreError, StoreUnavailable

log = structlog.get_logger(__name__)

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """JSON errors with proper statuses, plus per-route request metrics."""
    started = time.perf_counter()
    status = 500
    try:
        async with asyncio.timeout(request.app[CONTEXT].request_timeout_s):
            response = await handler(request)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        status = exc.status
        response = error_response(exc.status, _code(exc.status), exc.reason)
        if isinstance(exc, web.HTTPMethodNotAllowed):
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except StoreUnavailable:
        status = 503
        log.warning("api_store_unavailable", route=_route_label(request))
        return error_response(503, "store_unavailable", "the database is not reachable")
    except IndexUnavailable as exc:
        status = 404
        return error_response(404, "not_found", str(exc))
    except InputError as exc:
        status = 400
        return error_response(400, "bad_parameter", str(exc))
    except StoreError:
        status = 503
        log.exception("api_store_error", route=_route_label(request))
        return error_response(503, "store_error", "the database could not answer")
    except TimeoutError:
        status = 503
        log.warning("api_request_timeout", route=_route_label(request))
        return error_response(503, "timeout", "the request took too long; try again")
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("api_handler_failed", route=_route_label(request), method=request.method)
        return error_response(500, "internal_error", "internal error")
    finally:
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        request.app[CONTEXT].metrics.observe_api_request(
            _route_label(request), method, status, time.perf_counter() - started
        )


def _code(status: int) -> str:
    return {
        400: "bad_request",
        404: "not_found",
        405: "method_not_allowed",
        413: "too_large",
    }.get(status, "http_error")


def build_app(ctx: ApiContext, routes: Sequence[Route] | None = None) -> web.Application:
    """The API application for ``ctx``: the routes of ``ROUTES`` (or ``routes``) and their
    OpenAPI document, generated from the same table. Without ``ctx.state`` one is built
    from the context; it loads its snapshot when the application starts."""
    table = tuple(ROUTES if routes is None else routes)
    if ctx.state is None:
        ctx = dataclasses.replace(ctx, state=ApiState.for_context(ctx))
    state = ctx.state
    assert state is not None
    app = web.Application(middlewares=[api_middleware], client_max_size=64 * 1024)
    app[CONTEXT] = ctx

    async def start_state(_app: web.Application) -> None:
        await state.start()

    async def close_state(_app: web.Application) -> None:
        await state.close()

    app.on_startup.append(start_state)
    app.on_cleanup.append(close_state)
    install_markets(app)
    app[OPENAPI_BODY] = json.dumps(build_document(table, network=ctx.network)).encode()
    for route in table:
        app.router.add_get(route.path, route.handler, name=route.operation_id)
    return app


async def start_api(
    ctx: ApiContext,
    *,
    host: str,
    port: int,
    routes: Sequence[Route] | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve the API on ``host:port`` (0 picks a free port); returns the runner and the port.

    The caller owns the runner: ``await runner.cleanup()`` stops it. Access logs
    are off (requests are counted in metrics instead; one log line per
    ``/health`` probe would drown the useful ones).
    """
    runner = web.AppRunner(build_app(ctx, routes), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("api_listening", host=host, port=bound)
    return runner, int(bound)
