"""Build the configured block sources (``[bitcoind]`` and every ``[[sources]]`` entry).

Kept apart from ``oracle.sources.types`` so the value types stay I/O-free and
the adapters can import them without a cycle.
"""

from __future__ import annotations

from oracle.config import Config
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.rest import build_rest_source
from oracle.sources.types import HeaderSource


def build_sources(config: Config) -> list[HeaderSource]:
    """Every enabled source of the configuration, bitcoind first."""
    sources: list[HeaderSource] = []
    if config.bitcoind.enabled:
        sources.append(BitcoindSource.from_config(config.bitcoind))
    sources.extend(build_rest_source(entry) for entry in config.sources if entry.enabled)
    return sources
