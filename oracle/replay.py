"""``bme-oracle replay``: the live pipeline over a range of historical epochs.

``run_replay`` builds the daemon's components (``oracle.wiring``), from the
configured sources or the bundled mainnet checkpoints, and ``replay`` drives
them epoch by epoch.

Resumable and idempotent: epochs already agreed or published in the database
are skipped (and said so), everything else goes through the same
observe -> verify -> cross-check -> store -> index (-> publish) pass as the
daemon. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from tqdm import tqdm

from oracle.agreement.reorg import quorum_tip
from oracle.agreement.watcher import RetargetWatcher
from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.config import Config
from oracle.errors import InputError, SourceError, SourceUnavailable
from oracle.pipeline import Pipeline, seed_watcher
from oracle.sources.checkpoints import CheckpointSource
from oracle.sources.types import SourceFailure
from oracle.wiring import build_components

log = structlog.get_logger(__name__)

BEYOND_TIP = "beyond the sources' tip"
#: ``SourceFailure.kind``s that mean "could not be reached" (not: answered badly).
UNREACHABLE_KINDS = frozenset({"unavailable", "timeout", "rate_limited", "warming_up"})


@dataclass
class ReplaySummary:
    """Counts and reasons at the end of a replay."""

    agreed: list[int] = field(default_factory=list)
    disputed: list[int] = field(default_factory=list)
    published: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    #: The part of the requested range past the sources' tip, never built epoch by epoch.
    beyond_tip: range = range(0)
    #: The epochs asked when no source could be reached for any of them (else empty).
    unobserved: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def epochs_per_s(self) -> float:
        done = len(self.agreed) + len(self.disputed) + len(self.skipped)
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def _reasons(self) -> Counter[str]:
        reasons = Counter(self.skipped.values())
        if self.beyond_tip:
            reasons[BEYOND_TIP] += len(self.beyond_tip)
        return reasons

    def as_dict(self) -> dict[str, Any]:
        reasons = self._reasons()
        return {
            "agreed": len(self.agreed),
            "disputed": self.disputed,
            "published": len(self.published),
            "skipped": len(self.skipped) + len(self.beyond_tip),
            "skipped_reasons": dict(reasons),
            "skipped_epochs": {str(k): v for k, v in sorted(self.skipped.items())},
            "beyond_tip": [self.beyond_tip[0], self.beyond_tip[-1]] if self.beyond_tip else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "epochs_per_s": round(self.epochs_per_s, 1),
        }

    def text(self) -> str:
        lines = [
            f"agreed {len(self.agreed)}, disputed {len(self.disputed)}, "
            f"published {len(self.published)}, skipped "
            f"{len(self.skipped) + len(self.beyond_tip)} "
            f"in {self.elapsed_s:.2f} s ({self.epochs_per_s:.1f} epochs/s)"
        ]
        if self.disputed:
            lines.append(f"disputed epochs: {self.disputed}")
        for reason, count in self._reasons().most_common():
            lines.append(f"skipped {count}: {reason}")
        return "\n".join(lines)


async def replay(
    *,
    pipeline: Pipeline,
    watcher: RetargetWatcher,
    epochs: Sequence[int],
    publish: bool,
    tip_height: int | None,
    progress: bool = True,
) -> ReplaySummary:
    """Run the pipeline over ``epochs`` in order; see the module docstring."""
    repo: Any = pipeline.repository
    summary = ReplaySummary()
    started = time.perf_counter()
    final = {item.epoch: item for item in await repo.agreed_history(pipeline.network)}
    seed_watcher(watcher, list(final.values()))
    bar = tqdm(epochs, unit="epoch", disable=not progress, desc="replay", leave=False)
    asked: list[int] = []
    reached = False
    for epoch in bar:
        if epoch in final:
            summary.skipped[epoch] = f"already {final[epoch].status}"
            continue
        if tip_height is not None and epoch * 2016 > tip_height:
            summary.skipped[epoch] = BEYOND_TIP
            continue
        observed = await watcher.observe(epoch)
        asked.append(epoch)
        reached = reached or any(
            not isinstance(r, SourceFailure) or r.kind not in UNREACHABLE_KINDS
            for r in observed.results
        )
        result = await pipeline.on_observed(observed, index=False)
        summary.agreed += result.agreed
        summary.disputed += result.disputed
        for insufficient_epoch, reason in result.insufficient:
            summary.skipped[insufficient_epoch] = f"insufficient: {reason}"
    if epochs:
        # One index pass for the whole range (same values, far fewer writes); over the
        # whole range, so epochs agreed by an interrupted earlier run get theirs too.
        await pipeline.update_indices(from_epoch=min(epochs))
    if publish and tip_height is not None:
        summary.published += (await pipeline.publish_confirmed(tip_height)).published
    if asked and not reached:
        summary.unobserved = asked
    summary.elapsed_s = time.perf_counter() - started
    bar.close()
    log.info("replay_done", **summary.as_dict())
    return summary


async def run_replay(
    config: Config, epochs: range, *, publish: bool, checkpoints: bool, progress: bool
) -> ReplaySummary:
    """``bme-oracle replay``: build the components, replay ``epochs``, close everything.

    ``epochs`` is cut at the sources' effective tip (the quorum-th highest) before anything
    is built per epoch (``--to-epoch 10000000`` costs nothing); fewer tips than the quorum
    is an error.
    """
    if checkpoints and config.network.name != "mainnet":
        raise InputError(
            f"--checkpoints holds mainnet headers; the configured network is {config.network.name}"
        )
    if publish and not config.publisher.enabled:
        raise InputError("--publish needs [publisher] enabled = true in the configuration")
    parts = await build_components(
        config,
        sources=[CheckpointSource()] if checkpoints else None,
        quorum=1 if checkpoints else None,
        publish=publish,
        check_schema=True,
        record_health=False,
    )
    try:
        tips, failures = [], []
        for source in parts.sources:
            try:
                tips.append((await source.tip()).height)
            except SourceError as exc:
                failures.append(exc)
        # the quorum-th highest tip, never one source's alone: an inflated tip neither
        # widens the range nor confirms anything
        tip = quorum_tip(tips, parts.watcher.quorum)
        if tip is None:
            unreachable = all(isinstance(exc, SourceUnavailable) for exc in failures)
            who = (
                "no source answered its tip"
                if not tips
                else f"only {len(tips)} source(s) answered a tip, the quorum is "
                f"{parts.watcher.quorum}"
            )
            raise (SourceUnavailable if unreachable else SourceError)(
                f"{who}, so nothing can be replayed: " + "; ".join(str(exc) for exc in failures)
            )
        last = tip // EPOCH_BLOCKS
        summary = await replay(
            pipeline=parts.pipeline,
            watcher=parts.watcher,
            epochs=range(epochs.start, min(epochs.stop, last + 1)),
            publish=publish,
            tip_height=tip,
            progress=progress,
        )
        summary.beyond_tip = range(max(epochs.start, last + 1), epochs.stop)
        return summary
    finally:
        await parts.close()
