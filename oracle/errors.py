"""The exception tree of bme-oracle.

Every error the oracle raises on purpose derives from ``OracleError`` so the CLI
and the service can tell "bad input / bad world" from a bug::

    OracleError
    ├── ConfigError            bad or missing setting; lists every problem at once
    ├── InputError             bad user input to a command (CSV rows, token names, numbers)
    ├── InvalidBits            compact bits that are negative, overflow or zero
    ├── InvalidHeader          fails linkage / bits / proof-of-work check (pure layer)
    ├── NoSolution             a pricing equation with no root, or Newton did not converge
    ├── IndexUnavailable       not enough epochs for BME_N, or no epoch before a time
    ├── JsonRejected           a body from outside that is not JSON or exceeds the bounds (nesting,
    │                          numbers); also a ValueError (oracle.sources.boundedjson)
    ├── SourceError            a block source failed; ``kind`` names how (metrics, SourceFailure)
    │   ├── SourceUnavailable  kind "unavailable": refused, reset, 5xx -> retry with backoff
    │   │   ├── SourceTimeout      kind "timeout"
    │   │   ├── SourceRateLimited  kind "rate_limited": 429, with retry_after_s
    │   │   ├── SourceWarmingUp    kind "warming_up": bitcoind RPC -28
    │   │   └── SourceAuthFailed   kind "auth": 401 / wrong credentials
    │   ├── SourceDataError    answered, but malformed or inconsistent -> no retry loop
    │   │   ├── SourceMalformed    kind "malformed": wrong type, truncated, not JSON, HTML
    │   │   ├── SourceInconsistent kind "inconsistent": header does not hash to the hash served
    │   │   └── SourceOversized    kind "oversized": response larger than the cap
    │   └── HeightNotFound     kind "not_found": the height is past the source's tip; a fact
    │                          about the chain, neither transient nor malformed -> no retry
    ├── FeedFailed             a block feed (ZMQ or polling) kept dying after restarts with
    │                          backoff -> the service exits non-zero (oracle.monitor.instrument)
    ├── PeerError              another operator's node, over its attestation API
    │   ├── PeerUnavailable    timeout, refused, non-200, oversized -> back off, ask again
    │   └── PeerDataError      malformed or forged attestation -> ignored, logged
    ├── StoreError
    │   ├── StoreUnavailable   database unreachable
    │   ├── SchemaOutdated     migrations behind -> run ``bme-oracle db upgrade``
    │   └── StoreConflict      a different row already exists for this key
    ├── PublishError
    │   ├── TxRejected         node refused (revert, nonce) -> alert; no blind retry
    │   │   └── ContractReverted   the contract's custom error, decoded (oracle.publish.contract)
    │   ├── TxNotConfirmed     timed out -> re-check receipt, resend the same raw tx
    │   ├── PublishDeferred    not our turn, too few signatures, or the previous epoch is not
    │   │                      on chain yet -> retry later, no alert
    │   ├── ChainUnavailable   the EVM node cannot be reached: refused, reset, timeout, 5xx
    │   └── NotPublishable     this node can never land the epoch as it stands -> logged and
    │       │                  alerted once per epoch and block, not retried in a loop
    │       ├── ProofUnavailable  agreed without the oracle's own 2016e-1 header (bound or
    │       │                     genesis check): stored and shown, no chain-bound proof
    │       ├── ReanchorRequired  the contract holds another block for the epoch and can no
    │       │                     longer replace it (final): governance must re-anchor
    │       └── TooFewAuthorisedSigners  fewer signatures by keys the contract authorises
    │                             now than its threshold: alerted, no transaction that
    │                             would revert
    ├── ChainMoving            the tip moved during every read of a /v1/status snapshot
    │                          (oracle.monitor.chainread) -> 503, the client asks again
    ├── CompileError           solc missing, wrong version, compile error (oracle.publish.compile)
    ├── InterfaceError         ABI the interface renderer cannot express (oracle.publish.interfaces)
    ├── DevnetError            the dev stack's bitcoind or anvil failed (oracle.devstack.nodes)
    ├── DaemonAlreadyRunning   another ``run`` holds this database (Postgres advisory lock,
    │                          SQLite file lock) or this sender key on this host (a lock file)
    │                          -> refuse to start, exit non-zero
    └── ApiError               a request the read API refuses, with its HTTP status (oracle.api)

Classes defined outside this module are named with it; ``tests/unit/test_errors.py``
keeps this drawing equal to the real class tree.

The CLI's exit status follows the tree (``oracle.cli.exit_status``): 69 (EX_UNAVAILABLE)
for a database, source or chain that cannot be reached (``StoreUnavailable``,
``SourceUnavailable`` but ``SourceAuthFailed``, ``ChainUnavailable``), 2 for every other
``OracleError`` (bad input, configuration, a refusal), 70 (EX_SOFTWARE) for anything else.
"""

from __future__ import annotations


class OracleError(Exception):
    """Base of every deliberate bme-oracle error."""


class ConfigError(OracleError):
    """A setting is missing or wrong; raised at start-up."""


class InputError(OracleError):
    """User input to a command is malformed; the message names the part that is wrong."""


class InvalidBits(OracleError):
    """Compact bits that Bitcoin Core would reject (negative, overflow or zero target)."""


class InvalidHeader(OracleError):
    """A header that fails linkage, bits or proof-of-work checks."""


class NoSolution(OracleError):
    """An equation with no root in range, or a solver that did not converge."""


class IndexUnavailable(OracleError):
    """The index is undefined for the request (too few epochs, time before the first epoch)."""


class SourceError(OracleError):
    """A block source failed; ``source`` and ``request`` name where."""

    def __init__(self, message: str, *, source: str = "", request: str = "") -> None:
        self.source = source
        self.request = request
        where = " ".join(part for part in (source, request) if part)
        super().__init__(f"{where}: {message}" if where else message)


class SourceUnavailable(SourceError):
    """Transient: timeout, refused, 5xx, 429, warming up."""


class SourceDataError(SourceError):
    """The source answered, but the answer is malformed or inconsistent."""


class SourceTimeout(SourceUnavailable):
    kind = "timeout"


class SourceRateLimited(SourceUnavailable):
    kind = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        request: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, source=source, request=request)
        self.retry_after_s = retry_after_s


class SourceWarmingUp(SourceUnavailable):
    kind = "warming_up"


class SourceAuthFailed(SourceUnavailable):
    kind = "auth"


class SourceInconsistent(SourceDataError):
    kind = "inconsistent"


class SourceOversized(SourceDataError):
    kind = "oversized"


class SourceMalformed(SourceDataError):
    kind = "malformed"


class HeightNotFound(SourceError):
    """The source has no block at that height (yet): past its tip, or a 404."""

    kind = "not_found"


class FeedFailed(OracleError):
    """A source's block feed died again and again, restarted with backoff each time, and
    the supervisor gave up: the service stops with an error rather than run blind."""


class PeerError(OracleError):
    """Another operator's node failed to give a usable attestation."""


class StoreError(OracleError):
    """Database problem."""


class StoreUnavailable(StoreError):
    """The database cannot be reached."""


class SchemaOutdated(StoreError):
    """The schema is behind the code; the operator must run ``bme-oracle db upgrade``."""


class StoreConflict(StoreError):
    """A different row already exists for this key."""


class PublishError(OracleError):
    """Publishing to the chain failed."""


class TxRejected(PublishError):
    """The node or the contract refused the transaction."""


class TxNotConfirmed(PublishError):
    """The transaction was not confirmed in time."""


class PublishDeferred(PublishError):
    """Publication must wait (another operator's turn, too few signatures so far, or the
    previous epoch is not on chain yet: the contract takes epochs in order)."""


class NotPublishable(PublishError):
    """The epoch cannot be landed by this node as things stand; retrying will not help."""


class ProofUnavailable(NotPublishable):
    """The epoch was agreed without the oracle's own header at height 2016e-1, so there is
    no chain-bound proof for the contract (``retargets.last_header`` is empty)."""


class ReanchorRequired(NotPublishable):
    """The contract holds another block for the epoch and it is final (its challenge window
    closed, or later epochs are stored on it): only a governance re-anchor can correct it."""


class ChainUnavailable(PublishError):
    """The EVM node cannot be reached (refused, reset, timed out, 5xx)."""


class TooFewAuthorisedSigners(NotPublishable):
    """Fewer signatures from keys the contract authorises now than its threshold: signing
    with removed keys would only produce a transaction that reverts."""


class DaemonAlreadyRunning(OracleError):
    """Another ``bme-oracle run`` holds the lock of this database or of this sender key."""
