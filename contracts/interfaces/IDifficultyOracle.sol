// SPDX-License-Identifier: MIT
// Generated from the DifficultyOracle artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed DifficultyOracle (constructor aside).
pragma solidity ^0.8.4;

/// @title IDifficultyOracle
/// @notice Bitcoin difficulty retargets, signed by a threshold of oracle operators AND backed by
///         the retarget block's own proof-of-work, with the BME_N mining-earnings index computed on
///         chain from the stored bits (DESIGN.md "On-chain contract").
/// @dev Byte order: `Report.blockHash` and `retarget(e)` use RPC display order, i.e.
///      `bytes32(uint256(hash number))`: the byte-reverse of the header's sha256d output, the same
///      number that is compared with the target. Storage: one word per epoch holds (hash mod 2^192)
///      << 64 | bits << 32 | time. A block that meets a mainnet-era target has a hash below 2^192,
///      so one SSTORE suffices; when the hash has bits at or above 2^192 (early mainnet, regtest,
///      test chains) the top 64 bits go to a second word written only then, so the full hash is
///      always recoverable. Stored epochs form one contiguous run [firstEpoch, latestEpoch]: a
///      report must extend it at either end, and header times must increase along it, so `bmeAt`
///      can binary search and every BME window is either complete or reported missing.
interface IDifficultyOracle {
    struct Report {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
    }

    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event Paused(address account);
    event ReportAccepted(uint32 indexed epoch, bytes32 blockHash, uint32 bits, uint32 time);
    event SignerAdded(address indexed signer);
    event SignerRemoved(address indexed signer);
    event ThresholdChanged(uint8 threshold);
    event Unpaused(address account);

    error BadHeaderLength(uint256 length);
    error BitsMismatch(uint32 reported, uint32 header);
    error DifficultyTransitionOutOfBounds(uint32 previousBits, uint32 nextBits);
    error DuplicateSigner(address signer);
    error EnforcedPause();
    error EpochAlreadyStored(uint32 epoch, bytes32 storedBlockHash);
    error EpochMissing(uint256 epoch);
    error EpochNotContiguous(uint32 epoch, uint32 firstEpoch, uint32 latestEpoch);
    error ExpectedPause();
    error HeaderHashMismatch(bytes32 reported, bytes32 computed);
    error InsufficientProofOfWork(bytes32 blockHash, uint256 target);

    /// @notice Compact bits that Bitcoin Core rejects: negative, overflowing or zero target.
    error InvalidBits(uint32 bits);

    error InvalidSignature(uint256 index);
    error InvalidThreshold(uint256 threshold, uint256 signerCount);

    /// @notice `N` is not a positive multiple of 14.
    error InvalidWindow(uint256 nDays);

    error MalformedSignatures(uint256 length);

    /// @notice A 512-bit quotient does not fit in 256 bits.
    error MulDivOverflow();

    error NoEpochAtTime(uint256 time);
    error NoEpochs();
    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ReportAlreadyAccepted(uint32 epoch);
    error SignerAlreadyAuthorised(address signer);
    error SignerNotAuthorised(address signer);
    error SignersNotAscending(address previous, address signer);
    error TargetAbovePowLimit(uint256 target, uint256 powLimit);
    error TimeMismatch(uint32 reported, uint32 header);
    error TimeNotIncreasing(uint32 time, uint32 neighbourTime);
    error TooFewSignatures(uint256 count, uint256 threshold);
    error UnknownSigner(address signer);
    error ZeroAddress();

    function REPORT_TYPEHASH() external view returns (bytes32);

    /// @notice Step two: the pending owner takes over.
    function acceptOwnership() external;

    function addSigner(address signer) external;

    /// @notice Compact bits to target exactly as Bitcoin Core; reverts `InvalidBits`.
    function bitsToTarget(uint32 bits) external pure returns (uint256);

    /// @notice BME_N at epoch `e` in 10^18 fixed point (DESIGN.md), from the stored bits of epochs
    ///         e-T+1 .. e; reverts `EpochMissing` naming the first absent one.
    function bme(uint256 nDays, uint256 e) external view returns (uint256);

    /// @notice BME_N for the latest epoch whose retarget header time is <= `t` (settlement).
    function bmeAt(uint256 nDays, uint256 t) external view returns (uint256);

    /// @notice BME_N for an explicit window of bits ending at `lastEpoch`, with no storage: the
    ///         same arithmetic as `bme`, for consumers who hold their own bits.
    function computeBme(uint256 nDays, uint256 lastEpoch, uint32[] calldata windowBits)
        external
        pure
        returns (uint256);

    /// @notice Difficulty of epoch `e` in 10^18 fixed point: floor(DIFF1_TARGET x 10^18 / target).
    ///         Reverts `MulDivOverflow` for targets so small the value exceeds 2^256.
    function difficulty(uint256 e) external view returns (uint256);

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed by a fork).
    function domainSeparator() external view returns (bytes32);

    /// @notice The latest stored epoch whose retarget header time is <= `t`.
    function epochAtTime(uint256 t) external view returns (uint256);

    /// @notice Total subsidy of the 2016 blocks of `epoch`, in satoshis.
    function epochSubsidySat(uint256 epoch) external pure returns (uint256);

    /// @notice The oldest stored epoch; reverts `NoEpochs` before the first report.
    function firstEpoch() external view returns (uint32);

    function isSigner(address) external view returns (bool);

    /// @notice The newest stored epoch; reverts `NoEpochs` before the first report.
    function latestEpoch() external view returns (uint32);

    function owner() external view returns (address);
    function pause() external;
    function paused() external view returns (bool);
    function pendingOwner() external view returns (address);

    /// @notice Core's PermittedDifficultyTransition at a retarget, under this oracle's powLimit.
    function permittedTransition(uint32 oldBits, uint32 newBits) external view returns (bool);

    /// @notice Targets above this are refused (the Bitcoin network's powLimit).
    function powLimit() external view returns (uint256);

    function removeSigner(address signer) external;

    /// @notice The digest each operator signs for `report`.
    function reportDigest(Report calldata report) external view returns (bytes32);

    /// @notice The stored retarget of epoch `e`: block hash (display order), bits, header time.
    function retarget(uint256 e)
        external
        view
        returns (bytes32 blockHash, uint32 bits, uint32 time);

    function setThreshold(uint8 threshold_) external;

    /// @notice The authorised signers, in insertion order.
    function signers() external view returns (address[] memory);

    /// @notice Store one epoch's retarget. `signatures` is the concatenation of 65-byte (r, s, v)
    ///         signatures over the EIP-712 report, in strictly ascending signer order; `header` is
    ///         the retarget block's raw 80-byte header.
    function submit(Report calldata report, bytes calldata signatures, bytes calldata header)
        external;

    /// @notice The target of epoch `e`'s bits.
    function target(uint256 e) external view returns (uint256);

    function threshold() external view returns (uint8);

    /// @notice Step one of two: name the next owner, who must call `acceptOwnership`.
    function transferOwnership(address newOwner) external;

    function unpause() external;
}
