"""Which 2016e-1 header the pipeline keeps as the first half of the contract's proof.

Real mainnet headers (tests/data): the header is taken only from a source that agreed,
whose bits the retarget rule verified, and only if it is the retarget block's parent.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from functools import cache

from oracle.agreement.crosscheck import Agreed
from oracle.agreement.verify import verify_retarget
from oracle.agreement.watcher import EpochObserved
from oracle.bitcoin.difficulty import get_network
from oracle.bitcoin.header import Header, parse_header
from oracle.pipeline import proof_header
from oracle.sources.types import Observation
from tests.conftest import DATA

EPOCH = 300
NOW = datetime(2026, 11, 30, tzinfo=UTC)


@cache
def boundary() -> dict[int, Header]:
    with (DATA / "epoch_boundary_headers_0_832608.csv").open(newline="") as handle:
        return {
            int(row["height"]): parse_header(bytes.fromhex(row["header_hex"]))
            for row in csv.DictReader(handle)
        }


def observed(**last_by_source: Header | None) -> tuple[EpochObserved, Agreed]:
    """Every named source served the real retarget of EPOCH; ``None``: it could not serve
    the headers before it (the [1/4, 4] bound check)."""
    headers = boundary()
    height = EPOCH * 2016
    retarget, first = headers[height], headers[height - 2016]
    verifications = {}
    for source, last in last_by_source.items():
        verifications[source] = verify_retarget(
            get_network("mainnet"),
            epoch=EPOCH,
            retarget=retarget,
            first=first if last is not None else None,
            last=last,
            previous_bits=first.bits,
            source=source,
        )
    results = tuple(
        Observation(s, height, retarget.block_hash_hex, retarget, NOW) for s in last_by_source
    )
    agreed = Agreed(
        EPOCH, height, retarget.block_hash_hex, retarget.bits, retarget.time, retarget.raw,
        tuple(last_by_source),
    )  # fmt: skip
    event = EpochObserved(
        epoch=EPOCH,
        outcome=agreed,
        results=results,
        verifications=verifications,
        observed_at=NOW,
        last_headers={s: h for s, h in last_by_source.items() if h is not None},
    )
    return event, agreed


def test_the_header_verified_by_the_retarget_rule_is_kept() -> None:
    last = boundary()[EPOCH * 2016 - 1]
    event, agreed = observed(esplora=None, bitcoind=last)
    assert event.verifications["bitcoind"].method == "retarget_rule"
    assert event.verifications["esplora"].method == "bound"
    assert proof_header(event, agreed) == last.raw


def test_no_header_when_only_the_bound_was_checked() -> None:
    event, agreed = observed(esplora=None, mempool=None)
    assert {v.method for v in event.verifications.values()} == {"bound"}
    assert proof_header(event, agreed) is None


def test_a_header_that_failed_verification_or_did_not_agree_is_not_kept() -> None:
    stale_parent = boundary()[(EPOCH - 1) * 2016 - 1]  # a real header, not the parent
    event, agreed = observed(bitcoind=stale_parent)
    assert not event.verifications["bitcoind"].ok  # linkage fails
    assert proof_header(event, agreed) is None
    last = boundary()[EPOCH * 2016 - 1]
    event, agreed = observed(bitcoind=last)
    outsider = Agreed(
        agreed.epoch, agreed.height, agreed.block_hash_hex, agreed.bits, agreed.time,
        agreed.header, ("esplora",),
    )  # fmt: skip
    assert proof_header(event, outsider) is None  # bitcoind's header, but it did not agree
