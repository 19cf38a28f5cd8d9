"""What the HTTP API is given by the daemon, and what its handlers and middleware share.

The API owns no resources: the daemon (``service.py``) opens the repository,
the sources and the metrics, and hands them over here as an ``ApiContext``,
so the API can be served by the daemon, by ``bme-oracle dev`` and by tests
alike. ``build_app`` (``oracle.api.app``) stores it under the ``CONTEXT`` app
key, where the handlers (``oracle.api.handlers``) find it. What the handlers
serve is read from ``state`` (``oracle.api.state.ApiState``: the in-memory
snapshot the daemon keeps current); ``build_app`` makes one from the other
fields when the context comes without.

This module is the bottom of ``oracle.api``: it also holds ``ApiError`` and
its JSON form, which both the parameter parsers/handlers (raising) and the
middleware (answering) use, so neither has to import the other.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from oracle.config import Config
from oracle.errors import OracleError
from oracle.monitor.chainread import ChainView
from oracle.monitor.health import ReadinessReport
from oracle.monitor.metrics import Metrics
from oracle.store.repository import Repository

if TYPE_CHECKING:
    from oracle.api.state import ApiState


@dataclass(frozen=True, slots=True)
class ApiContext:
    """Everything the handlers use; built by the daemon, read-only for the API."""

    repository: Repository
    config: Config
    metrics: Metrics
    network: str
    readiness: Callable[[], Awaitable[ReadinessReport]]
    chain: ChainView | None = None
    #: Wall clock in unix seconds; tests pin it to reproduce a recorded moment.
    clock: Callable[[], float] = field(default=time.time)
    #: A request still running after this long is answered 503 (e.g. the database is
    #: down and the store is retrying): clients get an answer, not a hang.
    request_timeout_s: float = 10.0
    #: The in-memory snapshot, chain status and metrics page the handlers answer from;
    #: None: ``build_app`` builds one from the fields above.
    state: ApiState | None = None
    #: None while the node processes blocks, else why it does not (``/health`` answers 503)
    liveness: Callable[[], str | None] | None = None


#: Where ``build_app`` puts the ``ApiContext`` on the application.
CONTEXT: web.AppKey[ApiContext] = web.AppKey("bme_oracle_api_context", ApiContext)
#: The OpenAPI document, rendered once by ``build_app`` and served as is.
OPENAPI_BODY: web.AppKey[bytes] = web.AppKey("bme_oracle_openapi_body", bytes)


class ApiError(OracleError):
    """An error answer: HTTP status, a stable machine code and a human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def error_response(status: int, code: str, message: str) -> web.Response:
    """The JSON body of every error answer: ``{"error": {status, code, message}}``."""
    return json_response({"error": {"status": status, "code": code, "message": message}}, status)
