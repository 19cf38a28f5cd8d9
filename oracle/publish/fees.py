"""Fee policy of the publish stage: EIP-1559 fees, their cap, replacement bumps, gas margin.

Where it sits: ``txmanager.TxManager`` asks it what to pay; ``publisher.build_publisher``
builds it from ``[publisher]`` with ``FeePolicy.from_config``, and ``bme-oracle contract
deploy`` uses ``GWEI`` for its own fees. It is pure arithmetic on integers (wei) and
settings: no node, no store, no clock, so every rule can be checked without anvil. The
manager reads the base fee from the node and does the sending; this module only says:

* the first attempt pays ``maxFee = min(cap, 2 x base fee + tip)`` (room for the base
  fee to double), never less than the tip;
* a replacement bumps both fees by ``fee_bump_percent`` (and at least to
  ``2 x base fee + tip``), capped at ``max_fee_wei``; when the cap leaves less than the
  10% rise nodes demand of a replacement, there is no replacement and the manager
  re-sends the same bytes;
* the gas limit is the node's estimate plus ``gas_margin_percent``;
* a receipt counts after ``confirmations`` blocks: ``publisher.receipt_confirmations``,
  or when that is 0 (the default) ``default_confirmations(chain_id)``: 1 on a dev chain
  (anvil/hardhat 31337, geth --dev 1337: they mine only when a transaction arrives, so
  waiting for more blocks would wait forever), ``PUBLIC_CONFIRMATIONS`` (3) elsewhere.
  After that the manager keeps re-checking the receipt until the block is final
  (``oracle.publish.reorgs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oracle.errors import PublishError

if TYPE_CHECKING:
    from oracle.config import PublisherConfig

GWEI = 10**9
#: Chains that mine a block only when a transaction arrives (anvil/hardhat, geth --dev).
DEV_CHAIN_IDS = frozenset({31337, 1337})
#: Receipt confirmations on any other chain unless ``receipt_confirmations`` says otherwise.
PUBLIC_CONFIRMATIONS = 3
#: Nodes accept a same-nonce replacement only if both fees rise by at least 10%.
MIN_REPLACEMENT_BUMP_PERCENT = 10


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """Fees, replacement and confirmation settings (from ``PublisherConfig``)."""

    max_fee_wei: int
    priority_fee_wei: int
    fee_bump_percent: int = 15
    replace_after_s: float = 120.0
    confirmations: int = 1
    receipt_timeout_s: float = 600.0
    poll_interval_s: float = 1.0
    gas_margin_percent: int = 25

    def __post_init__(self) -> None:
        if self.priority_fee_wei > self.max_fee_wei:
            raise PublishError("priority fee must not exceed the max fee cap")
        if self.fee_bump_percent < MIN_REPLACEMENT_BUMP_PERCENT:
            raise PublishError("fee_bump_percent must be >= 10 (nodes refuse smaller replacements)")
        if self.confirmations < 1:
            raise PublishError("receipt_confirmations must be >= 1")

    @classmethod
    def from_config(cls, config: PublisherConfig, *, poll_interval_s: float = 1.0) -> FeePolicy:
        return cls(
            max_fee_wei=int(config.max_fee_gwei * GWEI),
            priority_fee_wei=int(config.priority_fee_gwei * GWEI),
            fee_bump_percent=config.fee_bump_percent,
            replace_after_s=config.replace_after_s,
            confirmations=default_confirmations(config.chain_id, config.receipt_confirmations),
            receipt_timeout_s=config.receipt_timeout_s,
            poll_interval_s=poll_interval_s,
        )

    def gas_limit(self, estimate: int) -> int:
        """The node's gas estimate plus the safety margin."""
        return int(estimate) * (100 + self.gas_margin_percent) // 100

    def above_cap(self, base_fee: int) -> bool:
        """True when base fee + tip already exceeds the cap (the transaction may wait)."""
        return base_fee + self.priority_fee_wei > self.max_fee_wei

    def initial_fees(self, base_fee: int) -> tuple[int, int]:
        """``(maxFeePerGas, maxPriorityFeePerGas)`` of a first attempt at ``base_fee``."""
        priority = self.priority_fee_wei
        max_fee = min(self.max_fee_wei, 2 * base_fee + priority)
        return max(max_fee, priority), priority

    def replacement_fees(
        self, max_fee: int, priority: int, base_fee: int
    ) -> tuple[int, int] | None:
        """Bumped ``(maxFeePerGas, maxPriorityFeePerGas)`` replacing an attempt that paid
        ``(max_fee, priority)``; None when the cap leaves no acceptable replacement."""
        bump = 100 + self.fee_bump_percent
        cap = self.max_fee_wei
        new_priority = min(_ceil_div(priority * bump, 100), cap)
        new_max_fee = min(max(_ceil_div(max_fee * bump, 100), 2 * base_fee + new_priority), cap)
        if not (_is_replacement(new_max_fee, max_fee) and _is_replacement(new_priority, priority)):
            return None
        return new_max_fee, new_priority


def default_confirmations(chain_id: int, configured: int = 0) -> int:
    """``configured`` when set (> 0), else 1 on a dev chain and ``PUBLIC_CONFIRMATIONS``
    on any other."""
    if configured:
        return configured
    return 1 if chain_id in DEV_CHAIN_IDS else PUBLIC_CONFIRMATIONS


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def _is_replacement(new: int, old: int) -> bool:
    """Whether ``new`` is at least the minimum replacement rise over ``old``."""
    return new * 100 >= old * (100 + MIN_REPLACEMENT_BUMP_PERCENT)
