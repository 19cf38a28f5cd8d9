"""What the HTTP API is given by the daemon: ``ApiContext`` and the ``ChainView`` protocol.

The API owns no resources: the daemon (``service.py``) opens the repository,
the sources and the metrics, and hands them over here, so the API can be
served by the daemon, by ``bme-oracle dev`` and by tests alike.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from oracle.config import Config
from oracle.errors import OracleError
from oracle.monitor.health import ReadinessReport
from oracle.monitor.metrics import Metrics
from oracle.store.repository import Repository


@runtime_checkable
class ChainView(Protocol):
    """Read access to the Bitcoin chain as the oracle sees it now (for ``/v1/status``).

    The daemon implements it over its primary source; every call reads the
    chain afresh (no cached epoch state: see ``oracle.monitor.status``).
    Failures raise ``oracle.errors.OracleError`` subclasses (``SourceError``).
    """

    async def tip(self) -> tuple[int, int]:
        """``(height, header time)`` of the best block."""
        ...

    async def header_time(self, height: int) -> int:
        """Header time (unix seconds) of the best-chain block at ``height``."""
        ...

    async def header_bits(self, height: int) -> int:
        """Compact bits of the best-chain block at ``height``."""
        ...


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


class ApiError(OracleError):
    """An error answer: HTTP status, a stable machine code and a human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
