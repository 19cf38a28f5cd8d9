"""Repository section: everything the read API serves, read in one transaction.

Store stage of DESIGN.md, read side. The HTTP API answers from an in-memory
snapshot (``oracle.api.snapshot``) that is rebuilt from this one read at start
and after every pipeline event that changed data; reading it all at once, in
one transaction, gives the snapshot a consistent view (never an epoch's
publication without its retarget) for a handful of statements instead of a few
per request. The records are the same as the per-item reads return
(``get_retarget``, ``index_value``, ``list_disagreements``). This node's own
signatures (``contract_attestations``) are read apart: peers ask for them the
moment they are made, so the API reloads them alone, at once.

``contents_marker`` is the cheap question before the expensive read: counts,
highest ids and latest change times of those rows, which change whenever a
write changes what the API serves (every status change stamps its time, every
upsert its ``computed_at`` or ``last_observed_at``). Equal markers, equal contents.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.store import validate
from oracle.store._sql import RepositoryBase
from oracle.store.models import (
    Attestation,
    Disagreement,
    IndexValue,
    Observation,
    Publication,
    Retarget,
)
from oracle.store.records import AttestationRecord, RetargetRecord, StoreContents
from oracle.store.rows import attestation_record, disagreement_record, epoch_record, index_record


class BulkMixin(RepositoryBase):
    """The whole served state of one network in one read."""

    async def read_contents(self, network: str) -> StoreContents:
        """Every epoch (as ``get_retarget`` returns it), index value and disagreement of
        ``network``."""
        network = validate.network(network)

        async def read(session: AsyncSession) -> StoreContents:
            marker = await _marker(session, network)
            rows = (await session.scalars(select(Retarget).where(
                Retarget.network == network))).all()  # fmt: skip
            observations = (await session.scalars(select(Observation).where(
                Observation.network == network,
            ).order_by(Observation.epoch, Observation.source, Observation.observed_at,
                       Observation.id))).all()  # fmt: skip
            publications = (await session.scalars(select(Publication).where(
                Publication.network == network).order_by(Publication.id))).all()  # fmt: skip
            values = (await session.scalars(select(IndexValue).where(
                IndexValue.network == network,
            ).order_by(IndexValue.n_days, IndexValue.epoch))).all()  # fmt: skip
            disagreements = (await session.scalars(select(Disagreement).where(
                Disagreement.network == network,
            ).order_by(Disagreement.recorded_at.desc(), Disagreement.id.desc()))).all()  # fmt: skip
            return StoreContents(
                network=network,
                marker=marker,
                retargets=_epochs(rows, observations, publications),
                index_values=tuple(index_record(v) for v in values),
                disagreements=tuple(disagreement_record(d) for d in disagreements),
            )

        return await self._tx("read_contents", read)

    async def contents_marker(self, network: str) -> tuple[Any, ...]:
        """What ``read_contents`` would return, summarised: it differs whenever they do."""
        network = validate.network(network)

        async def read(session: AsyncSession) -> tuple[Any, ...]:
            return await _marker(session, network)

        return await self._read1("contents_marker", read)

    async def contract_attestations(
        self, chain_id: int, contract_address: str, *, source: str = "self"
    ) -> list[AttestationRecord]:
        """Every signature from ``source`` for one contract, by epoch then time (one read)."""
        chain = validate.non_negative_int(chain_id, "chain_id")
        address = validate.address(contract_address, "contract_address")

        async def read(session: AsyncSession) -> list[AttestationRecord]:
            query = select(Attestation).where(
                Attestation.chain_id == chain,
                Attestation.contract_address == address,
                Attestation.source == source,
            )
            order = (Attestation.epoch, Attestation.received_at, Attestation.id)
            rows = (await session.scalars(query.order_by(*order))).all()
            return [attestation_record(r) for r in rows]

        return await self._read1("contract_attestations", read)


async def _marker(session: AsyncSession, network: str) -> tuple[Any, ...]:
    """One statement: per table, the aggregates that move with every served change."""

    def of(where: ColumnElement[bool], *columns: Any) -> list[Any]:
        return [select(column).where(where).scalar_subquery() for column in columns]

    row = (await session.execute(select(
        *of(Retarget.network == network, func.count(), func.max(Retarget.id),
            func.max(Retarget.agreed_at), func.max(Retarget.published_at),
            func.max(Retarget.orphaned_at)),
        *of(Observation.network == network, func.count(), func.max(Observation.id),
            func.max(Observation.last_observed_at)),
        *of(Publication.network == network, func.count(), func.max(Publication.id),
            func.count(Publication.tx_hash)),
        *of(IndexValue.network == network, func.count(), func.max(IndexValue.computed_at)),
        *of(Disagreement.network == network, func.count(), func.max(Disagreement.id)),
    ))).one()  # fmt: skip
    return tuple(row)


def _epochs(
    rows: Sequence[Retarget],
    observations: Sequence[Observation],
    publications: Sequence[Publication],
) -> tuple[RetargetRecord, ...]:
    """One record per epoch, ascending, assembled as ``get_retarget`` assembles it."""
    by_epoch: dict[int, list[Retarget]] = defaultdict(list)
    for row in rows:
        by_epoch[row.epoch].append(row)
    seen: dict[int, list[Observation]] = defaultdict(list)
    for observation in observations:
        seen[observation.epoch].append(observation)
    published: dict[int, list[Publication]] = defaultdict(list)
    for publication in publications:
        published[publication.epoch].append(publication)
    return tuple(
        epoch_record(by_epoch[e], seen.get(e, ()), published.get(e, ())) for e in sorted(by_epoch)
    )
