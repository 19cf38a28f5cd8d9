"""The fee policy on its own: pure arithmetic, no node, and importable without the I/O stack."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from oracle.config import PublisherConfig
from oracle.errors import PublishError
from oracle.publish.fees import GWEI, FeePolicy, default_confirmations

POLICY = FeePolicy(max_fee_wei=100 * GWEI, priority_fee_wei=2 * GWEI, fee_bump_percent=15)


def test_importing_fees_pulls_in_no_io_library() -> None:
    probe = (
        "import sys, oracle.publish.fees\n"
        "heavy = ('asyncio', 'aiohttp', 'web3', 'sqlalchemy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_from_config_converts_gwei_and_copies_the_settings() -> None:
    config = PublisherConfig(max_fee_gwei=1.5, priority_fee_gwei=0.25)
    policy = FeePolicy.from_config(config, poll_interval_s=0.2)
    assert (policy.max_fee_wei, policy.priority_fee_wei) == (1_500_000_000, 250_000_000)
    assert policy.fee_bump_percent == config.fee_bump_percent
    assert policy.replace_after_s == config.replace_after_s
    assert policy.confirmations == 1  # receipt_confirmations 0: by chain id, 31337 is a dev chain
    assert policy.receipt_timeout_s == config.receipt_timeout_s
    assert policy.poll_interval_s == 0.2


@pytest.mark.parametrize(
    ("chain_id", "configured", "expected"),
    [(31337, 0, 1), (1337, 0, 1), (1, 0, 3), (42161, 0, 3), (1, 12, 12), (31337, 2, 2)],
)
def test_receipt_confirmations_default_by_chain_id(
    chain_id: int, configured: int, expected: int
) -> None:
    """Dev chains mine only on transactions and keep 1; public chains wait for 3."""
    config = PublisherConfig(chain_id=chain_id, receipt_confirmations=configured)
    assert FeePolicy.from_config(config).confirmations == expected
    assert default_confirmations(chain_id, configured) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_fee_wei": 1, "priority_fee_wei": 2}, "priority fee"),
        ({"max_fee_wei": 2, "priority_fee_wei": 1, "fee_bump_percent": 9}, "fee_bump_percent"),
        ({"max_fee_wei": 2, "priority_fee_wei": 1, "confirmations": 0}, "confirmations"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(PublishError, match=message):
        FeePolicy(**kwargs)


def test_initial_fees_leave_room_for_the_base_fee_to_double_under_the_cap() -> None:
    assert POLICY.initial_fees(10 * GWEI) == (22 * GWEI, 2 * GWEI)
    assert POLICY.initial_fees(80 * GWEI) == (100 * GWEI, 2 * GWEI)  # capped
    assert POLICY.initial_fees(0) == (2 * GWEI, 2 * GWEI)
    assert not POLICY.above_cap(98 * GWEI) and POLICY.above_cap(98 * GWEI + 1)


def test_replacement_bumps_both_fees_and_stops_at_the_cap() -> None:
    assert POLICY.replacement_fees(20 * GWEI, 2 * GWEI, 0) == (23 * GWEI, 2_300_000_000)
    # The base fee rose: maxFee follows 2 x base + the bumped tip.
    assert POLICY.replacement_fees(20 * GWEI, 2 * GWEI, 30 * GWEI) == (
        62_300_000_000,
        2_300_000_000,
    )
    # At the cap there is no replacement a node would accept: the manager re-sends.
    assert POLICY.replacement_fees(100 * GWEI, 2 * GWEI, 0) is None
    assert POLICY.replacement_fees(95 * GWEI, 2 * GWEI, 0) is None  # +5% only
    assert POLICY.gas_limit(100_000) == 125_000


def test_replacement_matches_the_rule_it_replaced() -> None:
    """The arithmetic as ``TxManager._replace_or_resend`` wrote it inline before the split."""
    rng = random.Random(7)
    for _ in range(5000):
        cap = rng.randint(1, 10**12)
        tip = rng.randint(0, cap)
        policy = FeePolicy(cap, tip, fee_bump_percent=rng.randint(10, 200))
        old_fee, old_tip = rng.randint(0, cap), rng.randint(0, cap)
        base = rng.randint(0, cap)
        bump = 100 + policy.fee_bump_percent
        priority = min(-(-old_tip * bump // 100), cap)
        max_fee = min(max(-(-old_fee * bump // 100), 2 * base + priority), cap)
        refused = max_fee * 10 < old_fee * 11 or priority * 10 < old_tip * 11
        expected = None if refused else (max_fee, priority)
        assert policy.replacement_fees(old_fee, old_tip, base) == expected
        initial = min(cap, 2 * base + tip)
        assert policy.initial_fees(base) == (max(initial, tip), tip)
