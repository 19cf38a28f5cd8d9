"""Repository section: BME index values and disagreements (between sources or signed reports).

Store stage of DESIGN.md. Index values are keyed by (network, N, epoch) and
upserted, so recomputing after a reorg replaces them; the exact value is kept
as a ``num/den`` fraction string next to the on-chain 10^18 integer.
Disagreements are fingerprinted by content, so recording one twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.errors import InputError
from oracle.index.bme import FIXED_POINT, BmeValue, epochs_for_days, format_decimal
from oracle.store import validate
from oracle.store._sql import RepositoryBase, canonical_hash, insert_for, jsonable
from oracle.store.models import Disagreement, IndexValue, Retarget
from oracle.store.records import DisagreementRecord, IndexRecord, LatestIndexed
from oracle.store.rows import disagreement_record, index_record, retarget_record
from oracle.store.states import DISAGREEMENT_KINDS, FINAL_RETARGET_STATUSES, DisagreementKind
from oracle.store.types import utcnow

DECIMAL_PLACES = 30


def _index_values(network: str, value: BmeValue) -> dict[str, Any]:
    if not isinstance(value, BmeValue):
        raise InputError(f"expected a BmeValue, got {value!r:.80}")
    epochs_for_days(value.n_days)
    epoch = validate.epoch(value.epoch)
    if not isinstance(value.value, Fraction) or value.value < 0:
        raise InputError(f"BME{value.n_days} at epoch {epoch}: value should be a Fraction >= 0")
    expected_fixed = value.value.numerator * FIXED_POINT // value.value.denominator
    if value.fixed != expected_fixed:
        raise InputError(
            f"BME{value.n_days} at epoch {epoch}: fixed {value.fixed} is not "
            f"floor(value x 10^18) = {expected_fixed}"
        )
    return {
        "network": network, "n_days": value.n_days, "epoch": epoch,
        "value_fraction": f"{value.value.numerator}/{value.value.denominator}",
        "value_decimal": format_decimal(value.value, DECIMAL_PLACES), "value_fixed": value.fixed,
    }  # fmt: skip


class IndicesMixin(RepositoryBase):
    """BME values and disagreements."""

    async def upsert_index_values(self, network: str, values: Iterable[BmeValue]) -> int:
        """Store BME values (one transaction); an existing (network, N, epoch) is replaced.
        Returns how many values were given."""
        network = validate.network(network)
        rows = {(v.n_days, v.epoch): _index_values(network, v) for v in values}
        if not rows:
            return 0
        now = utcnow()
        for row in rows.values():
            row["computed_at"] = now

        async def write(session: AsyncSession) -> int:
            stmt = insert_for(session, IndexValue)
            changed = tuple_(IndexValue.value_fraction, IndexValue.value_fixed) != tuple_(
                stmt.excluded.value_fraction, stmt.excluded.value_fixed
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["network", "n_days", "epoch"],
                set_={
                    name: stmt.excluded[name]
                    for name in ("value_fraction", "value_decimal", "value_fixed", "computed_at")
                },
                where=changed,
            )
            await session.execute(stmt, list(rows.values()))
            return len(rows)

        return await self._tx("upsert_index_values", write)

    async def index_value(self, network: str, n_days: int, epoch: int) -> IndexRecord | None:
        network, epoch = validate.network(network), validate.epoch(epoch)
        epochs_for_days(n_days)

        async def read(session: AsyncSession) -> IndexRecord | None:
            row = await session.get(IndexValue, (network, n_days, epoch))
            return index_record(row) if row else None

        return await self._read1("index_value", read)

    async def latest_index(self, network: str, n_days: int) -> IndexRecord | None:
        """BME_N at the highest epoch that has a value."""
        network = validate.network(network)
        epochs_for_days(n_days)

        async def read(session: AsyncSession) -> IndexRecord | None:
            row = (await session.scalars(select(IndexValue).where(
                IndexValue.network == network, IndexValue.n_days == n_days,
            ).order_by(IndexValue.epoch.desc()).limit(1))).first()  # fmt: skip
            return index_record(row) if row else None

        return await self._read1("latest_index", read)

    async def latest_agreed_with_indices(
        self, network: str, n_days: Sequence[int] = (14, 28, 84)
    ) -> LatestIndexed | None:
        """The latest agreed retarget and its BME values at that epoch, in one read."""
        network = validate.network(network)
        for n in n_days:
            epochs_for_days(n)

        final = Retarget.status.in_(FINAL_RETARGET_STATUSES)
        top = select(func.max(Retarget.epoch)).where(Retarget.network == network, final)
        query = (
            select(Retarget, IndexValue)
            .outerjoin(IndexValue, and_(
                IndexValue.network == Retarget.network, IndexValue.epoch == Retarget.epoch,
                IndexValue.n_days.in_(list(n_days)),
            ))
            .where(Retarget.network == network, final, Retarget.epoch == top.scalar_subquery())
        )  # fmt: skip

        async def read(session: AsyncSession) -> LatestIndexed | None:
            rows = (await session.execute(query)).all()  # one round trip: retarget + its values
            if not rows:
                return None
            values = {v.n_days: index_record(v) for _, v in rows if v is not None}
            return LatestIndexed(retarget_record(rows[0][0]), values)

        return await self._read1("latest_agreed_with_indices", read)

    async def record_disagreement(
        self, network: str, epoch: int, field: str, claims: Mapping[str, Any]
    ) -> int:
        """Record that sources disagree on ``field`` of ``epoch``: ``claims`` maps each source
        to what it said. Idempotent; returns the disagreement's id."""
        claims_json = jsonable(dict(claims), "claims")
        if not claims_json:
            raise InputError("a disagreement needs the claims of at least one source")
        field = validate.name(field, "field", 64)
        return await self._record(network, epoch, DisagreementKind.FIELD, field, claims_json, None)

    async def record_conflicting_attestation(
        self,
        network: str,
        *,
        chain_id: int,
        contract_address: str,
        epoch: int,
        signer: str,
        report_a: Mapping[str, Any],
        signature_a: str,
        report_b: Mapping[str, Any],
        signature_b: str,
    ) -> int:
        """Record evidence that ``signer`` signed two different reports for one epoch."""
        signer = validate.address(signer, "signer")
        reports = sorted(
            (
                {
                    "report": jsonable(dict(r), "report"),
                    "signature": validate.hex_string(s, "signature"),
                }
                for r, s in ((report_a, signature_a), (report_b, signature_b))
            ),
            key=lambda item: canonical_hash(item["report"]),
        )
        if reports[0]["report"] == reports[1]["report"]:
            raise InputError("conflicting attestation needs two different reports")
        claims = {signer: [canonical_hash(r["report"]) for r in reports]}
        evidence = {
            "chain_id": validate.non_negative_int(chain_id, "chain_id"),
            "contract_address": validate.address(contract_address, "contract_address"),
            "signer": signer,
            "reports": reports,
        }
        return await self._record(
            network, epoch, DisagreementKind.CONFLICTING_ATTESTATION, "signature", claims, evidence
        )

    async def _record(
        self,
        network: str,
        epoch: int,
        kind: str,
        field: str,
        claims: dict[str, Any],
        evidence: dict[str, Any] | None,
    ) -> int:
        network, epoch = validate.network(network), validate.epoch(epoch)
        assert kind in DISAGREEMENT_KINDS
        fingerprint = canonical_hash([kind, network, epoch, field, claims, evidence])

        async def write(session: AsyncSession) -> int:
            stmt = insert_for(session, Disagreement).on_conflict_do_nothing(
                index_elements=["fingerprint"]
            )
            await session.execute(stmt, [{
                "network": network, "epoch": epoch, "kind": kind, "field": field,
                "claims": claims, "evidence": evidence, "fingerprint": fingerprint,
                "recorded_at": utcnow(),
            }])  # fmt: skip
            return (await session.scalars(select(Disagreement.id).where(
                Disagreement.fingerprint == fingerprint))).one()  # fmt: skip

        return await self._tx("record_disagreement", write)

    async def list_disagreements(
        self, network: str, *, limit: int = 100, kind: str | None = None, epoch: int | None = None
    ) -> list[DisagreementRecord]:
        """Newest first, optionally only one ``kind`` or one ``epoch``."""
        network = validate.network(network)
        limit = validate.non_negative_int(limit, "limit", maximum=10_000)
        if kind is not None and kind not in DISAGREEMENT_KINDS:
            raise InputError(f"kind should be one of {', '.join(DISAGREEMENT_KINDS)}, got {kind!r}")

        async def read(session: AsyncSession) -> list[DisagreementRecord]:
            query = select(Disagreement).where(Disagreement.network == network)
            if kind is not None:
                query = query.where(Disagreement.kind == kind)
            if epoch is not None:
                query = query.where(Disagreement.epoch == validate.epoch(epoch))
            query = query.order_by(Disagreement.recorded_at.desc(), Disagreement.id.desc())
            rows = (await session.scalars(query.limit(limit))).all()
            return [disagreement_record(r) for r in rows]

        return await self._read1("list_disagreements", read)
