"""The API's snapshot: everything ``/v1/...`` serves, in memory, as arrays and rendered bodies.

Sits between the store and the handlers. ``Snapshot`` is built from one
``Repository.read_contents`` (every retarget with its observations and
publications, every stored index value, the disagreements); ``ApiState``
(``oracle.api.state``) builds one at start and a new one after every
pipeline event that changed data, and swaps it in with one assignment, so a
request never sees half an update. This node's own signatures are the small
``SignedReports``, reloaded apart. The data changes at most once a block and
the index once a retarget, which is why a request may as well be answered
from memory.

Query parameters are answered from the arrays, never from a per-URL cache:
pages of ``/v1/retargets`` are slices of pre-rendered rows, ``?at=`` and
``?from=&to=`` bisect the retarget times (``oracle.index.history.IndexTable``),
BME_N for an N nobody stored is one subtraction of prefix sums. What is memoised
is bounded by the data: one body per stored epoch, and a small LRU per N.

Values are exact, as before: the index stage's stored values are served as
stored (``stored: true``), others come from the same formulas
(``oracle.index.bme``) with the same single floor.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from oracle.api.bodies import CSV, Body, dumps, json_body
from oracle.api.context import ApiError
from oracle.api.params import DEFAULT_DISAGREEMENTS, DEFAULT_LIMIT
from oracle.api.views import (
    DIFFICULTY_POINT_FIELDS,
    INDEX_POINT_FIELDS,
    csv_header,
    csv_row,
    difficulty_point_json,
    disagreement_json,
    index_json,
    index_point_json,
    retarget_detail_json,
    retarget_json,
)
from oracle.errors import IndexUnavailable
from oracle.index.bme import BmeValue, EpochTarget
from oracle.index.history import IndexTable
from oracle.store.records import AttestationRecord, IndexRecord, RetargetRecord, StoreContents
from oracle.store.states import FINAL_RETARGET_STATUSES

#: Rendered (N, epoch) index values kept per snapshot.
INDEX_MEMO = 1024
#: N whose whole history is kept rendered per snapshot.
HISTORY_MEMO = 16

_Points = tuple[tuple[bytes | None, ...], tuple[bytes | None, ...]]


def _not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


class Snapshot:
    """What the API serves at one moment; immutable once built (memos only fill in)."""

    def __init__(
        self, contents: StoreContents, *, index_days: Sequence[int], version: int = 0
    ) -> None:
        self.network = contents.network
        self.marker = contents.marker
        self.version = version
        self.index_days = tuple(index_days)
        records = contents.retargets
        self._records = {r.epoch: r for r in records}
        self._epochs = [r.epoch for r in records]
        self._rows = [dumps(retarget_json(r)) for r in records]
        self.agreed: tuple[RetargetRecord, ...] = tuple(
            r for r in records if r.status in FINAL_RETARGET_STATUSES
        )
        self.latest: RetargetRecord | None = self.agreed[-1] if self.agreed else None
        self.table = IndexTable.build(
            [EpochTarget.from_bits(r.epoch, r.bits, r.time) for r in self.agreed]
        )
        self._known = {r.height: (r.time, r.bits) for r in self.agreed}
        self._stored: dict[int, dict[int, IndexRecord]] = defaultdict(dict)
        for value in contents.index_values:
            self._stored[value.n_days][value.epoch] = value
        self._disagreements = [(d, dumps(disagreement_json(d))) for d in contents.disagreements]
        self._details: dict[int, Body] = {}
        self._defaults: dict[str, Body] = {}
        self._whole_difficulty: dict[bool, Body] = {}  # by "csv"
        self._index_fields = functools.lru_cache(maxsize=INDEX_MEMO)(self._render_index)
        self._index_points = functools.lru_cache(maxsize=HISTORY_MEMO)(self._render_points)
        self._whole_history = functools.lru_cache(maxsize=2 * HISTORY_MEMO)(
            lambda n_days, csv: self._index_history(n_days, None, None, csv)
        )

    # -- facts for other parts -----------------------------------------------------------

    def known_header(self, height: int) -> tuple[int, int] | None:
        """(time, bits) of the agreed retarget block at ``height``, if there is one."""
        return self._known.get(height)

    # -- /v1/retargets -------------------------------------------------------------------

    def retargets(self, *, limit: int, before_epoch: int | None) -> Body:
        """Newest first, ``limit`` epochs below ``before_epoch``: a slice of rendered rows."""
        default = before_epoch is None and limit == DEFAULT_LIMIT
        if default and "retargets" in self._defaults:
            return self._defaults["retargets"]
        end = (
            len(self._epochs)
            if before_epoch is None
            else bisect.bisect_left(self._epochs, before_epoch)
        )
        start = max(0, end - limit)
        rows = self._rows[start:end]
        rows.reverse()
        next_before = str(self._epochs[start]).encode() if end - start == limit else b"null"
        body = Body(
            b'{"network":' + dumps(self.network) + b',"retargets":[' + b",".join(rows)
            + b'],"next_before_epoch":' + next_before + b"}"
        )  # fmt: skip
        if default:
            self._defaults["retargets"] = body
        return body

    def retarget(self, epoch: int) -> Body:
        """One epoch with every observation, publication, other block and stored index value."""
        body = self._details.get(epoch)
        if body is None:
            record = self._records.get(epoch)
            if record is None:
                raise _not_found(f"no retarget stored for {self.network} epoch {epoch}")
            indices = [
                value
                for n in self.index_days
                if (value := self._stored.get(n, {}).get(epoch)) is not None
            ]
            detail = retarget_detail_json(record, indices)
            detail["network"] = self.network
            body = self._details[epoch] = json_body(detail)
        return body

    # -- /v1/index -----------------------------------------------------------------------

    def index(self, n_days: int, at: int | None) -> Body:
        """BME_N at the latest agreed epoch, or at the epoch in force at ``at``."""
        if not self.table:
            raise _not_found(f"no agreed retarget stored for {self.network} yet")
        try:
            epoch = self.table.epochs[-1] if at is None else self.table.epoch_at(at)
        except IndexUnavailable as exc:
            raise _not_found(str(exc)) from exc
        body = self._index_fields(n_days, epoch)
        if at is None:
            return body
        # The memoised body with its "at": null filled in (the one field that varies).
        return Body(body.data.replace(b'"at":null', b'"at":%d' % at, 1))

    def value(self, n_days: int, epoch: int) -> tuple[BmeValue | IndexRecord, bool]:
        """BME_N at agreed ``epoch`` and whether it is the index stage's stored value."""
        stored = self._stored.get(n_days, {}).get(epoch)
        if stored is not None:
            return stored, True
        try:
            return self.table.value(n_days, epoch), False
        except IndexUnavailable as exc:
            raise _not_found(str(exc)) from exc

    def _render_index(self, n_days: int, epoch: int) -> Body:
        value, stored = self.value(n_days, epoch)
        row = self._records[epoch]
        fields = index_json(
            network=self.network,
            value=value,
            height=row.height,
            retarget_time=row.time,
            status=row.status,
            at=None,
            stored=stored,
        )
        return json_body(fields)

    def index_history(
        self, n_days: int, *, start: int | None, end: int | None, csv: bool = False
    ) -> Body:
        """BME_N in force from time ``start`` to ``end``: one point per agreed epoch."""
        if start is None and end is None:
            return self._whole_history(n_days, csv)
        return self._index_history(n_days, start, end, csv)

    def _index_history(self, n_days: int, start: int | None, end: int | None, csv: bool) -> Body:
        json_rows, csv_rows = self._index_points(n_days)
        span = self.table.span(start, end)
        if csv:
            return _csv(INDEX_POINT_FIELDS, csv_rows[span.start : span.stop])
        head = {"network": self.network, "n_days": n_days, "from": start, "to": end}
        return _json_points(head, json_rows[span.start : span.stop])

    def _render_points(self, n_days: int) -> _Points:
        json_rows: list[bytes | None] = [None] * len(self.table)
        csv_rows: list[bytes | None] = [None] * len(self.table)
        for computed in self.table.series(n_days, range(len(self.table))):
            position = self.table.positions[computed.epoch]
            value = self._stored.get(n_days, {}).get(computed.epoch) or computed
            record = self.agreed[position]
            point = index_point_json(value, height=record.height, time=record.time)
            json_rows[position] = dumps(point)
            csv_rows[position] = csv_row(point, INDEX_POINT_FIELDS)
        return tuple(json_rows), tuple(csv_rows)

    # -- /v1/difficulty/history ------------------------------------------------------------

    def difficulty_history(self, *, start: int | None, end: int | None, csv: bool = False) -> Body:
        """The agreed retargets in force from time ``start`` to ``end``: bits and difficulty."""
        whole = start is None and end is None
        if whole and csv in self._whole_difficulty:
            return self._whole_difficulty[csv]
        json_rows, csv_rows = self._difficulty_rows
        span = self.table.span(start, end)
        if csv:
            body = _csv(DIFFICULTY_POINT_FIELDS, csv_rows[span.start : span.stop])
        else:
            head = {"network": self.network, "from": start, "to": end}
            body = _json_points(head, json_rows[span.start : span.stop])
        if whole:
            self._whole_difficulty[csv] = body
        return body

    @functools.cached_property
    def _difficulty_rows(self) -> _Points:
        points = [difficulty_point_json(r) for r in self.agreed]
        return (
            tuple(dumps(p) for p in points),
            tuple(csv_row(p, DIFFICULTY_POINT_FIELDS) for p in points),
        )

    # -- /v1/disagreements -----------------------------------------------------------------

    def disagreements(self, *, limit: int, epoch: int | None, kind: str | None) -> Body:
        """Newest first, optionally one epoch and one kind, at most ``limit``."""
        default = epoch is None and kind is None and limit == DEFAULT_DISAGREEMENTS
        if default and "disagreements" in self._defaults:
            return self._defaults["disagreements"]
        rows = [
            row
            for record, row in self._disagreements
            if (epoch is None or record.epoch == epoch) and (kind is None or record.kind == kind)
        ][:limit]
        body = Body(
            b'{"network":' + dumps(self.network) + b',"disagreements":[' + b",".join(rows) + b"]}"
        )
        if default:
            self._defaults["disagreements"] = body
        return body


def _json_points(head: dict[str, Any], rows: Sequence[bytes | None]) -> Body:
    return Body(
        dumps(head)[:-1] + b',"points":[' + b",".join(r for r in rows if r is not None) + b"]}"
    )


def _csv(fields: Sequence[str], rows: Sequence[bytes | None]) -> Body:
    return Body(csv_header(fields) + b"".join(r for r in rows if r is not None), CSV)


class SignedReports:
    """``/v1/attestations/{epoch}``: this node's own signatures, by epoch (immutable).

    Kept apart from ``Snapshot``: the other operators ask for a signature the
    moment this node made it, so these are reloaded alone (one small read) as
    soon as the coordinator stores one, even in the middle of a pipeline pass.
    """

    def __init__(self, records: Sequence[AttestationRecord], signing: tuple[int, str] | None):
        """``signing``: this node's ``(chain_id, contract_address)`` when it signs reports."""
        self.signing = signing
        self._records: dict[int, list[AttestationRecord]] = defaultdict(list)
        for record in records:
            self._records[record.epoch].append(record)
        self._bodies: dict[int, Body] = {}

    def body(self, epoch: int) -> Body:
        """The signatures over the report of ``epoch`` (an empty list before it signed)."""
        if self.signing is None:
            raise _not_found("this oracle does not sign reports (no [publisher])")
        body = self._bodies.get(epoch)
        if body is None:
            body = self._render(epoch, self.signing)
            if epoch in self._records:  # memo only what is stored: bounded by the data
                self._bodies[epoch] = body
        return body

    def _render(self, epoch: int, signing: tuple[int, str]) -> Body:
        # Imported here: the wire format pulls in the signing stack, which only a
        # node that signs needs.
        from oracle.peers.wire import SignedReport, attestation_body

        items = [
            SignedReport.from_json(
                {"signer": r.signer, "report": r.report, "signature": r.signature_hex}
            )
            for r in self._records.get(epoch, ())
        ]
        chain_id, contract = signing
        return json_body(
            attestation_body(epoch, chain_id=chain_id, contract_address=contract, items=items)
        )
