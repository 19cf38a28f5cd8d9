"""Repository section: observations, retarget candidates, agreement, orphaning, publication.

Store stage of DESIGN.md. One network+epoch can have several candidate blocks
(sources disagree, reorgs); at most one is agreed or published, enforced by a
partial unique index. A new agreed block for an unpublished epoch orphans the
old one, which is kept. Every write is an idempotent upsert in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.bitcoin.header import parse_header
from oracle.errors import InputError, InvalidHeader, StoreConflict
from oracle.store import validate
from oracle.store._sql import RepositoryBase, canonical_hash, insert_for
from oracle.store.models import Observation, Publication, Retarget
from oracle.store.records import (
    AgreedEpoch,
    AgreedInput,
    ObservationInput,
    ObservationRecord,
    RetargetRecord,
)
from oracle.store.rows import epoch_record, observation_record, primary_row, retarget_record
from oracle.store.states import FINAL_RETARGET_STATUSES, RETARGET_STATUSES, RetargetStatus
from oracle.store.types import utcnow

EPOCH_BLOCKS = 2016
_PUBLICATION_KEY = ["network", "epoch", "chain_id", "contract_address", "block_hash_hex"]


def _observation_values(network: str, item: ObservationInput, now: datetime) -> dict[str, object]:
    epoch = validate.epoch(item.epoch)
    source = validate.name(item.source, "source", 64)
    at = validate.aware(item.observed_at, "observed_at") if item.observed_at else now
    claimed: list[object] = []
    height = block_hash = bits = time = raw = None
    if item.ok or item.block_hash_hex is not None:
        # a block, verified or not: what the source said is kept (an unverified one too)
        height = validate.non_negative_int(item.height, "height", maximum=2**31 - 1)
        block_hash = validate.block_hash_hex(item.block_hash_hex)
        bits = validate.bits(item.bits)
        time = validate.header_time(item.time)
        raw = validate.raw_header(item.raw_header, required=False)
        claimed = [height, block_hash, bits, time, raw.hex() if raw else None]
    if item.ok:
        claim = ["ok", *claimed]
        error_kind = error_message = None
    else:
        error_kind = validate.name(item.error_kind, "error_kind", 64)
        error_message = item.error_message
        claim = ["error", error_kind, *claimed]
    return {
        "network": network, "epoch": epoch, "source": source, "claim_key": canonical_hash(claim),
        "ok": item.ok, "height": height, "block_hash_hex": block_hash, "bits": bits, "time": time,
        "raw_header": raw, "error_kind": error_kind, "error_message": error_message,
        "observed_at": at, "last_observed_at": at,
    }  # fmt: skip


def _check_agreed(item: AgreedInput) -> AgreedInput:
    epoch = validate.epoch(item.epoch)
    height = validate.non_negative_int(item.height, "height")
    if height != epoch * EPOCH_BLOCKS:
        raise InputError(
            f"the retarget block of epoch {epoch} is at height {epoch * EPOCH_BLOCKS}, got {height}"
        )
    block_hash = validate.block_hash_hex(item.block_hash_hex)
    raw = validate.raw_header(item.raw_header, required=True)
    assert raw is not None
    try:
        header = parse_header(raw)
    except InvalidHeader as exc:  # pragma: no cover - length already checked
        raise InputError(f"raw_header of epoch {epoch}: {exc}") from exc
    if header.block_hash_hex != block_hash:
        raise InputError(
            f"raw_header of epoch {epoch} hashes to {header.block_hash_hex}, not {block_hash}"
        )
    if header.bits != validate.bits(item.bits) or header.time != validate.header_time(item.time):
        raise InputError(
            f"raw_header of epoch {epoch} has bits {header.bits:08x} time {header.time}, "
            f"not bits {item.bits:08x} time {item.time}"
        )
    sources = tuple(validate.name(s, "source", 64) for s in item.sources)
    last = _check_last_header(epoch, header.prev_hash_hex, item.last_header)
    return AgreedInput(epoch, height, block_hash, item.bits, item.time, raw, sources, last)


def _check_last_header(epoch: int, parent_hash_hex: str, value: bytes | None) -> bytes | None:
    """The header at 2016e-1 must be the retarget header's parent (the contract checks the
    same link); None is allowed (an epoch agreed without it is stored, not publishable)."""
    last = validate.raw_header(value, required=False)
    if last is None:
        return None
    try:
        parsed = parse_header(last)
    except InvalidHeader as exc:  # pragma: no cover - length already checked
        raise InputError(f"last_header of epoch {epoch}: {exc}") from exc
    if parsed.block_hash_hex != parent_hash_hex:
        raise InputError(
            f"last_header of epoch {epoch} is block {parsed.block_hash_hex}, not the retarget "
            f"block's parent {parent_hash_hex}"
        )
    return last


class RetargetsMixin(RepositoryBase):
    """Observations and the retarget lifecycle."""

    async def record_observation(self, network: str, observation: ObservationInput) -> None:
        """Store one source's claim (or failure) about an epoch; repeating it only bumps
        ``last_observed_at``. A successful claim also adds the block as an ``observed``
        retarget candidate."""
        await self.record_observations(network, [observation])

    async def record_observations(
        self, network: str, observations: Iterable[ObservationInput]
    ) -> None:
        """Store several claims in one transaction (e.g. every source's answer for a tick)."""
        network = validate.network(network)
        now = utcnow()
        rows: dict[tuple[object, ...], dict[str, object]] = {}
        for item in observations:
            values = _observation_values(network, item, now)
            rows[(values["epoch"], values["source"], values["claim_key"])] = values
        if not rows:
            return
        candidates: dict[tuple[object, ...], dict[str, object]] = {}
        for values in rows.values():
            if values["ok"]:
                candidates.setdefault((values["epoch"], values["block_hash_hex"]), {
                    "network": network, "epoch": values["epoch"], "height": values["height"],
                    "block_hash_hex": values["block_hash_hex"], "bits": values["bits"],
                    "time": values["time"], "raw_header": values["raw_header"],
                    "status": RetargetStatus.OBSERVED, "observed_at": values["observed_at"],
                })  # fmt: skip

        async def write(session: AsyncSession) -> None:
            stmt = insert_for(session, Observation)
            newer = stmt.excluded.last_observed_at > Observation.last_observed_at
            stmt = stmt.on_conflict_do_update(
                index_elements=["network", "epoch", "source", "claim_key"],
                set_={
                    "last_observed_at": case(
                        (newer, stmt.excluded.last_observed_at), else_=Observation.last_observed_at
                    ),
                    "error_message": case(
                        (newer, stmt.excluded.error_message), else_=Observation.error_message
                    ),
                },
            )
            await session.execute(stmt, list(rows.values()))
            if candidates:
                cand = insert_for(session, Retarget).on_conflict_do_nothing(
                    index_elements=["network", "epoch", "block_hash_hex"]
                )
                await session.execute(cand, list(candidates.values()))

        await self._tx("record_observations", write)

    async def record_agreed(
        self,
        network: str,
        *,
        epoch: int,
        height: int,
        block_hash_hex: str,
        bits: int,
        time: int,
        raw_header: bytes,
        sources: Sequence[str],
        last_header: bytes | None = None,
    ) -> RetargetRecord:
        """Store a cross-checked retarget as agreed (see ``record_agreed_many``)."""
        item = AgreedInput(
            epoch, height, block_hash_hex, bits, time, raw_header, tuple(sources), last_header
        )
        return (await self.record_agreed_many(network, [item]))[0]

    async def record_agreed_many(
        self, network: str, retargets: Sequence[AgreedInput]
    ) -> list[RetargetRecord]:
        """Store agreed retargets in one transaction.

        Re-recording the same block is a no-op. A different block for an epoch whose
        agreed block is unpublished orphans the old one (kept, ``orphaned_at`` set);
        for a published epoch it raises StoreConflict. The raw header must hash to the
        block hash and carry the given bits and time, and a ``last_header`` must be its
        parent (InputError otherwise); a ``last_header`` learned later is filled in.
        """
        network = validate.network(network)
        items = [_check_agreed(item) for item in retargets]
        if not items:
            return []

        async def write(session: AsyncSession) -> list[RetargetRecord]:
            now = utcnow()
            epochs = sorted({item.epoch for item in items})
            existing = (await session.scalars(
                select(Retarget).where(Retarget.network == network, Retarget.epoch.in_(epochs))
            )).all()  # fmt: skip
            by_key = {(r.epoch, r.block_hash_hex): r for r in existing}
            final = {r.epoch: r for r in existing if r.status in FINAL_RETARGET_STATUSES}
            result = []
            for item in items:
                row = by_key.get((item.epoch, item.block_hash_hex))
                current = final.get(item.epoch)
                if current is not None and current is not row:
                    if current.status == RetargetStatus.PUBLISHED:
                        raise StoreConflict(
                            f"{network} epoch {item.epoch} is already published with block "
                            f"{current.block_hash_hex}; refusing agreed block {item.block_hash_hex}"
                        )
                    current.status, current.orphaned_at = RetargetStatus.ORPHANED, now
                    await session.flush()  # free the one-agreed-per-epoch slot first
                if row is None:
                    row = Retarget(
                        network=network,
                        epoch=item.epoch,
                        height=item.height,
                        block_hash_hex=item.block_hash_hex,
                        bits=item.bits,
                        time=item.time,
                        raw_header=item.raw_header,
                        last_header=item.last_header,
                        status=RetargetStatus.AGREED,
                        sources=sorted(item.sources),
                        observed_at=now,
                        agreed_at=now,
                    )
                    session.add(row)
                    by_key[(item.epoch, item.block_hash_hex)] = row
                elif row.status in FINAL_RETARGET_STATUSES:
                    _check_same_block(network, row, item)
                    if row.last_header is None and item.last_header is not None:
                        row.last_header = item.last_header
                else:
                    # An observed/orphaned candidate: the agreed fields are verified against
                    # the header, so they win over whatever a (possibly lying) source claimed.
                    row.height, row.bits, row.time = item.height, item.bits, item.time
                    row.raw_header, row.sources = item.raw_header, sorted(item.sources)
                    row.last_header = item.last_header or row.last_header
                    row.status, row.agreed_at = RetargetStatus.AGREED, now
                final[item.epoch] = row
                result.append(row)
            await session.flush()
            return [retarget_record(r) for r in result]

        return await self._tx("record_agreed", write)

    async def mark_orphaned(
        self, network: str, epoch: int, block_hash_hex: str, *, even_if_published: bool = False
    ) -> RetargetRecord:
        """Mark a stored retarget block as orphaned (idempotent).

        A published block is refused (StoreConflict) unless ``even_if_published``: the
        pipeline passes it when a published block left the best chain, so the epoch's new
        block can be agreed and replace it on chain; ``published_at`` and the publication
        rows are kept as the record of what was on chain.
        """
        network, epoch = validate.network(network), validate.epoch(epoch)
        block_hash = validate.block_hash_hex(block_hash_hex)

        async def write(session: AsyncSession) -> RetargetRecord:
            row = await _row(session, network, epoch, block_hash)
            if row.status == RetargetStatus.PUBLISHED and not even_if_published:
                raise StoreConflict(
                    f"{network} epoch {epoch} block {block_hash} is published; "
                    "it cannot be marked orphaned"
                )
            if row.status != RetargetStatus.ORPHANED:
                row.status, row.orphaned_at = RetargetStatus.ORPHANED, utcnow()
            return retarget_record(row)

        return await self._tx("mark_orphaned", write)

    async def mark_published(
        self,
        network: str,
        epoch: int,
        *,
        tx_hash: str | None,
        chain_id: int,
        contract_address: str | None = None,
        contract: str | None = None,
        block_hash_hex: str | None = None,
    ) -> RetargetRecord:
        """Record that the epoch's agreed retarget was published to a contract by ``tx_hash``.

        ``tx_hash`` may be None (or "") when the report was found already on chain; a later
        call with the hash fills it in. Idempotent; a different tx for the same contract,
        epoch and block is a StoreConflict, and so is an epoch without an agreed block (or
        whose agreed block is not ``block_hash_hex``). A replacement on chain (another block
        for the epoch, after a reorg) is a publication of its own. ``contract`` is an alias
        of ``contract_address``.
        """
        network, epoch = validate.network(network), validate.epoch(epoch)
        tx = validate.tx_hash(tx_hash) if tx_hash else None
        chain = validate.non_negative_int(chain_id, "chain_id")
        address = validate.address(contract_address or contract, "contract_address")
        expected = validate.block_hash_hex(block_hash_hex) if block_hash_hex else None

        async def write(session: AsyncSession) -> RetargetRecord:
            row = (await session.scalars(select(Retarget).where(
                Retarget.network == network, Retarget.epoch == epoch,
                Retarget.status.in_(FINAL_RETARGET_STATUSES),
            ).with_for_update())).first()  # fmt: skip
            if row is None or (expected and row.block_hash_hex != expected):
                raise StoreConflict(
                    f"{network} epoch {epoch} has no agreed retarget"
                    + (f" with block {expected}" if expected else "")
                    + "; cannot mark it published"
                )
            now = utcnow()
            stmt = insert_for(session, Publication).on_conflict_do_nothing(
                index_elements=_PUBLICATION_KEY
            )
            await session.execute(stmt, [{
                "network": network, "epoch": epoch, "block_hash_hex": row.block_hash_hex,
                "chain_id": chain, "contract_address": address, "tx_hash": tx, "published_at": now,
            }])  # fmt: skip
            stored = (await session.scalars(select(Publication).where(
                Publication.network == network, Publication.epoch == epoch,
                Publication.chain_id == chain, Publication.contract_address == address,
                Publication.block_hash_hex == row.block_hash_hex,
            ))).one()  # fmt: skip
            if stored.tx_hash is None and tx is not None:
                stored.tx_hash = tx
            if tx is not None and stored.tx_hash != tx:
                raise StoreConflict(
                    f"{network} epoch {epoch} is already published to {address} on chain {chain} "
                    f"by {stored.tx_hash} (block {stored.block_hash_hex}), not {tx}"
                )
            if row.status != RetargetStatus.PUBLISHED:
                row.status, row.published_at = RetargetStatus.PUBLISHED, now
            return retarget_record(row)

        return await self._tx("mark_published", write)

    async def get_retarget(self, network: str, epoch: int) -> RetargetRecord | None:
        """The epoch's retarget (published > agreed > observed > orphaned) with every source's
        observations, its publications and the epoch's other candidate blocks."""
        network, epoch = validate.network(network), validate.epoch(epoch)

        async def read(session: AsyncSession) -> RetargetRecord | None:
            rows = (await session.scalars(select(Retarget).where(
                Retarget.network == network, Retarget.epoch == epoch))).all()  # fmt: skip
            observations = await _observations(session, network, epoch)
            if not rows:
                return None
            publications = (await session.scalars(select(Publication).where(
                Publication.network == network, Publication.epoch == epoch,
            ).order_by(Publication.id))).all()  # fmt: skip
            return epoch_record(rows, observations, publications)

        return await self._tx("get_retarget", read)

    async def observations(self, network: str, epoch: int) -> list[ObservationRecord]:
        """Every claim every source made about ``epoch``, by source then time."""
        network, epoch = validate.network(network), validate.epoch(epoch)

        async def read(session: AsyncSession) -> list[ObservationRecord]:
            return [observation_record(o) for o in await _observations(session, network, epoch)]

        return await self._read1("observations", read)

    async def list_retargets(
        self, network: str, *, limit: int = 50, before_epoch: int | None = None
    ) -> list[RetargetRecord]:
        """The newest ``limit`` epochs (below ``before_epoch``), newest first, one row each
        (without observations; use ``get_retarget`` for those)."""
        network = validate.network(network)
        limit = validate.non_negative_int(limit, "limit", maximum=10_000)

        async def read(session: AsyncSession) -> list[RetargetRecord]:
            epochs_q = select(Retarget.epoch).where(Retarget.network == network)
            if before_epoch is not None:
                epochs_q = epochs_q.where(Retarget.epoch < validate.epoch(before_epoch))
            epochs_q = epochs_q.distinct().order_by(Retarget.epoch.desc()).limit(limit)
            epochs = list((await session.scalars(epochs_q)).all())
            if not epochs:
                return []
            rows = (await session.scalars(select(Retarget).where(
                Retarget.network == network, Retarget.epoch.in_(epochs)))).all()  # fmt: skip
            grouped: dict[int, list[Retarget]] = {}
            for row in rows:
                grouped.setdefault(row.epoch, []).append(row)
            return [retarget_record(primary_row(grouped[e])) for e in epochs]

        return await self._tx("list_retargets", read)

    async def latest_agreed(self, network: str) -> RetargetRecord | None:
        """The agreed or published retarget with the highest epoch, or None."""
        network = validate.network(network)

        async def read(session: AsyncSession) -> RetargetRecord | None:
            row = await _latest_final(session, network)
            return retarget_record(row) if row else None

        return await self._read1("latest_agreed", read)

    async def agreed_history(self, network: str) -> list[AgreedEpoch]:
        """Every agreed or published epoch, ascending, with bits and header time."""
        network = validate.network(network)

        async def read(session: AsyncSession) -> list[AgreedEpoch]:
            result = await session.execute(select(
                Retarget.epoch, Retarget.height, Retarget.block_hash_hex, Retarget.bits,
                Retarget.time, Retarget.status,
            ).where(Retarget.network == network, Retarget.status.in_(FINAL_RETARGET_STATUSES))
             .order_by(Retarget.epoch))  # fmt: skip
            return [
                AgreedEpoch(e, h, block, bits, t, RetargetStatus(status))
                for e, h, block, bits, t, status in result.all()
            ]

        return await self._read1("agreed_history", read)

    async def epochs_with_status(self, network: str, status: str) -> list[int]:
        """Epochs with a retarget in ``status`` (observed/agreed/published/orphaned), ascending."""
        network = validate.network(network)
        if status not in RETARGET_STATUSES:
            raise InputError(
                f"status should be one of {', '.join(RETARGET_STATUSES)}, got {status!r}"
            )

        async def read(session: AsyncSession) -> list[int]:
            query = (select(Retarget.epoch).where(Retarget.network == network,
                                                  Retarget.status == status)
                     .distinct().order_by(Retarget.epoch))  # fmt: skip
            return list((await session.scalars(query)).all())

        return await self._read1("epochs_with_status", read)


def _check_same_block(network: str, row: Retarget, item: AgreedInput) -> None:
    if (row.height, row.bits, row.time, row.raw_header) != (
        item.height,
        item.bits,
        item.time,
        item.raw_header,
    ):
        raise StoreConflict(
            f"{network} epoch {item.epoch} block {item.block_hash_hex} is stored with height "
            f"{row.height} bits {row.bits:08x} time {row.time}; got height {item.height} "
            f"bits {item.bits:08x} time {item.time}"
        )


async def _row(session: AsyncSession, network: str, epoch: int, block_hash: str) -> Retarget:
    row = (await session.scalars(select(Retarget).where(
        Retarget.network == network, Retarget.epoch == epoch, Retarget.block_hash_hex == block_hash,
    ).with_for_update())).first()  # fmt: skip
    if row is None:
        raise StoreConflict(f"no stored retarget for {network} epoch {epoch} block {block_hash}")
    return row


async def _latest_final(session: AsyncSession, network: str) -> Retarget | None:
    top = (select(func.max(Retarget.epoch)).where(
        Retarget.network == network, Retarget.status.in_(FINAL_RETARGET_STATUSES),
    ).scalar_subquery())  # fmt: skip
    return (await session.scalars(select(Retarget).where(
        Retarget.network == network, Retarget.epoch == top,
        Retarget.status.in_(FINAL_RETARGET_STATUSES),
    ))).first()  # fmt: skip


async def _observations(session: AsyncSession, network: str, epoch: int) -> Sequence[Observation]:
    query = select(Observation).where(Observation.network == network, Observation.epoch == epoch)
    order = (Observation.source, Observation.observed_at, Observation.id)
    return (await session.scalars(query.order_by(*order))).all()
