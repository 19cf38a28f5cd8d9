"""The repository suite, run on the real Postgres server and on SQLite (``repository`` fixture).

Why: every later stage trusts these guarantees -- exact values, idempotent
writes, one agreed retarget and one live submission per key, reorg handling,
typed errors -- so they are checked on both backends, not mocked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from oracle.errors import InputError, StoreConflict
from oracle.index.bme import EpochTarget, bme_series
from oracle.store.records import ObservationInput
from oracle.store.repository import Repository
from oracle.store.types import UINT256_MAX
from tests.integration.test_store_data import last_headers, retarget_headers, sibling

NET = "mainnet"
CONTRACT = "0x" + "ab" * 20
SIGNERS = ["0x" + "11" * 20, "0x" + "22" * 20]
TX1, TX2 = "0x" + "01" * 32, "0x" + "02" * 32


async def test_ping_and_schema_at_head(repository: Repository) -> None:
    await repository.ping()
    await repository.check_schema()
    assert await repository.schema_revision() is not None


# --- observations and retargets ---------------------------------------------------------


async def test_observations_keep_every_claim_and_failure(repository: Repository) -> None:
    header = retarget_headers()[400]
    liar = sibling(header)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    await repository.record_observations(NET, [
        header.observation("bitcoind", observed_at=t0),
        header.observation("esplora", observed_at=t0),
        liar.observation("blockchain_com", observed_at=t0),
        ObservationInput(epoch=400, source="mempool", error_kind="timeout",
                         error_message="read timed out after 15 s", observed_at=t0),
    ])  # fmt: skip
    # the same claims again later: no new rows, last_observed_at moves
    t1 = t0 + timedelta(minutes=1)
    await repository.record_observation(NET, header.observation("bitcoind", observed_at=t1))
    await repository.record_observation(
        NET,
        ObservationInput(
            epoch=400, source="mempool", error_kind="timeout", error_message="again", observed_at=t1
        ),
    )

    observations = await repository.observations(NET, 400)
    assert [(o.source, o.ok) for o in observations] == [
        ("bitcoind", True),
        ("blockchain_com", True),
        ("esplora", True),
        ("mempool", False),
    ]
    by_source = {o.source: o for o in observations}
    assert by_source["bitcoind"].observed_at == t0
    assert by_source["bitcoind"].last_observed_at == t1
    assert by_source["bitcoind"].raw_header == header.raw
    assert by_source["blockchain_com"].block_hash_hex == liar.block_hash_hex
    assert by_source["mempool"].error_kind == "timeout"
    assert by_source["mempool"].error_message == "again"

    retarget = await repository.get_retarget(NET, 400)
    assert retarget is not None and retarget.status == "observed"
    assert {retarget.block_hash_hex, *(o.block_hash_hex for o in retarget.others)} == {
        header.block_hash_hex,
        liar.block_hash_hex,
    }
    assert len(retarget.observations) == 4


async def test_observation_timestamps_are_utc(repository: Repository) -> None:
    header = retarget_headers()[10]
    at = datetime(2024, 5, 1, 14, 0, tzinfo=UTC) + timedelta(microseconds=123)
    from zoneinfo import ZoneInfo

    await repository.record_observation(
        NET, header.observation("bitcoind", observed_at=at.astimezone(ZoneInfo("America/New_York")))
    )
    (stored,) = await repository.observations(NET, 10)
    assert stored.observed_at == at and stored.observed_at.utcoffset() == timedelta(0)
    naive = datetime(2024, 5, 1)  # noqa: DTZ001 - a naive datetime is the point of the test
    with pytest.raises(InputError, match="timezone-aware"):
        await repository.record_observation(NET, header.observation("esplora", observed_at=naive))


async def test_record_agreed_is_idempotent(repository: Repository) -> None:
    header = retarget_headers()[401]
    await repository.record_observation(NET, header.observation("bitcoind"))
    first = await repository.record_agreed(
        NET,
        epoch=401,
        height=header.height,
        block_hash_hex=header.block_hash_hex.upper(),
        bits=header.bits,
        time=header.time,
        raw_header=header.raw,
        sources=["esplora", "bitcoind"],
    )
    again = await repository.record_agreed(
        NET,
        epoch=401,
        height=header.height,
        block_hash_hex=header.block_hash_hex,
        bits=header.bits,
        time=header.time,
        raw_header=header.raw,
        sources=["bitcoind"],
    )
    assert first.status == again.status == "agreed"
    assert first.block_hash_hex == header.block_hash_hex  # normalised to lower case
    assert again.agreed_at == first.agreed_at and first.agreed_at is not None
    assert first.sources == ("bitcoind", "esplora")
    assert first.observed_at <= first.agreed_at
    stored = await repository.get_retarget(NET, 401)
    assert stored is not None and stored.others == () and stored.raw_header == header.raw
    assert await repository.epochs_with_status(NET, "agreed") == [401]


async def test_agreed_overrides_what_a_liar_said_about_the_same_block(
    repository: Repository,
) -> None:
    header = retarget_headers()[402]
    await repository.record_observation(NET, header.observation("liar", bits=0x1D00FFFF))
    record = await repository.record_agreed_many(NET, [header.agreed()])
    assert record[0].bits == header.bits
    stored = await repository.get_retarget(NET, 402)
    assert stored is not None and stored.bits == header.bits
    assert {o.bits for o in stored.observations} == {0x1D00FFFF}  # the claim itself is kept


async def test_reorg_before_publication_orphans_and_keeps_the_old_block(
    repository: Repository,
) -> None:
    header = retarget_headers()[403]
    replacement = sibling(header)
    await repository.record_agreed_many(NET, [header.agreed()])
    new = await repository.record_agreed_many(NET, [replacement.agreed()])
    assert new[0].block_hash_hex == replacement.block_hash_hex and new[0].status == "agreed"
    stored = await repository.get_retarget(NET, 403)
    assert stored is not None and stored.block_hash_hex == replacement.block_hash_hex
    (old,) = stored.others
    assert old.block_hash_hex == header.block_hash_hex and old.status == "orphaned"
    assert old.orphaned_at is not None and old.agreed_at is not None
    assert await repository.epochs_with_status(NET, "orphaned") == [403]
    # the original wins back: the replacement is orphaned, the original agreed again
    back = await repository.record_agreed_many(NET, [header.agreed()])
    assert back[0].block_hash_hex == header.block_hash_hex
    assert (await repository.latest_agreed(NET)).block_hash_hex == header.block_hash_hex  # type: ignore[union-attr]


async def test_published_epoch_cannot_be_replaced_or_orphaned(repository: Repository) -> None:
    header = retarget_headers()[404]
    await repository.record_agreed_many(NET, [header.agreed()])
    published = await repository.mark_published(
        NET, 404, tx_hash=TX1, chain_id=1, contract=CONTRACT.upper().replace("0X", "0x")
    )
    assert published.status == "published" and published.published_at is not None
    again = await repository.mark_published(NET, 404, tx_hash=TX1, chain_id=1, contract=CONTRACT)
    assert again.published_at == published.published_at
    with pytest.raises(StoreConflict, match="already published"):
        await repository.mark_published(NET, 404, tx_hash=TX2, chain_id=1, contract=CONTRACT)
    # a second contract is a separate publication
    await repository.mark_published(NET, 404, tx_hash=TX2, chain_id=10, contract=CONTRACT)
    with pytest.raises(StoreConflict, match="already published"):
        await repository.record_agreed_many(NET, [sibling(header).agreed()])
    with pytest.raises(StoreConflict, match="published"):
        await repository.mark_orphaned(NET, 404, header.block_hash_hex)
    # found already on chain (no tx hash known), later learned: the hash is filled in
    await repository.mark_published(NET, 404, tx_hash=None, chain_id=5, contract_address=CONTRACT)
    await repository.mark_published(NET, 404, tx_hash="", chain_id=5, contract_address=CONTRACT)
    await repository.mark_published(NET, 404, tx_hash=TX2, chain_id=5, contract_address=CONTRACT)
    stored = await repository.get_retarget(NET, 404)
    assert stored is not None and [p.chain_id for p in stored.publications] == [1, 10, 5]
    assert [p.tx_hash for p in stored.publications] == [TX1, TX2, TX2]
    assert stored.publications[0].contract_address == CONTRACT
    assert await repository.epochs_with_status(NET, "published") == [404]


async def test_the_proof_header_is_the_retarget_blocks_parent(repository: Repository) -> None:
    """``last_header`` (height 2016e-1) is stored with the agreed epoch, must link to the
    retarget header, and can be learned later (an epoch first agreed without it)."""
    header, last = retarget_headers()[407], last_headers()[407]
    with pytest.raises(InputError, match="not the retarget block's parent"):
        await repository.record_agreed_many(
            NET, [dataclasses.replace(header.agreed(), last_header=last_headers()[406])]
        )
    without = await repository.record_agreed_many(NET, [header.agreed()])
    assert without[0].last_header is None
    (filled,) = await repository.record_agreed_many(
        NET, [dataclasses.replace(header.agreed(), last_header=last)]
    )
    assert filled.last_header == last
    stored = await repository.get_retarget(NET, 407)
    assert stored is not None and stored.last_header == last and stored.raw_header == header.raw


async def test_a_published_block_orphaned_by_a_reorg_is_replaced(repository: Repository) -> None:
    """The correction path: the published block is orphaned on purpose, the new block is
    agreed and published to the same contract; both publications are kept."""
    header = retarget_headers()[408]
    replacement = sibling(header)
    await repository.record_agreed_many(NET, [header.agreed()])
    await repository.mark_published(NET, 408, tx_hash=TX1, chain_id=1, contract=CONTRACT)
    orphaned = await repository.mark_orphaned(
        NET, 408, header.block_hash_hex, even_if_published=True
    )
    assert orphaned.status == "orphaned" and orphaned.published_at is not None
    await repository.record_agreed_many(NET, [replacement.agreed()])
    new = replacement.block_hash_hex
    await repository.mark_published(
        NET, 408, tx_hash=TX2, chain_id=1, contract=CONTRACT, block_hash_hex=new
    )
    stored = await repository.get_retarget(NET, 408)
    assert stored is not None and stored.status == "published"
    assert stored.block_hash_hex == replacement.block_hash_hex
    assert [(p.block_hash_hex, p.tx_hash) for p in stored.publications] == [
        (header.block_hash_hex, TX1),
        (replacement.block_hash_hex, TX2),
    ]
    (old,) = stored.others
    assert old.block_hash_hex == header.block_hash_hex and old.status == "orphaned"


async def test_mark_published_needs_an_agreed_retarget(repository: Repository) -> None:
    with pytest.raises(StoreConflict, match="no agreed retarget"):
        await repository.mark_published(NET, 405, tx_hash=TX1, chain_id=1, contract=CONTRACT)
    header = retarget_headers()[405]
    await repository.record_agreed_many(NET, [header.agreed()])
    with pytest.raises(StoreConflict, match="no agreed retarget"):
        await repository.mark_published(
            NET,
            405,
            tx_hash=TX1,
            chain_id=1,
            contract=CONTRACT,
            block_hash_hex=sibling(header).block_hash_hex,
        )


async def test_mark_orphaned(repository: Repository) -> None:
    header = retarget_headers()[406]
    await repository.record_agreed_many(NET, [header.agreed()])
    first = await repository.mark_orphaned(NET, 406, header.block_hash_hex)
    second = await repository.mark_orphaned(NET, 406, header.block_hash_hex)
    assert first.status == second.status == "orphaned" and first.orphaned_at == second.orphaned_at
    assert await repository.latest_agreed(NET) is None
    with pytest.raises(StoreConflict, match="no stored retarget"):
        await repository.mark_orphaned(NET, 406, sibling(header).block_hash_hex)


async def test_history_listing_and_latest(repository: Repository) -> None:
    headers = retarget_headers()
    await repository.record_agreed_many(NET, [headers[e].agreed() for e in range(10, 20)])
    await repository.record_observation(NET, headers[20].observation("bitcoind"))  # observed only
    history = await repository.agreed_history(NET)
    assert [h.epoch for h in history] == list(range(10, 20))
    assert [(h.bits, h.time) for h in history] == [
        (headers[e].bits, headers[e].time) for e in range(10, 20)
    ]
    latest = await repository.latest_agreed(NET)
    assert latest is not None and latest.epoch == 19
    listed = await repository.list_retargets(NET, limit=3)
    assert [(r.epoch, r.status) for r in listed] == [
        (20, "observed"),
        (19, "agreed"),
        (18, "agreed"),
    ]
    older = await repository.list_retargets(NET, limit=2, before_epoch=12)
    assert [r.epoch for r in older] == [11, 10]
    assert await repository.latest_agreed("testnet4") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"height": 1}, "height"),
        ({"block_hash_hex": "zz" * 32}, "64 hex"),
        ({"bits": 0x1D00FFFF + 1}, "raw_header"),
        ({"raw_header": b"\x00" * 79}, "80 bytes"),
        ({"epoch": -1}, "epoch"),
    ],
)
async def test_record_agreed_rejects_bad_input(
    repository: Repository, change: dict[str, object], message: str
) -> None:
    header = retarget_headers()[50]
    fields = {
        "epoch": 50,
        "height": header.height,
        "block_hash_hex": header.block_hash_hex,
        "bits": header.bits,
        "time": header.time,
        "raw_header": header.raw,
        "sources": ["a", "b"],
        **change,
    }
    with pytest.raises(InputError, match=message):
        await repository.record_agreed(NET, **fields)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown network"):
        await repository.latest_agreed("mainnet2")


# --- index values -----------------------------------------------------------------------


async def test_index_values_are_exact(repository: Repository) -> None:
    headers = retarget_headers()
    await repository.record_agreed_many(NET, [headers[e].agreed() for e in range(280, 290)])
    history = [
        EpochTarget.from_bits(h.epoch, h.bits, h.time) for h in await repository.agreed_history(NET)
    ]
    values = [v for n in (14, 28, 84) for v in bme_series(n, history).values()]
    assert await repository.upsert_index_values(NET, values) == len(values) == 10 + 9 + 5
    assert await repository.upsert_index_values(NET, values) == len(values)  # idempotent
    for value in values:
        stored = await repository.index_value(NET, value.n_days, value.epoch)
        assert stored is not None
        assert stored.value == value.value and isinstance(stored.value, Fraction)
        assert stored.fixed == value.fixed
    latest = await repository.latest_index(NET, 84)
    assert latest is not None and latest.epoch == 289
    assert latest.value_decimal.startswith("0.0000")
    assert await repository.index_value(NET, 84, 284) is None
    both = await repository.latest_agreed_with_indices(NET)
    assert both is not None and both.retarget.epoch == 289
    assert sorted(both.indices) == [14, 28, 84]
    assert both.indices[28].value == bme_series(28, history)[289].value


async def test_index_value_is_replaced_when_recomputed(repository: Repository) -> None:
    headers = retarget_headers()
    history = [EpochTarget.from_bits(e, headers[e].bits) for e in (300, 301)]
    (before,) = bme_series(14, history[:1]).values()
    changed = EpochTarget.from_bits(300, headers[301].bits)
    (after,) = bme_series(14, [changed]).values()
    assert before.value != after.value
    await repository.upsert_index_values(NET, [before])
    await repository.upsert_index_values(NET, [after])
    stored = await repository.index_value(NET, 14, 300)
    assert stored is not None and stored.value == after.value and stored.fixed == after.fixed


async def test_index_value_rejects_inconsistent_fixed_point(repository: Repository) -> None:
    from dataclasses import replace

    (value,) = bme_series(14, [EpochTarget.from_bits(1, 0x1D00FFFF)]).values()
    with pytest.raises(InputError, match="floor"):
        await repository.upsert_index_values(NET, [replace(value, fixed=value.fixed + 1)])
    with pytest.raises(InputError, match="multiple of 14"):
        await repository.latest_index(NET, 15)


# --- disagreements ----------------------------------------------------------------------


async def test_disagreements_are_recorded_once(repository: Repository) -> None:
    claims = {"bitcoind": "0" * 64, "esplora": "1" * 64, "blockchain_com": None}
    first = await repository.record_disagreement(NET, 500, "block_hash_hex", claims)
    again = await repository.record_disagreement(NET, 500, "block_hash_hex", dict(claims))
    other = await repository.record_disagreement(NET, 500, "bits", {"a": 0x17034219, "b": 1})
    assert first == again != other
    listed = await repository.list_disagreements(NET, limit=10)
    assert {d.id for d in listed} == {first, other}
    (bits,) = [d for d in listed if d.field == "bits"]
    assert bits.claims == {"a": 0x17034219, "b": 1} and bits.kind == "field"
    assert await repository.list_disagreements(NET, limit=1, epoch=499) == []


async def test_conflicting_attestation_evidence(repository: Repository) -> None:
    report_a = {"epoch": 500, "bits": 0x17034219, "blockHash": "0x" + "aa" * 32}
    report_b = {**report_a, "bits": 0x17034220}
    kwargs = {"chain_id": 1, "contract_address": CONTRACT, "epoch": 500, "signer": SIGNERS[0]}
    first = await repository.record_conflicting_attestation(
        NET,
        **kwargs,
        report_a=report_a,
        signature_a="0x" + "11" * 65,
        report_b=report_b,
        signature_b="0x" + "22" * 65,
    )
    swapped = await repository.record_conflicting_attestation(
        NET,
        **kwargs,
        report_a=report_b,
        signature_a="0x" + "22" * 65,
        report_b=report_a,
        signature_b="0x" + "11" * 65,
    )
    assert first == swapped
    (record,) = await repository.list_disagreements(NET, kind="conflicting_attestation")
    assert record.evidence is not None and record.evidence["signer"] == SIGNERS[0]
    assert {r["report"]["bits"] for r in record.evidence["reports"]} == {0x17034219, 0x17034220}
    with pytest.raises(InputError, match="two different reports"):
        await repository.record_conflicting_attestation(
            NET,
            **kwargs,
            report_a=report_a,
            signature_a="0x11",
            report_b=report_a,
            signature_b="0x22",
        )


# --- submissions ------------------------------------------------------------------------


REPORT = {"epoch": 410, "bits": 0x17034219, "time": 1_700_000_000, "block_hash_hex": "ab" * 32}


async def test_submission_lifecycle(repository: Repository) -> None:
    sid = await repository.create_submission(1, CONTRACT, 410, SIGNERS, REPORT)
    with pytest.raises(StoreConflict, match="already exists"):
        await repository.create_submission(1, CONTRACT, 410, SIGNERS, REPORT)
    fee = 3 * 10**9
    tx_id = await repository.add_submission_tx(
        sid,
        nonce=7,
        tx_hash=TX1,
        raw_tx=b"\x02signed",
        max_fee_per_gas=fee,
        max_priority_fee_per_gas=10**9,
    )
    assert tx_id == await repository.add_submission_tx(
        sid,
        nonce=7,
        tx_hash=TX1,
        raw_tx=b"\x02signed",
        max_fee_per_gas=fee,
        max_priority_fee_per_gas=10**9,
    )  # same attempt again: no new row
    (tx,) = await repository.submission_txs(sid)
    assert tx.sent_at is None and tx.max_fee_per_gas == fee and tx.raw_tx == b"\x02signed"

    await repository.transition_submission(sid, "broadcast", tx_hash=TX1)
    replacement_fee = UINT256_MAX  # fee columns are exact up to 2^256 - 1
    await repository.add_submission_tx(
        sid,
        nonce=7,
        tx_hash=TX2,
        raw_tx=b"\x02bumped",
        max_fee_per_gas=replacement_fee,
        max_priority_fee_per_gas=2 * 10**9,
    )
    await repository.transition_submission(sid, "broadcast", tx_hash=TX2, detail="fee bump")
    receipt = {
        "transactionHash": TX2,
        "status": 1,
        "gasUsed": "0x5208",
        "blockNumber": 12,
        "logs": [],
        "blockHash": bytes(32),
    }
    await repository.transition_submission(sid, "mined", receipt=receipt)
    assert [s.id for s in await repository.live_submissions(1, CONTRACT)] == [sid]
    done = await repository.transition_submission(sid, "confirmed")
    assert done.state == "confirmed" and not done.live
    assert await repository.live_submissions(1, CONTRACT) == []

    txs = await repository.submission_txs(sid)
    assert [t.tx_hash for t in txs] == [TX1, TX2]
    assert txs[0].sent_at is not None and txs[1].sent_at is not None
    assert txs[1].max_fee_per_gas == UINT256_MAX
    assert txs[1].gas_used == 21000 and txs[1].receipt is not None
    assert txs[1].receipt["blockHash"] == "0x" + "00" * 32
    events = await repository.submission_events(sid)
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "signed"),
        ("signed", "broadcast"),
        ("broadcast", "broadcast"),
        ("broadcast", "mined"),
        ("mined", "confirmed"),
    ]
    assert events[2].detail == "fee bump" and events[3].tx_hash == TX2
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))

    # confirmed is final and blocks a second publication of the epoch
    assert (await repository.transition_submission(sid, "confirmed")).state == "confirmed"
    with pytest.raises(StoreConflict, match="terminal"):
        await repository.transition_submission(sid, "broadcast")
    with pytest.raises(StoreConflict, match="already exists"):
        await repository.create_submission(1, CONTRACT, 410, SIGNERS, REPORT)
    found = await repository.submission_for_epoch(1, CONTRACT, 410)
    assert found is not None and found.id == sid and found.signers == tuple(SIGNERS)
    assert found.report == REPORT


async def test_failed_submission_frees_the_epoch(repository: Repository) -> None:
    sid = await repository.create_submission(1, CONTRACT, 411, SIGNERS, REPORT)
    with pytest.raises(StoreConflict, match="illegal transition"):
        await repository.transition_submission(sid, "confirmed")
    with pytest.raises(StoreConflict, match="no stored tx"):
        await repository.transition_submission(sid, "broadcast", tx_hash=TX1)
    await repository.transition_submission(sid, "failed", detail="nonce too low")
    with pytest.raises(StoreConflict, match="no new transactions"):
        await repository.add_submission_tx(
            sid, nonce=1, tx_hash=TX1, raw_tx=b"x", max_fee_per_gas=2, max_priority_fee_per_gas=1
        )
    second = await repository.create_submission(1, CONTRACT, 411, SIGNERS, REPORT)
    assert second != sid
    found = await repository.submission_for_epoch(1, CONTRACT, 411)
    assert found is not None and found.id == second and found.state == "signed"
    # other chain, other contract, other epoch: independent
    await repository.create_submission(5, CONTRACT, 411, SIGNERS, REPORT)
    await repository.create_submission(1, "0x" + "cd" * 20, 411, SIGNERS, REPORT)
    assert await repository.submission_for_epoch(1, CONTRACT, 999) is None


async def test_a_replacement_is_another_block_of_a_confirmed_epoch(
    repository: Repository,
) -> None:
    """After a reorg the epoch's new block goes through ``replace``: a submission of its own
    once the first one is confirmed; never two in flight for one epoch."""
    first = await repository.create_submission(1, CONTRACT, 413, SIGNERS, REPORT)
    other = {**REPORT, "block_hash_hex": "cd" * 32, "function": "replace"}
    with pytest.raises(StoreConflict, match="already exists"):  # the first is still live
        await repository.create_submission(1, CONTRACT, 413, SIGNERS, other)
    await repository.add_submission_tx(
        first, nonce=1, tx_hash=TX1, raw_tx=b"x", max_fee_per_gas=2, max_priority_fee_per_gas=1
    )
    await repository.transition_submission(first, "broadcast", tx_hash=TX1)
    await repository.transition_submission(first, "mined", tx_hash=TX1)
    await repository.transition_submission(first, "confirmed", tx_hash=TX1)
    second = await repository.create_submission(1, CONTRACT, 413, SIGNERS, other)
    assert second != first
    found = await repository.submission_for_epoch(1, CONTRACT, 413)
    assert found is not None and found.id == second and found.function == "replace"
    assert found.block_hash_hex == "cd" * 32
    by_block = await repository.submission_for_epoch(1, CONTRACT, 413, "ab" * 32)
    assert by_block is not None and by_block.id == first and by_block.function == "submit"
    with pytest.raises(StoreConflict, match="already exists"):  # the first block, again
        await repository.create_submission(1, CONTRACT, 413, SIGNERS, REPORT)


async def test_concurrent_create_submission_only_one_wins(repository: Repository) -> None:
    results = await asyncio.gather(
        *(repository.create_submission(1, CONTRACT, 412, SIGNERS, REPORT) for _ in range(5)),
        return_exceptions=True,
    )
    ids = [r for r in results if isinstance(r, int)]
    conflicts = [r for r in results if isinstance(r, StoreConflict)]
    assert len(ids) == 1 and len(conflicts) == 4, results
    assert [s.id for s in await repository.live_submissions(1, CONTRACT)] == ids


async def test_submission_input_errors(repository: Repository) -> None:
    with pytest.raises(InputError, match="contract_address"):
        await repository.create_submission(1, "0x1234", 1, SIGNERS, REPORT)
    with pytest.raises(InputError, match="at least one signer"):
        await repository.create_submission(1, CONTRACT, 1, [], REPORT)
    sid = await repository.create_submission(1, CONTRACT, 1, SIGNERS, REPORT)
    with pytest.raises(InputError, match="max_priority_fee_per_gas"):
        await repository.add_submission_tx(
            sid, nonce=1, tx_hash=TX1, raw_tx=b"x", max_fee_per_gas=1, max_priority_fee_per_gas=2
        )
    with pytest.raises(InputError, match="<= "):
        await repository.add_submission_tx(
            sid,
            nonce=1,
            tx_hash=TX1,
            raw_tx=b"x",
            max_fee_per_gas=UINT256_MAX + 1,
            max_priority_fee_per_gas=1,
        )
    with pytest.raises(InputError, match="state should be"):
        await repository.transition_submission(sid, "done")
    with pytest.raises(StoreConflict, match="no submission with id"):
        await repository.transition_submission(sid + 1000, "broadcast")


# --- health and attestations ------------------------------------------------------------


async def test_health_samples_summary_and_prune(repository: Repository) -> None:
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(6):
        ok = i % 3 != 2
        await repository.record_health(
            "esplora", 10.0 * (i + 1), ok, None if ok else "timeout", at=t0 + timedelta(seconds=i)
        )
    await repository.record_health("esplora", 10.0, True, at=t0)  # duplicate sample: ignored
    await repository.record_health("bitcoind", None, False, "refused", at=t0 + timedelta(hours=1))
    summary = await repository.health_summary(t0)
    esplora = summary["esplora"]
    assert (esplora.samples, esplora.ok_count, esplora.error_count) == (6, 4, 2)
    assert esplora.error_kinds == {"timeout": 2}
    assert esplora.latency_max_ms == 60.0
    assert esplora.latency_avg_ms == pytest.approx(35.0)
    assert esplora.last_ok_at == t0 + timedelta(seconds=4)
    assert esplora.last_error_at == t0 + timedelta(seconds=5)
    assert summary["bitcoind"].last_error_kind == "refused"
    assert summary["bitcoind"].latency_avg_ms is None
    assert set(await repository.health_summary(t0 + timedelta(minutes=30))) == {"bitcoind"}
    assert await repository.prune_health(t0 + timedelta(seconds=3)) == 3
    assert (await repository.health_summary(t0))["esplora"].samples == 3


async def test_attestations_are_stored_once(repository: Repository) -> None:
    report = {"epoch": 420, "bits": 0x17034219}
    common = {"chain_id": 1, "contract_address": CONTRACT, "epoch": 420}
    assert await repository.save_attestation(
        **common, signer=SIGNERS[0], report=report, signature_hex="0x" + "aa" * 65
    )
    assert not await repository.save_attestation(
        **common,
        signer=SIGNERS[0].upper().replace("0X", "0x"),
        report=dict(reversed(report.items())),
        signature_hex="0x" + "aa" * 65,
        source="http://peer:8080",
    )
    assert await repository.save_attestation(
        **common,
        signer=SIGNERS[1],
        report=report,
        signature_hex="0x" + "bb" * 65,
        source="http://peer:8080",
    )
    stored = await repository.attestations_for_epoch(1, CONTRACT, 420)
    assert [(a.signer, a.source) for a in stored] == [
        (SIGNERS[0], "self"),
        (SIGNERS[1], "http://peer:8080"),
    ]
    assert stored[0].report == report and stored[0].report_hash == stored[1].report_hash
    assert await repository.attestations_for_epoch(1, CONTRACT, 421) == []
