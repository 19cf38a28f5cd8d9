"""Sign only with keys the contract authorises now.

The owner can rotate a signer out on chain at any time (``executeSignerConfig``); a
configured keystore whose address is no longer in ``signers()`` would make every
report revert (``UnknownSigner``). So before signing, ``Publisher.sign`` reads the
contract's ``signers()`` and ``threshold()`` (``AuthorisedKeys.read``), signs only with
the configured keys in that set (an unauthorised one is logged once per process and
skipped), keeps only collected peer signatures whose signer is in it, and when fewer
than the threshold remain raises ``TooFewAuthorisedSigners`` (a ``NotPublishable``:
the pipeline logs and alerts it once per epoch and block, ``publish_failed``, and
tries again each pass, so publication resumes by itself once the keys are authorised
again) instead of sending a transaction that would revert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog
from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, Web3RPCError

from oracle.errors import PublishError, TooFewAuthorisedSigners
from oracle.publish.contract import OracleContract, revert_from_exception
from oracle.publish.evmnode import TRANSIENT_ERRORS
from oracle.publish.signing import KeystoreAccount

log = structlog.get_logger(__name__)


class AuthorisedKeys:
    """This node's signer keys, filtered by the contract's signer set at each signing."""

    def __init__(self, oracle: OracleContract, keys: Sequence[KeystoreAccount]) -> None:
        self.oracle = oracle
        self.keys = list(keys)
        self._warned: set[str] = set()

    async def read(self) -> tuple[frozenset[str], int]:
        """``(checksummed signers, threshold)`` as the contract holds them now."""
        functions = self.oracle.contract.functions
        try:
            signers = await functions.signers().call()
            threshold = await functions.threshold().call()
        except (ContractLogicError, Web3RPCError) as exc:
            reverted = revert_from_exception(exc)
            raise (reverted or PublishError(f"signer set read failed: {exc}")) from exc
        except TRANSIENT_ERRORS as exc:
            raise PublishError(f"EVM node unreachable: {type(exc).__name__}") from exc
        return frozenset(to_checksum_address(str(s)) for s in signers), int(threshold)

    def usable(self, authorised: Iterable[str]) -> list[KeystoreAccount]:
        """The configured keys in ``authorised``; each other one is logged once, skipped."""
        allowed = set(authorised)
        keys = []
        for key in self.keys:
            if key.address in allowed:
                keys.append(key)
                self._warned.discard(key.address)  # authorised again: warn if removed again
            elif key.address not in self._warned:
                self._warned.add(key.address)
                log.warning(
                    "signer_key_not_authorised_skipped",
                    signer=key.address,
                    contract=self.oracle.address,
                    detail="the contract's signers() does not list this configured key",
                )
        return keys

    def require(self, held: Iterable[str], threshold: int, epoch: int) -> None:
        """``TooFewAuthorisedSigners`` unless ``held`` (authorised signers) reach ``threshold``."""
        signers = sorted(set(held))
        if len(signers) >= threshold:
            return
        unauthorised = sorted(self._warned)
        raise TooFewAuthorisedSigners(
            f"epoch {epoch}: only {len(signers)} signature(s) from keys the contract "
            f"{self.oracle.address} authorises now ({', '.join(signers) or 'none'}), its "
            f"threshold is {threshold}"
            + (
                f"; configured keys no longer authorised: {', '.join(unauthorised)}"
                if unauthorised
                else ""
            )
            + "; not sending a transaction that would revert"
        )
