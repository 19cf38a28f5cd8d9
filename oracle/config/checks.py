"""Checks on a loaded configuration that types alone cannot express (``validate``), and
the URL check shared with the command line (``url_problem``, ``check_url``).

Defines the closed sets of strings some keys take, so it depends on no other part of
``oracle.config`` (which imports it); the section classes are named for the type
checker only.
"""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from oracle.bitcoin.difficulty import NETWORKS
from oracle.errors import InputError

if TYPE_CHECKING:
    from oracle.config import Config, DatabaseConfig, PublisherConfig

HTTP = ("http", "https")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

# The closed sets of strings some keys take. Loading checks that a value is a string;
# ``validate`` checks that it is one of these (with the messages operators see).
#: ``network.name``: the networks of ``oracle.bitcoin.difficulty.NETWORKS``, in its order.
NetworkName = Literal["mainnet", "testnet3", "testnet4", "signet", "regtest"]
#: ``sources[].kind``: the REST source implementations (``oracle.sources.rest``).
SourceKind = Literal["esplora", "blockchain_com"]
#: ``logging.format``: JSON lines (production) or console output (development).
LogFormat = Literal["json", "console"]
#: ``logging.level``: a standard-library logging level, lower case.
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


def validate(config: Config) -> list[str]:
    """Cross-field checks that types alone cannot express."""
    problems: list[str] = []
    if config.network.name not in NETWORKS:
        problems.append(
            f"network.name: unknown network {config.network.name!r} (known: {', '.join(NETWORKS)})"
        )
    if not config.database.url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        problems.append(
            "database.url: must start with postgresql+asyncpg:// or sqlite+aiosqlite://, "
            f"got {redact_url(config.database.url)!r}"
        )
    if config.crosscheck.quorum < 1:
        problems.append(f"crosscheck.quorum: must be >= 1, got {config.crosscheck.quorum}")
    if config.crosscheck.confirmations < 0:
        problems.append(
            f"crosscheck.confirmations: must be >= 0, got {config.crosscheck.confirmations}"
        )
    names = [s.name for s in config.sources] + (
        [config.bitcoind.name] if config.bitcoind.enabled else []
    )
    if len(set(names)) != len(names):
        problems.append(f"sources: source names must be unique, got {names}")
    for i, source in enumerate(config.sources):
        if source.kind not in typing.get_args(SourceKind):
            problems.append(
                f"sources[{i}].kind: must be {' or '.join(typing.get_args(SourceKind))}, "
                f"got {source.kind!r}"
            )
        problems += _url_problems(f"sources[{i}].base_url", source.base_url)
    if config.logging.format not in typing.get_args(LogFormat):
        problems.append(
            f"logging.format: must be {' or '.join(typing.get_args(LogFormat))}, "
            f"got {config.logging.format!r}"
        )
    if config.logging.level not in typing.get_args(LogLevel):
        problems.append(
            f"logging.level: must be one of {', '.join(typing.get_args(LogLevel))}, "
            f"got {config.logging.level!r}"
        )
    for n in config.service.index_days:
        if n <= 0 or n % 14:
            problems.append(f"service.index_days: {n} is not a positive multiple of 14")
    if not 0 <= config.api.port < 65536:
        problems.append(f"api.port: must be 0..65535 (0 picks a free port), got {config.api.port}")
    problems.extend(_validate_peers(config))
    problems.extend(_validate_market(config))
    problems.extend(_validate_database(config.database))
    problems.extend(_validate_urls(config))
    return problems


def _validate_urls(config: Config) -> list[str]:
    """The URLs of the other sections (sources and peers: with their sections)."""
    bitcoind = config.bitcoind
    problems = _url_problems("bitcoind.url", bitcoind.url) if bitcoind.enabled else []
    if bitcoind.zmq_hashblock:
        problems += _url_problems("bitcoind.zmq_hashblock", bitcoind.zmq_hashblock, ("tcp",))
    problems += _url_problems("publisher.rpc_url", config.publisher.rpc_url)
    for i, url in enumerate(config.monitor.webhooks):
        problems += _url_problems(f"monitor.webhooks[{i}]", url)
    return problems


def validate_publisher(publisher: PublisherConfig) -> list[str]:
    """``enabled = true`` needs a contract and keys; checked by ``load(publishing=True)``
    for the commands that publish (see there)."""
    if not publisher.enabled:
        return []
    problems = []
    if not _ADDRESS.fullmatch(publisher.contract_address):
        got = f", got {publisher.contract_address!r}" if publisher.contract_address else ""
        problems.append(
            "publisher.contract_address: [publisher] enabled = true needs the contract's "
            f"0x address (or ORACLE_PUBLISHER__CONTRACT_ADDRESS){got}"
        )
    if not publisher.keystore_files:
        problems.append(
            "publisher.keystore_files: [publisher] enabled = true needs at least one "
            "signer keystore"
        )
    if not publisher.sender_keystore_file:
        problems.append(
            "publisher.sender_keystore_file: [publisher] enabled = true needs the keystore "
            "that pays for the reports"
        )
    return problems


def url_problem(url: str, schemes: tuple[str, ...] = HTTP) -> str | None:
    """Why ``url`` is not a ``scheme://host[:port]...`` URL of ``schemes`` (None if it is).

    ``tcp`` (a ZMQ endpoint) also needs a port. The reason quotes the URL with its
    credentials and key-like path segments taken out.
    """
    kinds = " or ".join(f"{s}://" for s in schemes)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not url:
        reason = f"must start with {kinds}, got an empty string"
    elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        reason = "has whitespace or a control character in it"
    elif parts.scheme.lower() not in schemes or not url[len(parts.scheme) :].startswith("://"):
        reason = f"must start with {kinds}"
    elif port == -1:
        reason = "has a port that is not a number in 0..65535"
    elif not parts.hostname:
        reason = "has no host"
    elif "tcp" in schemes and port is None:
        reason = f"needs a port ({kinds}host:port)"
    else:
        return None
    return f"{reason}, got {_shown(url)!r}" if url else reason


def check_url(url: str, what: str, schemes: tuple[str, ...] = HTTP) -> str:
    """``url`` if it is a usable URL (``url_problem``), else InputError naming ``what``."""
    problem = url_problem(url, schemes)
    if problem is not None:
        raise InputError(f"{what}: {problem}")
    return url


def _url_problems(what: str, url: str, schemes: tuple[str, ...] = HTTP) -> list[str]:
    problem = url_problem(url, schemes)
    return [] if problem is None else [f"{what}: {problem}"]


def _shown(url: str) -> str:
    from oracle.logs import scrub_secrets  # logs imports this module only for type checking

    return scrub_secrets(redact_url(url))


def _validate_database(database: DatabaseConfig) -> list[str]:
    key = "database.password_file" if database.password_file else "database.password"
    if not (database.password or database.password_file):
        return []
    if not database.url.startswith("postgresql+asyncpg://"):
        return [f"{key}: only a postgresql+asyncpg:// url takes a password"]
    userinfo = database.url.partition("://")[2].split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        return [f"database.url: carries a password of its own while {key} is set; use one"]
    return []


def _validate_peers(config: Config) -> list[str]:
    peers = config.peers
    problems = [
        p for i, url in enumerate(peers.urls) for p in _url_problems(f"peers.urls[{i}]", url)
    ]
    for name in ("poll_interval_s", "timeout_s", "max_response_bytes"):
        if getattr(peers, name) <= 0:
            problems.append(f"peers.{name}: must be > 0, got {getattr(peers, name)}")
    if peers.submit_delay_s < 0:
        problems.append(f"peers.submit_delay_s: must be >= 0, got {peers.submit_delay_s}")
    if peers.urls and not config.publisher.enabled:
        problems.append("peers.urls: peers exchange signatures, so [publisher] must be enabled")
    return problems


def _validate_market(config: Config) -> list[str]:
    market = config.market
    problems = [
        f"market.{name}: must be a 0x address of 40 hex digits, got {getattr(market, name)!r}"
        for name in ("address", "collateral")
        if getattr(market, name) and not _ADDRESS.fullmatch(getattr(market, name))
    ]
    for name in ("read_timeout_s", "cache_ttl_s"):
        if getattr(market, name) <= 0:
            problems.append(f"market.{name}: must be > 0, got {getattr(market, name)}")
    return problems


def redact_url(url: str) -> str:
    """A URL with any password replaced by ***, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
