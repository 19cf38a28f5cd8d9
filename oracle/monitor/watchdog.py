"""Turn what the pipeline observes into metrics and alerts, with one call per fact.

The pipeline and the scheduled jobs report facts here ("these sources are in
this state", "epoch e is not published yet", "the contract says X, the
database Y"); ``Watchdog`` decides whether that is an incident, counts it,
alerts through ``Alerter`` (rate-limited per incident key) and sends a
"resolved" notice when the condition clears. Keeping the thresholds here
(``MonitorConfig``) keeps the pipeline free of alerting policy.

Incident keys: the source name for source alerts, ``epoch:<e>`` for epoch
alerts, the signer address for balance alerts, ``<peer>:<epoch>`` for peers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oracle.config import MonitorConfig
from oracle.monitor.alerts import Alerter, webhook_label
from oracle.monitor.health import SourceHealth
from oracle.monitor.metrics import Metrics

DISAGREEMENT = "disagreement"
SOURCE_FAILING = "source_failing"
SOURCE_STALE = "source_stale"
READBACK_MISMATCH = "readback_mismatch"
PUBLICATION_LATE = "publication_late"
SIGNER_BALANCE_LOW = "signer_balance_low"
PEER_CONFLICT = "peer_conflict"


class Watchdog:
    """Facts in; metrics, alerts and resolutions out."""

    def __init__(self, config: MonitorConfig, metrics: Metrics, alerter: Alerter) -> None:
        self._config = config
        self._metrics = metrics
        self._alerter = alerter

    async def sources(self, healths: Sequence[SourceHealth]) -> None:
        """The current verdict on every source (``health.judge_source``)."""
        for health in healths:
            self._metrics.set_source_healthy(health.name, health.healthy)
            kind = SOURCE_STALE if health.reason.startswith("stale") else SOURCE_FAILING
            self._metrics.set_source_stale(health.name, not health.healthy and kind == SOURCE_STALE)
            if health.healthy:
                await self._alerter.resolve(SOURCE_FAILING, "source healthy again", key=health.name)
                await self._alerter.resolve(SOURCE_STALE, "source healthy again", key=health.name)
            else:
                await self._alerter.alert(
                    kind,
                    f"source {health.name} is unhealthy: {health.reason}",
                    key=health.name,
                    severity="warning",
                    source=health.name,
                    reason=health.reason,
                )

    async def disagreement(self, epoch: int, field: str, claims: Mapping[str, Any]) -> None:
        """Sources disagree on ``field`` of ``epoch`` (claims: source -> value)."""
        self._metrics.count_disagreement(field)
        await self._alerter.alert(
            DISAGREEMENT,
            f"sources disagree on {field} of epoch {epoch}",
            key=f"epoch:{epoch}:{field}",
            epoch=epoch,
            field=field,
            claims=dict(claims),
        )

    async def publication(
        self, *, epoch: int, retarget_time: int, published: bool, now: float
    ) -> bool:
        """Alert when epoch ``epoch`` is unpublished ``publication_late_s`` after its retarget
        block's header time; resolve once it is published. Returns whether it is late."""
        key = f"epoch:{epoch}"
        if published:
            await self._alerter.resolve(PUBLICATION_LATE, f"epoch {epoch} published", key=key)
            return False
        late_s = now - retarget_time
        if late_s <= self._config.publication_late_s:
            return False
        await self._alerter.alert(
            PUBLICATION_LATE,
            f"epoch {epoch} is not published {late_s:.0f} s after its retarget block",
            key=key,
            epoch=epoch,
            late_s=round(late_s),
            threshold_s=self._config.publication_late_s,
        )
        return True

    async def unagreed(self, *, epoch: int, since: float, detail: str, now: float) -> bool:
        """Alert (``publication_late``) when epoch ``epoch`` still has no agreed retarget
        ``publication_late_s`` after ``since`` (its retarget block); ``detail`` says why
        (disputed, no quorum). Returns whether it is late."""
        late_s = now - since
        if late_s <= self._config.publication_late_s:
            return False
        await self._alerter.alert(
            PUBLICATION_LATE,
            f"epoch {epoch} has no agreed retarget {late_s:.0f} s after its retarget block "
            f"({detail}); nothing can be published for it",
            key=f"epoch:{epoch}",
            epoch=epoch,
            late_s=round(late_s),
            threshold_s=self._config.publication_late_s,
            reason=detail,
        )
        return True

    async def agreed(self, epoch: int) -> None:
        """Epoch ``epoch`` is agreed at last (a node that does not publish: the end of it)."""
        await self._alerter.resolve(PUBLICATION_LATE, f"epoch {epoch} agreed", key=f"epoch:{epoch}")

    async def published(
        self, *, epoch: int, retarget_time: int, confirmed_at: float, gas_used: int
    ) -> None:
        """A report for ``epoch`` confirmed on chain: record lag and gas, clear lateness."""
        self._metrics.set_last_published_epoch(epoch)
        self._metrics.observe_publication_lag(confirmed_at - retarget_time)
        self._metrics.observe_gas_used(gas_used)
        await self._alerter.resolve(
            PUBLICATION_LATE, f"epoch {epoch} published", key=f"epoch:{epoch}"
        )

    async def signer_balance(self, address: str, balance_wei: int) -> bool:
        """Alert when the sender's balance is under ``min_signer_balance_wei``."""
        self._metrics.set_signer_balance(balance_wei)
        self._metrics.set_signer_balance_minimum(self._config.min_signer_balance_wei)
        if balance_wei >= self._config.min_signer_balance_wei:
            await self._alerter.resolve(SIGNER_BALANCE_LOW, "balance topped up", key=address)
            return False
        await self._alerter.alert(
            SIGNER_BALANCE_LOW,
            f"signer {address} has {balance_wei} wei, below {self._config.min_signer_balance_wei}",
            key=address,
            address=address,
            balance_wei=str(balance_wei),
            minimum_wei=str(self._config.min_signer_balance_wei),
        )
        return True

    async def readback(
        self, *, epoch: int, stored: Mapping[str, Any], on_chain: Mapping[str, Any] | None
    ) -> bool:
        """Compare what the contract holds for ``epoch`` with the database; alert on any
        difference (``on_chain`` None: the contract has nothing). Returns whether they match."""
        key = f"epoch:{epoch}"
        if on_chain is not None and dict(on_chain) == dict(stored):
            await self._alerter.resolve(READBACK_MISMATCH, f"epoch {epoch} matches", key=key)
            return True
        self._metrics.count_readback_mismatch()
        differing = sorted(
            name
            for name in set(stored) | set(on_chain or {})
            if on_chain is None or stored.get(name) != on_chain.get(name)
        )
        await self._alerter.alert(
            READBACK_MISMATCH,
            f"contract and database differ for epoch {epoch}: {', '.join(differing)}",
            key=key,
            epoch=epoch,
            stored=dict(stored),
            on_chain=dict(on_chain) if on_chain is not None else None,
        )
        return False

    async def peer_conflict(self, peer: str, epoch: int, detail: Mapping[str, Any]) -> None:
        """A peer signed two different reports for one epoch (``peer``: its name or URL;
        a URL is reduced to scheme and host, as credentials may sit in it)."""
        peer = webhook_label(peer) if "://" in peer else peer
        self._metrics.count_peer_conflict(peer)
        await self._alerter.alert(
            PEER_CONFLICT,
            f"peer {peer} signed two different reports for epoch {epoch}",
            key=f"{peer}:{epoch}",
            severity="critical",
            peer=peer,
            epoch=epoch,
            detail=dict(detail),
        )
