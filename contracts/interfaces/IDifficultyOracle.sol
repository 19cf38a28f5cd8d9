// SPDX-License-Identifier: MIT
// Generated from the DifficultyOracle artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed DifficultyOracle (constructor aside).
pragma solidity ^0.8.4;

/// @title IDifficultyOracle
/// @notice Bitcoin difficulty retargets bound to the Bitcoin chain, signed by a threshold of oracle
///         operators, with the BME_N mining-earnings index computed on chain from the stored bits
///         (DESIGN.md "On-chain contract"). Settlement reads `bmeAtFinal` or `bmeFinal`; `bmeAt`
///         and `bme` are "latest known" and can still change.
/// @dev Chain binding: every report carries the last header of epoch e-1 (height 2016e-1) and the
///      retarget header (2016e). The last header must carry the stored bits of epoch e-1 and meet
///      them, the retarget header must link to it and meet its own bits, and those bits must be
///      Bitcoin Core's `CalculateNextWorkRequired` from epoch e-1's stored bits and time (the time
///      of block 2016e-2016) and the last header's time. A stored value therefore costs a block of
///      real work at the network's difficulty on top of the signatures. Epochs are contiguous from
///      a genesis checkpoint set at deployment (or by a timelocked re-anchor), which also seeds the
///      bits of the up to 5 epochs before it so that BME84 answers from the genesis epoch on.
///      Seeded epochs hold bits only. Finality: only the latest stored epoch can change (`replace`,
///      inside its challenge window, which a replacement does not restart). An epoch is final once
///      its window has passed or a later epoch is stored on top of it; the genesis is final at
///      once. Settlement at time t becomes possible when the epoch after t is final: usually 0-14
///      days (the next retarget) plus the challenge window after t. Byte order: `Report.blockHash`
///      and `retarget(e)` use RPC display order, i.e. `bytes32(uint256(hash number))`: the
///      byte-reverse of the header's sha256d output, the same number that is compared with the
///      target. Storage: one word per epoch holds (hash mod 2^192) << 64 | bits << 32 | time; a
///      hash at or above 2^192 (early mainnet, regtest) is also written whole to a second word,
///      only then, which counts only while it matches the first (so a second word left by an
///      earlier hash of the same epoch number never shows). Slot 0 holds everything else a submit
///      reads and writes. View loops: `bme`, `bmeAt`, `bmeFinal`, `bmeAtFinal` and `computeBme`
///      read N/14 epochs; N is at most 14 x 256 = 3,584 days (`MAX_WINDOW_EPOCHS`): about 1.13
///      million gas (`bme(3584, 413)` on mainnet bits, eth_estimateGas), so on-chain consumers
///      should keep N small (BME84: about 30,000 gas of execution).
interface IDifficultyOracle {
    struct Checkpoint {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
    }

    struct Report {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
        uint32 configVersion;
    }

    event Anchored(
        uint32 indexed epoch,
        bytes32 blockHash,
        uint32 bits,
        uint32 time,
        uint32[] seedBits
    );

    event EpochReplaced(
        uint32 indexed epoch,
        bytes32 oldHash,
        bytes32 newHash,
        address submitter,
        uint256 signerBitmap
    );

    event GovernanceCancelled(bytes32 indexed id);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Paused(address account);

    event ReanchorScheduled(
        bytes32 indexed id,
        Checkpoint genesis,
        uint32[] seedBits,
        uint256 executableAt
    );

    event ReportAccepted(
        uint32 indexed epoch,
        bytes32 blockHash,
        uint32 bits,
        uint32 time,
        address submitter,
        uint256 signerBitmap
    );

    event SignerConfigChanged(uint32 indexed configVersion, address[] signers, uint8 threshold);

    event SignerConfigScheduled(
        bytes32 indexed id,
        address[] signers,
        uint8 threshold,
        uint256 executableAt
    );

    event Unpaused(address account);

    error AlreadyScheduled(bytes32 id);
    error BadProofLength(uint256 length);
    error BadSeedCount(uint256 count, uint256 expected);
    error BitsMismatch(uint32 reported, uint32 header);
    error BitsNotRetarget(uint32 reported, uint32 expected);
    error ChallengeWindowTooLong(uint256 window, uint256 maximum);
    error DuplicateSigner(address signer);
    error DuplicateSignerInConfig(address signer);
    error EnforcedPause();
    error EpochAlreadyStored(uint32 epoch, bytes32 storedBlockHash);
    error EpochMissing(uint256 epoch);
    error EpochNotFinal(uint256 epoch, uint256 finalAt);
    error EpochNotNext(uint32 epoch, uint32 latestEpoch);
    error ExpectedPause();
    error GenesisNotReplaceable(uint32 epoch);
    error HeaderHashMismatch(bytes32 reported, bytes32 computed);
    error HeaderNotLinked(bytes32 lastHeaderHash, bytes32 prevHash);
    error HeaderTimeInFuture(uint32 time, uint256 limit);
    error InsufficientProofOfWork(bytes32 blockHash, uint256 target);

    /// @notice Compact bits that Bitcoin Core rejects: negative, overflowing or zero target.
    error InvalidBits(uint32 bits);

    error InvalidSignature(uint256 index);
    error InvalidThreshold(uint256 threshold, uint256 signerCount);

    /// @notice `N` is not a positive multiple of 14.
    error InvalidWindow(uint256 nDays);

    error LastHeaderBitsMismatch(uint32 headerBits, uint32 storedBits);
    error MalformedSignatures(uint256 length);

    /// @notice A 512-bit quotient does not fit in 256 bits.
    error MulDivOverflow();

    error NoEpochAfter(uint256 time, uint32 latestEpoch);
    error NoEpochAtTime(uint256 time);
    error NotLatestEpoch(uint32 epoch, uint32 latestEpoch);
    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error NotScheduled(bytes32 id);
    error RegtestOnlyOnDevChain(uint256 chainId);
    error ReplacementWindowClosed(uint32 epoch, uint256 closedAt);
    error ReportAlreadyAccepted(uint32 epoch);
    error SignersNotAscending(address previous, address signer);
    error StaleSignerConfig(uint32 signedVersion, uint32 currentVersion);
    error TargetAbovePowLimit(uint256 target, uint256 powLimit);
    error TimeMismatch(uint32 reported, uint32 header);
    error TimeNotIncreasing(uint32 time, uint32 previousTime);
    error TooEarly(bytes32 id, uint256 executableAt);
    error TooFewSignatures(uint256 count, uint256 threshold);
    error TooManySigners(uint256 count, uint256 maximum);
    error UnknownSigner(address signer);
    error UnsupportedNetwork(uint8 network);
    error ZeroAddress();

    /// @notice Regtest mode (no retargeting, trivial work) is accepted only on the dev chain.
    function DEV_CHAIN_ID() external view returns (uint256);

    function MAX_CHALLENGE_WINDOW_S() external view returns (uint256);

    /// @notice Bitcoin's rule for block times (MAX_FUTURE_BLOCK_TIME), applied against the EVM
    ///         clock.
    function MAX_FUTURE_S() external view returns (uint256);

    function MAX_SIGNERS() external view returns (uint256);
    function MAX_WINDOW_EPOCHS() external view returns (uint256);

    /// @notice Network modes (fixed at deployment). Signet (proof of work proves nothing there) and
    ///         testnet3 (20-minute min-difficulty blocks) are refused.
    function NETWORK_MAINNET() external view returns (uint8);

    function NETWORK_REGTEST() external view returns (uint8);
    function NETWORK_TESTNET4() external view returns (uint8);
    function REPORT_TYPEHASH() external view returns (bytes32);
    function SEED_EPOCHS() external view returns (uint256);

    /// @notice Step two: the pending owner takes over.
    function acceptOwnership() external;

    /// @notice Compact bits to target exactly as Bitcoin Core; reverts `InvalidBits`.
    function bitsToTarget(uint32 bits) external pure returns (uint256);

    /// @notice BME_N at epoch `e` in 10^18 fixed point (DESIGN.md), from the stored bits of epochs
    ///         e-T+1 .. e, T = N/14, each epoch with its own K (`epochSubsidySat`: the
    ///         block-weighted halving rule); latest known, not final. Reverts `EpochMissing` naming
    ///         an absent epoch, `InvalidWindow` unless N is a multiple of 14 up to 3,584.
    function bme(uint256 nDays, uint256 e) external view returns (uint256);

    /// @notice BME_N for the latest stored epoch whose retarget header time is <= `t`: the latest
    ///         known value, which can still change (see `bmeAtFinal` for settlement).
    function bmeAt(uint256 nDays, uint256 t) external view returns (uint256);

    /// @notice The settlement value: BME_N at `timestamp` (the latest epoch whose retarget header
    ///         time is <= timestamp) and that epoch, only once an epoch whose retarget time is >
    ///         timestamp is stored and final. Reverts `NoEpochAfter` while no later epoch is
    ///         stored, `EpochNotFinal` during its challenge window, `EnforcedPause` while paused.
    ///         Settlement at t is usually possible 0-14 days (the next retarget) plus the challenge
    ///         window after t.
    function bmeAtFinal(uint256 nDays, uint256 timestamp)
        external
        view
        returns (uint256 value, uint256 epoch);

    /// @notice BME_N at epoch `e`, only once `e` is final; reverts `EpochNotFinal` (with the time
    ///         it will be) before, `EnforcedPause` while paused.
    function bmeFinal(uint256 nDays, uint256 e) external view returns (uint256);

    /// @notice Withdraw an announced change before it is executed.
    function cancel(bytes32 id) external;

    /// @notice Seconds after it was first stored during which the latest epoch can be replaced.
    function challengeWindow() external view returns (uint256);

    /// @notice BME_N for an explicit window of bits ending at `lastEpoch`, with no storage: the
    ///         same arithmetic as `bme`, for consumers who hold their own bits.
    function computeBme(uint256 nDays, uint256 lastEpoch, uint32[] calldata windowBits)
        external
        pure
        returns (uint256);

    function configVersion() external view returns (uint32);

    /// @notice Difficulty of epoch `e` in 10^18 fixed point: floor(DIFF1_TARGET x 10^18 / target).
    ///         Reverts `MulDivOverflow` for targets so small the value exceeds 2^256.
    function difficulty(uint256 e) external view returns (uint256);

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed by a fork).
    function domainSeparator() external view returns (bytes32);

    /// @notice Core's `GetCompact` of a non-negative value (the encoding the retarget rule uses).
    function encodeCompact(uint256 value) external pure returns (uint32);

    /// @notice The latest stored epoch whose retarget header time is <= `t`.
    function epochAtTime(uint256 t) external view returns (uint256);

    /// @notice Total subsidy of the 2016 blocks of `epoch`, in satoshis, each block at its own
    ///         height's subsidy: the index's halving rule. An epoch containing a halving (epochs
    ///         104, 208, 312, 416, ...) counts its blocks at both subsidies (K from the
    ///         block-weighted mean), known in advance, so the index still changes only at
    ///         retargets. The index authors' published history used the subsidy of each epoch's
    ///         first block instead; the two differ only in windows containing a halving epoch (by
    ///         up to 42%: BME14 at epoch 104).
    function epochSubsidySat(uint256 epoch) external pure returns (uint256);

    /// @notice Apply an announced re-anchor after its delay (anyone may call): the stored run
    ///         becomes [genesis.epoch, genesis.epoch]; epochs before it (other than its seeds) and
    ///         after it are no longer served.
    function executeReanchor(Checkpoint calldata genesis, uint32[] calldata seedBits) external;

    /// @notice Apply an announced signer set after its delay (anyone may call); bumps
    ///         `configVersion`, which voids every signature made under the old set.
    function executeSignerConfig(address[] calldata signers_, uint8 threshold_) external;

    /// @notice When `e` is or becomes final: 0 if it is final now, else the end of the latest
    ///         epoch's challenge window. Reverts `EpochMissing` outside [firstEpoch, latestEpoch].
    function finalAt(uint256 e) external view returns (uint256);

    /// @notice The genesis epoch: the oldest stored epoch with a hash and time.
    function firstEpoch() external view returns (uint32);

    /// @notice Seconds between announcing a governance change and executing it.
    function governanceDelay() external view returns (uint256);

    /// @notice Whether stored epoch `e` can no longer change.
    function isFinal(uint256 e) external view returns (bool);

    /// @notice Whether `account` is an authorised signer under the current configuration.
    function isSigner(address account) external view returns (bool);

    /// @notice The newest stored epoch (latest known; final only after its window).
    function latestEpoch() external view returns (uint32);

    /// @notice The EVM block time at which the latest epoch was first stored (a replacement keeps
    ///         it): the start of its challenge window and the adapter's `updatedAt`.
    function latestStoredAt() external view returns (uint256);

    function network() external view returns (uint8);

    /// @notice The bits of block 2016e under this oracle's rule, from epoch e-1's bits, the time of
    ///         block 2016e-2016 and the time of block 2016e-1.
    function nextBits(uint32 previousBits, uint32 firstTime, uint32 lastTime)
        external
        view
        returns (uint32);

    function owner() external view returns (address);

    /// @notice Stop submissions, replacements, the final reads and the adapter at once.
    function pause() external;

    function paused() external view returns (bool);
    function pendingOwner() external view returns (address);

    /// @notice Targets above this are refused (the network's powLimit).
    function powLimit() external view returns (uint256);

    /// @notice The id of a re-anchor.
    function reanchorId(Checkpoint calldata genesis, uint32[] calldata seedBits)
        external
        pure
        returns (bytes32);

    /// @notice Replace the latest epoch inside its challenge window (a Bitcoin reorg), with a new
    ///         chain-bound proof from epoch e-1. The window is not restarted.
    function replace(Report calldata report, bytes calldata signatures, bytes calldata proof)
        external;

    /// @notice The digest each operator signs for `report`.
    function reportDigest(Report calldata report) external view returns (bytes32);

    /// @notice The stored retarget of epoch `e` in [firstEpoch, latestEpoch]: block hash (display
    ///         order), bits, header time.
    function retarget(uint256 e)
        external
        view
        returns (bytes32 blockHash, uint32 bits, uint32 time);

    /// @notice Announce a re-anchor at a new genesis checkpoint, for when a wrong epoch went final
    ///         (the oracle could then never prove the next one). Position holders see the event
    ///         `governanceDelay` before it can take effect.
    function scheduleReanchor(Checkpoint calldata genesis, uint32[] calldata seedBits)
        external
        returns (bytes32 id);

    /// @notice Announce a new signer set and threshold, executable after `governanceDelay`.
    function scheduleSignerConfig(address[] calldata signers_, uint8 threshold_)
        external
        returns (bytes32 id);

    /// @notice Governance operation id => earliest execution time (0: not scheduled).
    function scheduledAt(bytes32) external view returns (uint256);

    /// @notice The id of a signer-configuration change.
    function signerConfigId(address[] calldata signers_, uint8 threshold_)
        external
        pure
        returns (bytes32);

    /// @notice The authorised signers; a signer's position is its bit in the events' bitmap.
    function signers() external view returns (address[] memory);

    /// @notice Store the next epoch (latest + 1). `signatures` is the concatenation of 65-byte (r,
    ///         s, v) signatures over the EIP-712 report, in strictly ascending signer order;
    ///         `proof` is the raw 80-byte header at height 2016e-1 followed by the one at 2016e.
    function submit(Report calldata report, bytes calldata signatures, bytes calldata proof)
        external;

    /// @notice The target of epoch `e`'s bits (seeded epochs before the genesis included).
    function target(uint256 e) external view returns (uint256);

    function threshold() external view returns (uint8);

    /// @notice Step one of two: name the next owner, who must call `acceptOwnership`.
    function transferOwnership(address newOwner) external;

    function unpause() external;
}
