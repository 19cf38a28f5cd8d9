"""The attestation wire format: what ``GET /v1/attestations/{epoch}`` serves and peers parse.

One definition for both sides, so the API handler and the peer client cannot
drift apart. A body is::

    {"epoch": 1, "chain_id": 31337, "contract_address": "0x...",
     "attestations": [{"signer": "0x...", "signature": "0x<65 bytes>",
                       "report": {"epoch": 1, "block_hash_hex": "<64 hex>",
                                  "bits": 545259519, "time": 1296688602,
                                  "config_version": 1}}]}

The report fields mirror ``oracle.publish.signing.Report`` (the EIP-712
message, contract v2: ``config_version`` is the contract's signer-configuration
version the signature was made under). The same report serves ``submit`` and,
after a reorg, ``replace``: the contract function is not part of what is
signed. Signatures are public; keys never appear. Parsing is strict: a body
that is not this shape is garbage (``PeerDataError``); one malformed entry
inside an otherwise good body is dropped and reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import is_hex_address, to_checksum_address

from oracle.errors import InputError, PeerError
from oracle.publish.signing import SIGNATURE_SIZE, Report

#: The fields of a signed report on the wire (``Report.as_dict``), and its integer ones.
REPORT_FIELDS = ("epoch", "block_hash_hex", "bits", "time", "config_version")
INTEGER_FIELDS = ("epoch", "bits", "time", "config_version")


class PeerDataError(PeerError):
    """A peer answered, but not with an attestation list we can use."""


@dataclass(frozen=True, slots=True)
class SignedReport:
    """One signer's signature over one report, as exchanged between nodes."""

    signer: str  # checksum address (the claim; verified by recovering it)
    report: Report
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "signer": self.signer,
            "report": self.report.as_dict(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, item: Any) -> SignedReport:
        """Parse one entry; raises ``PeerDataError`` naming what is wrong."""
        if not isinstance(item, Mapping):
            raise PeerDataError(f"attestation should be an object, got {type(item).__name__}")
        signer, signature, report = item.get("signer"), item.get("signature"), item.get("report")
        if not isinstance(signer, str) or not is_hex_address(signer):
            raise PeerDataError(f"attestation signer should be an address, got {signer!r:.60}")
        if not isinstance(signature, str) or not signature.startswith("0x"):
            raise PeerDataError("attestation signature should be 0x-prefixed hex")
        try:
            raw = bytes.fromhex(signature[2:])
        except ValueError:
            raise PeerDataError("attestation signature is not hex") from None
        if len(raw) != SIGNATURE_SIZE:
            raise PeerDataError(f"attestation signature should be {SIGNATURE_SIZE} bytes")
        if not isinstance(report, Mapping) or set(report) != set(REPORT_FIELDS):
            raise PeerDataError(f"attestation report should have {', '.join(REPORT_FIELDS)}")
        if any(isinstance(report[k], bool) or not isinstance(report[k], int)
               for k in INTEGER_FIELDS):  # fmt: skip
            raise PeerDataError(
                f"attestation report {', '.join(INTEGER_FIELDS)} should be integers"
            )
        try:
            parsed = Report.from_dict(report)
        except (InputError, TypeError, ValueError) as exc:
            raise PeerDataError(f"attestation report is invalid: {exc}") from None
        return cls(signer=to_checksum_address(signer), report=parsed, signature=raw)


def attestation_body(
    epoch: int, *, chain_id: int, contract_address: str, items: Iterable[SignedReport]
) -> dict[str, Any]:
    """The JSON body served at ``/v1/attestations/{epoch}``."""
    return {
        "epoch": epoch,
        "chain_id": chain_id,
        "contract_address": to_checksum_address(contract_address),
        "attestations": [item.to_json() for item in items],
    }


def parse_body(
    body: Any, *, epoch: int, chain_id: int, contract_address: str
) -> tuple[list[SignedReport], list[str]]:
    """Entries of a peer's answer for ``epoch`` on our chain and contract, plus the problems
    of entries that were dropped. A body of the wrong shape, or for another epoch, chain or
    contract, raises ``PeerDataError``."""
    if not isinstance(body, Mapping) or not isinstance(body.get("attestations"), list):
        raise PeerDataError("answer should be an object with an attestations list")
    if body.get("epoch") != epoch:
        raise PeerDataError(f"answer is for epoch {body.get('epoch')!r:.20}, asked {epoch}")
    if body.get("chain_id") != chain_id:
        raise PeerDataError(f"answer is for chain {body.get('chain_id')!r:.20}, ours {chain_id}")
    theirs = body.get("contract_address")
    if not isinstance(theirs, str) or theirs.lower() != contract_address.lower():
        raise PeerDataError(f"answer is for contract {theirs!r:.50}, ours {contract_address}")
    entries: list[SignedReport] = []
    problems: list[str] = []
    for item in body["attestations"]:
        try:
            entry = SignedReport.from_json(item)
        except PeerDataError as exc:
            problems.append(str(exc))
            continue
        if entry.report.epoch != epoch:
            problems.append(f"entry for epoch {entry.report.epoch} in the answer for {epoch}")
            continue
        entries.append(entry)
    return entries, problems
