"""Several independent operators: exchange report signatures between oracle nodes.

M-of-N signatures only protect anyone when the N keys sit with independent
operators. Each operator's node verifies for itself, signs the report of an
epoch it agreed (``attest``), serves that signature on its own read-only API
(``GET /v1/attestations/{epoch}``, the format in ``wire``), polls the other
operators' APIs (``client``), keeps only signatures over exactly its own
report from signers the contract authorises (``coordinator``), and decides
who submits (``signers.submit_rank``): the designated submitter of the epoch
at once, the others each ``submit_delay_s`` later in turn, stopping as soon as
the contract has the epoch. The contract is the only source of truth for done.

Without ``[peers] urls`` nothing here runs: a single operator holding several
keys publishes exactly as before (``oracle.wiring.build_publisher``).
"""

from oracle.peers.coordinator import CoordinatedPublisher, Coordinator
from oracle.peers.signers import SignerSet, submit_rank

__all__ = ["CoordinatedPublisher", "Coordinator", "SignerSet", "submit_rank"]
