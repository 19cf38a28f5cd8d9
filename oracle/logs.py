"""The one structlog set-up: JSON lines in production, console output in development.

Shared processors add the level, the logger name, an ISO UTC timestamp and any
context bound with ``structlog.contextvars`` (network, epoch, height for every
line about an epoch). Standard-library loggers (aiohttp, sqlalchemy,
apscheduler, web3) go through the same formatter. A processor masks any
value whose key looks like a secret, as a second line of defence behind
``oracle.config.Secret``; and every rendered line, tracebacks included, goes
through ``scrub_secrets`` last, whoever logged it (web3 logs its endpoint URL,
aiohttp quotes URLs in its errors). Tracebacks never show frame locals (with
``rich`` installed, structlog's console default would print them: passwords,
key bytes), in either format.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from oracle.config import LogFormat, LogLevel

_SECRET_KEYS = (
    "password",
    "secret",
    "private_key",
    "privkey",
    "mnemonic",
    "keystore_password",
    "api_key",
    "apikey",
    "authorization",
)
#: Loggers are cached on first use in production (cheaper calls). The test suite turns
#: this off (tests/conftest.py): ``structlog.testing.capture_logs`` cannot see a module
#: logger that an earlier in-process ``oracle.cli.main`` call configured and cached.
CACHE_LOGGERS = True

_configured = False

#: A URL up to whitespace, a quote, a backslash (JSON escapes) or a control character.
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.-]{0,15}://[^\s"'<>\\`\x00-\x1f\x7f]+""")
#: A run of key characters right after "/" in a URL path (checked by ``_key_like``).
_PATH_RUN = re.compile(r"(?<=/)[A-Za-z0-9_-]{16,}")
#: ``name=value`` in a query or fragment.
_PARAM = re.compile(r"(?P<lead>[?&#;])(?P<name>[^=&#;]*)=(?P<value>[^&#;]*)")
_SECRET_PARAM = re.compile(
    r"key|token|secret|pass|auth|sig|credential|session|jwt|code", re.IGNORECASE
)
_AUTH_HEADER = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_ASSIGNED = re.compile(
    r"(?P<name>\b\w{0,40}?(?:password|passwd|secret|api_?key|access_?token|auth_?token|private_?key))"
    r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)(?P<value>[^\s\"',;&)]+)",
    re.IGNORECASE,
)
REDACTED = "***"


def _key_like(run: str) -> bool:
    """An API key, not a word: 32+ key characters, or 16+ mixing letters and digits."""
    if len(run) >= 32:
        return True
    return any(c.isdigit() for c in run) and any(c.isalpha() for c in run)


def _scrub_url(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    netloc, tail = (rest, "") if end < 0 else (rest[:end], rest[end:])
    if "@" in netloc:  # user:password@ or token@
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    path_end = min((i for i in (tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    path = _PATH_RUN.sub(_scrub_run, tail[:path_end])
    params = _PARAM.sub(_scrub_param, tail[path_end:])
    return f"{scheme}://{netloc}{path}{params}"


def _scrub_run(match: re.Match[str]) -> str:
    return REDACTED if _key_like(match.group(0)) else match.group(0)


def _scrub_param(match: re.Match[str]) -> str:
    value = match["value"]
    if value and (_SECRET_PARAM.search(match["name"]) or (len(value) >= 16 and _key_like(value))):
        value = REDACTED
    return f"{match['lead']}{match['name']}={value}"


def scrub_secrets(text: str) -> str:
    """``text`` with credentials taken out, wherever they appear in it.

    In URLs: ``user:password@`` (and ``token@``), key-like path segments
    (``/v2/AbCdEf0123456789...`` of Alchemy, Infura's ``/v3/<32 hex>``), and the
    values of query/fragment parameters named like secrets (``?apikey=``,
    ``&token=``) or looking like keys. Outside URLs: ``Bearer``/``Basic``
    credentials and ``password=...``-style assignments. What is taken out
    becomes ``***``. A block hash in a URL path is taken out too: better a
    lost hash than a leaked key.
    """
    text = _URL.sub(_scrub_url, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    return _ASSIGNED.sub(lambda m: f"{m['name']}{m['sep']}{REDACTED}", text)


def _mask_secrets(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in list(event_dict):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event_dict[key] = REDACTED
    return event_dict


def _scrub_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    """The last step: the whole rendered line (message, fields, traceback) scrubbed."""
    return scrub_secrets(rendered) if isinstance(rendered, str) else rendered


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
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # not rich's traceback: it prints every frame's locals (passwords, key bytes)
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=CACHE_LOGGERS,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if fmt == "json" else _identity,
            renderer,
            _scrub_rendered,
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
