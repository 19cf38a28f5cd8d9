"""Configuration: TOML files plus ``ORACLE_*`` environment overrides -> frozen dataclasses.

The only package that reads configuration files or the environment. Components
receive their own section, never ``os.environ``. Loading is here; the checks on a loaded
configuration (and the URL check the command line shares) are in ``checks``.

Environment overrides: ``ORACLE_<SECTION>__<KEY>`` (double underscore between
section and key), e.g. ``ORACLE_DATABASE__URL``, ``ORACLE_CROSSCHECK__QUORUM=3``,
``ORACLE_BITCOIND__RPC_PASSWORD``. Lists are comma-separated. A variable that names
no setting (``ORACLE_CROSSCHECK__QUORUMM``, or ``ORACLE_CROSSCHECK_QUORUM`` with one
underscore) is refused, like a misspelt key in a file; other ``ORACLE_*`` names
(``NON_CONFIG_VARIABLES``, an Oracle database client's ``ORACLE_HOME``) are left alone.
Secrets (passwords, keystore passwords) come only from the environment or from files
named by ``*_file`` keys; a secret written in a TOML file is refused. Every URL is
checked (scheme, host, no whitespace). Every problem is collected and reported at once
in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# The checks live in ``oracle.config.checks``; these are part of this package's interface.
from oracle.config.checks import HTTP as HTTP
from oracle.config.checks import LogFormat as LogFormat
from oracle.config.checks import LogLevel as LogLevel
from oracle.config.checks import NetworkName as NetworkName
from oracle.config.checks import SourceKind as SourceKind
from oracle.config.checks import check_url as check_url
from oracle.config.checks import redact_url as redact_url
from oracle.config.checks import url_problem as url_problem
from oracle.config.checks import validate as validate
from oracle.config.checks import validate_publisher
from oracle.errors import ConfigError

ENV_PREFIX = "ORACLE_"
#: ``ORACLE_*`` variables read elsewhere, not settings: Alembic's ``migrations/env.py``
#: (``ORACLE_CONFIG``), the Compose file (``ORACLE_API_PUBLISH``), the test suite's Postgres
#: (``ORACLE_TEST_POSTGRES_DSN``).
NON_CONFIG_VARIABLES = frozenset(
    {"ORACLE_CONFIG", "ORACLE_API_PUBLISH", "ORACLE_TEST_POSTGRES_DSN"}
)
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///bme-oracle.sqlite"


class Secret(str):
    """A string whose repr and str never show the value (keeps secrets out of logs)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"

    def __str__(self) -> str:
        return "***" if self else ""

    def reveal(self) -> str:
        """The actual value, for the one call that needs it."""
        return str.__str__(self)


#: The default of every secret setting (immutable, so one instance serves them all).
NO_SECRET = Secret("")


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    name: NetworkName = "mainnet"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = DEFAULT_DATABASE_URL
    pool_size: int = 5
    connect_timeout_s: float = 5.0
    write_retry_s: float = 30.0
    #: The password of a Postgres ``url`` written without one; set only at connect time.
    password: Secret = NO_SECRET
    password_file: str = ""


@dataclass(frozen=True, slots=True)
class BitcoindConfig:
    enabled: bool = True
    name: str = "bitcoind"
    url: str = "http://127.0.0.1:8332"
    rpc_user: str = ""
    rpc_password: Secret = NO_SECRET
    rpc_password_file: str = ""
    cookie_file: str = ""
    zmq_hashblock: str = ""
    poll_interval_s: float = 30.0
    zmq_silence_s: float = 1800.0
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class RestSourceConfig:
    name: str
    kind: SourceKind
    base_url: str
    enabled: bool = True
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    rate_limit_per_s: float = 1.0
    max_response_bytes: int = 1_000_000
    poll_interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class CrossCheckConfig:
    quorum: int = 2
    confirmations: int = 6
    use_checkpoints: bool = True


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    enabled: bool = False
    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = 31337
    contract_address: str = ""
    keystore_files: tuple[str, ...] = ()
    keystore_password: Secret = NO_SECRET
    keystore_password_file: str = ""
    sender_keystore_file: str = ""
    max_fee_gwei: float = 200.0
    priority_fee_gwei: float = 1.0
    fee_bump_percent: int = 15
    replace_after_s: float = 120.0
    #: 0: by chain id (1 on the dev chains 31337/1337, 3 elsewhere; ``fees.default_confirmations``)
    receipt_confirmations: int = 0
    receipt_timeout_s: float = 600.0


@dataclass(frozen=True, slots=True)
class PeersConfig:
    """Other operators' oracle APIs (``oracle.peers``); empty ``urls``: a single operator.

    This node's own signing keys are ``publisher.keystore_files``."""

    urls: tuple[str, ...] = ()
    poll_interval_s: float = 2.0
    timeout_s: float = 3.0
    max_response_bytes: int = 65_536
    submit_delay_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ApiConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    webhooks: tuple[str, ...] = ()
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 3
    alert_min_interval_s: float = 300.0
    source_stale_after_s: float = 3600.0
    publication_late_s: float = 3600.0
    min_signer_balance_wei: int = 10**16
    health_retention_days: int = 14
    readback_interval_s: float = 300.0


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """A ``BmeMarket`` on the publisher's EVM chain (``publisher.rpc_url``, ``chain_id``):
    the ``bme-oracle market`` commands act on it and the API serves it at ``/v1/markets``.

    ``collateral`` is the token ``market create`` uses when ``--collateral`` is not given.
    The API reads the contract at most once per ``cache_ttl_s`` and gives up on a read
    after ``read_timeout_s`` (503 with the reason; the rest of the API is unaffected)."""

    address: str = ""
    collateral: str = ""
    read_timeout_s: float = 3.0
    cache_ttl_s: float = 5.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    format: LogFormat = "console"
    level: LogLevel = "info"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    shutdown_timeout_s: float = 10.0
    index_days: tuple[int, ...] = (14, 28, 84)


@dataclass(frozen=True, slots=True)
class Config:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    bitcoind: BitcoindConfig = field(default_factory=BitcoindConfig)
    sources: tuple[RestSourceConfig, ...] = ()
    crosscheck: CrossCheckConfig = field(default_factory=CrossCheckConfig)
    publisher: PublisherConfig = field(default_factory=PublisherConfig)
    peers: PeersConfig = field(default_factory=PeersConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)


_SECTIONS = {f.name: f for f in dataclasses.fields(Config)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str, problems: list[str], *, from_env: bool) -> Any:
    """Convert one raw value (TOML value or env string) to the annotated type."""
    origin = typing.get_origin(hint)
    if origin is Literal:  # a string here; ``validate`` checks it is one of the choices
        return _coerce(value, str, where, problems, from_env=from_env)
    if hint is Secret:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string")
            return Secret("")
        return Secret(value)
    if origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if from_env and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {value!r}")
            return ()
        return tuple(
            _coerce(item, item_hint, f"{where}[{i}]", problems, from_env=from_env)
            for i, item in enumerate(value)
        )
    if hint is bool:
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
        if isinstance(value, bool):
            return value
        problems.append(f"{where}: expected true or false, got {value!r}")
        return False
    if hint in (int, float):
        if from_env and isinstance(value, str):
            try:
                return hint(value.strip())
            except ValueError:
                problems.append(f"{where}: expected a number, got {value!r}")
                return hint()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a number, got {value!r}")
            return hint()
        if hint is int and isinstance(value, float):
            problems.append(f"{where}: expected a whole number, got {value!r}")
            return int(value)
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
            return ""
        return value
    if isinstance(hint, types.UnionType):  # pragma: no cover - not used by sections
        return value
    return value


def _build(
    cls: type, raw: Mapping[str, Any], where: str, problems: list[str], env: dict[str, str]
) -> Any:
    hints = _hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in known:
            problems.append(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):
        key_where = f"{where}.{fld.name}"
        if fld.name in env:
            kwargs[fld.name] = _coerce(
                env[fld.name], hints[fld.name], key_where, problems, from_env=True
            )
        elif fld.name in raw:
            if hints[fld.name] is Secret:
                problems.append(
                    f"{key_where}: secrets may not be written in a config file; use "
                    f"{ENV_PREFIX}{where.upper()}__{fld.name.upper()} or {fld.name}_file"
                )
                continue
            kwargs[fld.name] = _coerce(
                raw[fld.name], hints[fld.name], key_where, problems, from_env=False
            )
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            problems.append(f"{key_where}: required")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _env_overrides(environ: Mapping[str, str], problems: list[str]) -> dict[str, dict[str, str]]:
    """``{section: {key: value}}`` from ``ORACLE_<SECTION>__<KEY>``; a name that looks like
    an override but names no setting is a problem (see the module docstring)."""
    overrides: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_VARIABLES:
            continue
        section, sep, key = name[len(ENV_PREFIX) :].lower().partition("__")
        fields = _section_fields(section)
        if not sep:
            single = next((s for s in _SECTIONS if section.startswith(f"{s}_")), None)
            if single is not None:  # ORACLE_CROSSCHECK_QUORUM
                problems.append(
                    f"{name}: not a setting; overrides are {ENV_PREFIX}<SECTION>__<KEY> (two "
                    f"underscores), e.g. {ENV_PREFIX}{single.upper()}__"
                    f"{section[len(single) + 1 :].upper()}"
                )
        elif fields is None:
            problems.append(f"{name}: unknown section {section!r}{_hint(section, _env_sections())}")
        elif key not in fields:
            problems.append(f"{name}: [{section}] has no key {key!r}{_hint(key, fields)}")
        else:
            overrides.setdefault(section, {})[key] = value
    return overrides


def _env_sections() -> list[str]:
    return [name for name in _SECTIONS if name != "sources"]  # [[sources]]: files only


def _section_fields(section: str) -> list[str] | None:
    if section not in _env_sections():
        return None
    return [f.name for f in dataclasses.fields(_hints(Config)[section])]


def _hint(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def load(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    publishing: bool = False,
) -> Config:
    """Load and validate the configuration; raise one ConfigError listing every problem.

    ``publishing``: for the commands that publish (``run``, ``replay --publish``), where
    ``[publisher] enabled = true`` must name the contract and the keystores. The others
    load the same file without them: ``contract deploy`` runs before the contract exists,
    ``db upgrade`` before anything.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    problems: list[str] = []
    env = _env_overrides(environ, problems)
    for section in raw:
        if section not in _SECTIONS:
            problems.append(f"{section}: unknown section (known: {', '.join(_SECTIONS)})")
    kwargs: dict[str, Any] = {}
    for name, fld in _SECTIONS.items():
        if name == "sources":
            entries = raw.get("sources", [])
            if not isinstance(entries, list):
                problems.append("sources: expected [[sources]] tables")
                entries = []
            kwargs[name] = tuple(
                _build(RestSourceConfig, entry, f"sources[{i}]", problems, {})
                for i, entry in enumerate(entries)
            )
            continue
        section_raw = raw.get(name, {})
        if not isinstance(section_raw, dict):
            problems.append(f"{name}: expected a table")
            section_raw = {}
        kwargs[name] = _build(
            fld.type if isinstance(fld.type, type) else _hints(Config)[name],
            section_raw,
            name,
            problems,
            env.get(name, {}),
        )
    config = Config(**kwargs) if not problems else None
    if config is not None:
        problems.extend(validate(config))
        if publishing:
            problems.extend(validate_publisher(config.publisher))
    if problems:
        where = f" in {path}" if path else ""
        # one problem: one line; several: one per line, all at once
        sep = " " if len(problems) == 1 else "\n  "
        raise ConfigError(f"invalid configuration{where}:{sep}" + "\n  ".join(problems))
    assert config is not None
    return config


def read_secret(value: Secret, file_path: str, what: str) -> Secret:
    """A secret from the environment value or, failing that, from the named file."""
    if value:
        return value
    if file_path:
        try:
            return Secret(Path(file_path).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(
                f"{what}: cannot read secret file {file_path}: {exc.strerror}"
            ) from exc
    return Secret("")


def database_url(config: Config | None, override: str | None) -> str:
    """The database URL: ``--db`` wins over the environment and the config file."""
    if override:
        return override
    return config.database.url if config is not None else DEFAULT_DATABASE_URL
