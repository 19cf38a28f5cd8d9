"""The one structlog set-up: JSON lines in production, console output in development.

Shared processors add the level, the logger name, an ISO UTC timestamp and any
context bound with ``structlog.contextvars`` (network, epoch, height for every
line about an epoch). Standard-library loggers (aiohttp, sqlalchemy,
apscheduler, web3) go through the same formatter. A last processor masks any
value whose key looks like a secret, as a second line of defence behind
``oracle.config.Secret``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from oracle.config import LogFormat, LogLevel

_SECRET_KEYS = ("password", "secret", "private_key", "privkey", "mnemonic", "keystore_password")
_configured = False


def _mask_secrets(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event_dict[key] = "***"
    return event_dict


def setup_logging(*, fmt: LogFormat = "console", level: LogLevel = "info") -> None:
    """Configure structlog and stdlib logging once per process (idempotent)."""
    global _configured
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_bme_oracle", False):
            root.removeHandler(existing)
    handler._bme_oracle = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in (
        "sqlalchemy.engine",
        "aiohttp.access",
        "apscheduler.executors",
        "web3",
        "urllib3",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = True


def _identity(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    return event_dict
