"""Build the configured block sources (``[bitcoind]`` and every ``[[sources]]`` entry).

Kept apart from ``oracle.sources.types`` so the value types stay I/O-free and
the adapters can import them without a cycle.
"""

from __future__ import annotations

from oracle.config import Config, RestSourceConfig
from oracle.errors import SourceMalformed
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.blockchain_com import BlockchainComSource
from oracle.sources.esplora import EsploraSource
from oracle.sources.rest import HttpPolicy
from oracle.sources.types import HeaderSource


def build_sources(config: Config) -> list[HeaderSource]:
    """Every enabled source of the configuration, bitcoind first."""
    sources: list[HeaderSource] = []
    if config.bitcoind.enabled:
        sources.append(BitcoindSource.from_config(config.bitcoind))
    sources.extend(build_rest_source(entry) for entry in config.sources if entry.enabled)
    return sources


def build_rest_source(config: RestSourceConfig) -> HeaderSource:
    """The adapter for one ``[[sources]]`` entry."""
    policy = HttpPolicy.from_config(config)
    if config.kind == "esplora":
        return EsploraSource(
            name=config.name,
            base_url=config.base_url,
            policy=policy,
            poll_interval_s=config.poll_interval_s,
        )
    if config.kind == "blockchain_com":
        return BlockchainComSource(
            name=config.name,
            base_url=config.base_url,
            policy=policy,
            poll_interval_s=config.poll_interval_s,
        )
    raise SourceMalformed(f"unknown source kind {config.kind!r}", source=config.name)
