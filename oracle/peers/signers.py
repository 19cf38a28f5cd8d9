"""The signer set the contract holds, and who submits an epoch's report.

The contract is the authority on who may sign: peers' signatures are only
counted when their signer is in ``signers()`` *now*, so rotating a signer out
on chain is enough to stop counting it everywhere (no configuration change).

Submission order is a pure function of the epoch and the sorted signer set,
so every node computes the same order without talking: the signer at
``sorted_signers[epoch % n]`` is the designated submitter, the next one in the
circle has rank 1, and so on. A node holding several keys takes the best rank
among them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle.errors import ChainUnavailable, PublishError
from oracle.publish.contract import OracleContract, revert_from_exception
from oracle.publish.evmnode import TRANSIENT_ERRORS


@dataclass(frozen=True, slots=True)
class SignerSet:
    """Authorised signers (ascending by address value, as the contract orders them), M, and
    the signer-configuration version every report must carry (signatures made under an
    older version are void on chain)."""

    signers: tuple[str, ...]
    threshold: int
    config_version: int = 1

    @classmethod
    def of(cls, signers: Iterable[str], threshold: int, config_version: int = 1) -> SignerSet:
        checksummed = {to_checksum_address(s) for s in signers}
        return cls(
            tuple(sorted(checksummed, key=lambda a: int(a, 16))), int(threshold), config_version
        )

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and to_checksum_address(address) in self.signers

    def designated(self, epoch: int) -> str:
        """The signer whose operator submits ``epoch`` first."""
        if not self.signers:
            raise PublishError("the contract has no signers")
        return self.signers[epoch % len(self.signers)]


def submit_rank(epoch: int, signer_set: SignerSet, own: Iterable[str]) -> int | None:
    """0 for the designated submitter of ``epoch``, k for the k-th in turn after it; the best
    rank over this node's keys, or None when none of them is authorised."""
    n = len(signer_set.signers)
    ranks = [
        (signer_set.signers.index(address) - epoch) % n
        for address in (to_checksum_address(a) for a in own)
        if address in signer_set.signers
    ]
    return min(ranks) if ranks else None


async def read_signer_set(oracle: OracleContract) -> SignerSet:
    """``signers()``, ``threshold()`` and ``configVersion()`` from the contract; errors become
    ``PublishError``."""
    functions = oracle.contract.functions
    try:
        signers = await functions.signers().call()
        threshold = await functions.threshold().call()
        version = await functions.configVersion().call()
    except (ContractLogicError, Web3RPCError) as exc:
        reverted = revert_from_exception(exc)
        raise (reverted or PublishError(f"signer set read failed: {exc}")) from exc
    except TRANSIENT_ERRORS as exc:
        raise ChainUnavailable(f"EVM node unreachable: {type(exc).__name__}") from exc
    return SignerSet.of((str(s) for s in signers), int(threshold), int(version))
