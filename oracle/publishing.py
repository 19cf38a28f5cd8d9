"""The publisher the daemon uses: ``oracle.publish.publisher.build_publisher``, plus peers.

Kept as the single import point for ``service``, ``replay`` and ``dev``. With
``[peers] urls`` configured (several independent operators), the publisher is
wrapped in ``oracle.peers.CoordinatedPublisher``: it exchanges signatures with
the other operators' nodes and submits only in its turn. Without peers it is
the plain ``Publisher``: a single operator holding several keys is unchanged.
"""

from __future__ import annotations

from typing import Any

from oracle.config import Config
from oracle.peers.client import PeerClient
from oracle.peers.coordinator import ConflictSink, CoordinatedPublisher, Coordinator
from oracle.publish.publisher import Publisher
from oracle.publish.publisher import build_publisher as build_single_publisher

__all__ = ["CoordinatedPublisher", "Publisher", "build_publisher"]


async def build_publisher(
    config: Config,
    repository: Any,
    *,
    watchdog: ConflictSink | None = None,
    **options: Any,
) -> Publisher:
    """The daemon's publisher; coordinated with peers when ``peers.urls`` is set.

    ``watchdog`` receives conflicting peer signatures (``Watchdog.peer_conflict``).
    """
    peers = config.peers
    if not peers.urls:
        return await build_single_publisher(config, repository, **options)
    coordinator = Coordinator(
        network=config.network.name,
        repository=repository,
        client=PeerClient(
            urls=peers.urls,
            timeout_s=peers.timeout_s,
            max_response_bytes=peers.max_response_bytes,
            backoff_base_s=peers.poll_interval_s,
        ),
        submit_delay_s=peers.submit_delay_s,
        poll_wait_s=peers.poll_interval_s,
        watchdog=watchdog,
    )
    try:
        base = await build_single_publisher(
            config, repository, collect_signatures=coordinator.collected, **options
        )
    except BaseException:
        await coordinator.client.close()
        raise
    return CoordinatedPublisher.wrap(base, coordinator)
