"""Repository section: source health samples and attestations (signatures made or collected).

Store stage of DESIGN.md. Health samples feed ``/health`` and metrics and are
pruned by age; a sample is keyed by (source, time) so a retried write is not
counted twice. Attestations are keyed by (chain, contract, epoch, signer,
report hash): the same signature arriving from several peers is stored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.errors import InputError
from oracle.store import validate
from oracle.store._sql import RepositoryBase, canonical_hash, insert_for, jsonable
from oracle.store.models import Attestation, SourceHealth
from oracle.store.records import AttestationRecord, SourceHealthSummary
from oracle.store.rows import attestation_record
from oracle.store.types import utcnow


class HealthMixin(RepositoryBase):
    """Source health samples and attestations."""

    async def record_health(
        self,
        source: str,
        latency_ms: float | None,
        ok: bool,
        error_kind: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Store one health sample (idempotent per source and time)."""
        source = validate.name(source, "source", 64)
        at = validate.aware(at, "at") if at is not None else utcnow()
        if latency_ms is not None and (isinstance(latency_ms, bool) or latency_ms < 0):
            raise InputError(f"latency_ms should be >= 0, got {latency_ms!r}")
        kind = validate.name(error_kind, "error_kind", 64) if error_kind is not None else None

        async def write(session: AsyncSession) -> None:
            stmt = insert_for(session, SourceHealth).on_conflict_do_nothing(
                index_elements=["source", "at"]
            )
            await session.execute(
                stmt,
                [
                    {
                        "source": source,
                        "at": at,
                        "ok": bool(ok),
                        "latency_ms": latency_ms,
                        "error_kind": kind,
                    }
                ],
            )

        await self._tx("record_health", write)

    async def health_summary(self, since: datetime) -> dict[str, SourceHealthSummary]:
        """Per source since ``since``: samples, errors by kind, latency, last ok / error."""
        since = validate.aware(since, "since")

        async def read(session: AsyncSession) -> dict[str, SourceHealthSummary]:
            recent = SourceHealth.at >= since
            totals = (await session.execute(
                select(SourceHealth.source, SourceHealth.ok, func.count(),
                       func.avg(SourceHealth.latency_ms), func.max(SourceHealth.latency_ms),
                       func.max(SourceHealth.at))
                .where(recent).group_by(SourceHealth.source, SourceHealth.ok)
            )).all()  # fmt: skip
            kinds = (await session.execute(
                select(SourceHealth.source, SourceHealth.error_kind, func.count())
                .where(recent, SourceHealth.ok.is_(False))
                .group_by(SourceHealth.source, SourceHealth.error_kind)
            )).all()  # fmt: skip
            newest = (
                select(SourceHealth.source, func.max(SourceHealth.at).label("at"))
                .where(recent, SourceHealth.ok.is_(False)).group_by(SourceHealth.source)
                .subquery()
            )  # fmt: skip
            last_errors = (await session.execute(
                select(SourceHealth.source, SourceHealth.error_kind, SourceHealth.at).join(
                    newest, (SourceHealth.source == newest.c.source)
                    & (SourceHealth.at == newest.c.at))
            )).all()  # fmt: skip
            return _summaries(totals, kinds, last_errors)

        return await self._tx("health_summary", read)

    async def prune_health(self, older_than: datetime) -> int:
        """Delete samples taken before ``older_than``; returns how many."""
        older_than = validate.aware(older_than, "older_than")

        async def write(session: AsyncSession) -> int:
            result = await session.execute(delete(SourceHealth).where(SourceHealth.at < older_than))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        return await self._tx("prune_health", write)

    async def save_attestation(
        self,
        *,
        chain_id: int,
        contract_address: str,
        epoch: int,
        signer: str,
        report: Mapping[str, Any],
        signature_hex: str,
        source: str = "self",
        received_at: datetime | None = None,
    ) -> bool:
        """Store a signature over ``report``; returns False when it was already stored."""
        report_json = jsonable(dict(report), "report")
        values = {
            "chain_id": validate.non_negative_int(chain_id, "chain_id"),
            "contract_address": validate.address(contract_address, "contract_address"),
            "epoch": validate.epoch(epoch),
            "signer": validate.address(signer, "signer"),
            "report": report_json,
            "report_hash": canonical_hash(report_json),
            "signature_hex": validate.hex_string(signature_hex, "signature_hex"),
            "source": validate.name(source, "source", 255),
            "received_at": validate.aware(received_at, "received_at") if received_at else utcnow(),
        }

        async def write(session: AsyncSession) -> bool:
            stmt = (
                insert_for(session, Attestation)
                .on_conflict_do_nothing(
                    index_elements=[
                        "chain_id",
                        "contract_address",
                        "epoch",
                        "signer",
                        "report_hash",
                    ]
                )
                .returning(Attestation.id)
            )
            return (await session.execute(stmt, values)).first() is not None

        return await self._tx("save_attestation", write)

    async def attestations_for_epoch(
        self, chain_id: int, contract_address: str, epoch: int
    ) -> list[AttestationRecord]:
        """Every stored signature for one contract and epoch, oldest first."""
        chain = validate.non_negative_int(chain_id, "chain_id")
        address = validate.address(contract_address, "contract_address")
        epoch = validate.epoch(epoch)

        async def read(session: AsyncSession) -> list[AttestationRecord]:
            rows = (await session.scalars(select(Attestation).where(
                Attestation.chain_id == chain, Attestation.contract_address == address,
                Attestation.epoch == epoch,
            ).order_by(Attestation.received_at, Attestation.id))).all()  # fmt: skip
            return [attestation_record(r) for r in rows]

        return await self._read1("attestations_for_epoch", read)


def _summaries(totals: Any, kinds: Any, last_errors: Any) -> dict[str, SourceHealthSummary]:
    acc: dict[str, dict[str, Any]] = {}
    for source, ok, count, avg, peak, last in totals:
        item = acc.setdefault(
            source,
            {
                "ok": 0,
                "err": 0,
                "sum": 0.0,
                "n_lat": 0,
                "max": None,
                "last_ok": None,
                "last_err": None,
                "kinds": {},
                "last_kind": None,
            },
        )
        item["ok" if ok else "err"] += count
        if avg is not None:
            item["sum"] += float(avg) * count
            item["n_lat"] += count
        if peak is not None:
            item["max"] = peak if item["max"] is None else max(item["max"], peak)
        item["last_ok" if ok else "last_err"] = last
    for source, kind, count in kinds:
        acc[source]["kinds"][kind or "unknown"] = count
    for source, kind, _at in last_errors:
        acc[source]["last_kind"] = kind
    return {
        source: SourceHealthSummary(
            source=source, samples=v["ok"] + v["err"], ok_count=v["ok"], error_count=v["err"],
            error_kinds=v["kinds"], latency_avg_ms=v["sum"] / v["n_lat"] if v["n_lat"] else None,
            latency_max_ms=v["max"], last_ok_at=_utc(v["last_ok"]),
            last_error_at=_utc(v["last_err"]),
            last_error_kind=v["last_kind"],
        )
        for source, v in sorted(acc.items())
    }  # fmt: skip


def _utc(value: Any) -> datetime | None:
    """Aggregates bypass the column type on SQLite (a string comes back); normalise to UTC."""
    if value is None:
        return None
    from datetime import UTC

    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime from the database, got {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
