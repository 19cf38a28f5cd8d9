"""The daemon's side of the HTTP API: its ``ApiContext``, readiness facts and chain view."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from oracle.api.app import build_app
from oracle.api.context import ApiContext
from oracle.monitor.health import ReadinessReport, gather_readiness, judge_source
from oracle.sources.types import HeaderSource

if TYPE_CHECKING:
    from oracle.service import Service


class SourceChainView:
    """``ChainView`` over one header source: every call reads the chain afresh."""

    def __init__(self, source: HeaderSource) -> None:
        self.source = source

    async def tip(self) -> tuple[int, int]:
        tip = await self.source.tip()
        observation = await self.source.header_at(tip.height)
        return tip.height, observation.header.time

    async def header_time(self, height: int) -> int:
        return (await self.source.header_at(height)).header.time

    async def header_bits(self, height: int) -> int:
        return (await self.source.header_at(height)).header.bits


def build_service_app(service: Service) -> web.Application:
    """The API application of a running service."""
    config = service.config

    async def readiness() -> ReadinessReport:
        now = time.time()
        verdicts = [
            judge_source(
                s.name,
                now=now,
                stale_after_s=config.monitor.source_stale_after_s,
                last_success_at=s.state.last_ok_at,
                last_failure_at=s.state.last_failure_at,
                last_failure=s.state.last_error or "",
            )
            for s in service.sources
        ]
        reach_chain = (
            service.publisher.ping
            if service.publisher is not None
            else (service.sources[0].tip if service.sources else None)
        )
        return await gather_readiness(
            ping_database=service.repository.ping,
            reach_chain=reach_chain,
            sources=verdicts,
            quorum=config.crosscheck.quorum,
        )

    context = ApiContext(
        repository=service.repository,
        config=config,
        metrics=service.monitor.metrics,
        network=config.network.name,
        readiness=readiness,
        chain=SourceChainView(service.sources[0]) if service.sources else None,
    )
    return build_app(context)
