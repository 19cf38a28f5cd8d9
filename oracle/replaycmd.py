"""Wiring for ``bme-oracle replay``: the daemon's components, driven over a range of epochs."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from oracle.agreement.watcher import RetargetWatcher
from oracle.bitcoin.difficulty import get_network
from oracle.config import Config
from oracle.errors import InputError, SourceError
from oracle.pipeline import Pipeline
from oracle.replay import ReplaySummary, replay
from oracle.sources.checkpoints import CheckpointSource
from oracle.sources.factory import build_sources
from oracle.sources.types import HeaderSource


async def run_replay(
    config: Config, epochs: Sequence[int], *, publish: bool, checkpoints: bool, progress: bool
) -> ReplaySummary:
    from oracle.monitor.hub import build_notifier
    from oracle.publishing import build_publisher
    from oracle.store.repository import open_repository

    if checkpoints and config.network.name != "mainnet":
        raise InputError(
            f"--checkpoints holds mainnet headers; the configured network is {config.network.name}"
        )
    sources: list[HeaderSource] = [CheckpointSource()] if checkpoints else build_sources(config)
    quorum = 1 if checkpoints else config.crosscheck.quorum
    repository = await open_repository(config.database.url, config.database)
    publisher: Any = None
    notifier = build_notifier(config, repository=repository, metrics=None)
    try:
        await repository.check_schema()
        if publish:
            if not config.publisher.enabled:
                raise InputError("--publish needs [publisher] enabled = true in the configuration")
            publisher = await build_publisher(config, repository)
        watcher = RetargetWatcher(sources, get_network(config.network.name), quorum=quorum)
        pipeline = Pipeline(
            network=config.network.name,
            repository=repository,
            notifier=notifier,
            confirmations=config.crosscheck.confirmations,
            index_days=config.service.index_days,
            publisher=publisher,
            use_checkpoints=config.crosscheck.use_checkpoints,
        )
        tips = []
        for source in sources:
            with contextlib.suppress(SourceError):
                tips.append((await source.tip()).height)
        tip_height = max(tips) if tips else None
        return await replay(
            pipeline=pipeline,
            watcher=watcher,
            epochs=epochs,
            publish=publish,
            tip_height=tip_height,
            progress=progress,
        )
    finally:
        for source in sources:
            with contextlib.suppress(Exception):
                await source.close()
        if publisher is not None:
            await publisher.close()
        await notifier.close()
        await repository.close()
