// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BitcoinMath} from "./BitcoinMath.sol";

/// @title DifficultyOracle
/// @notice Bitcoin difficulty retargets, signed by a threshold of oracle operators AND backed by
///         the retarget block's own proof-of-work, with the BME_N mining-earnings index computed
///         on chain from the stored bits (DESIGN.md "On-chain contract").
/// @dev    Byte order: `Report.blockHash` and `retarget(e)` use RPC display order, i.e.
///         `bytes32(uint256(hash number))`: the byte-reverse of the header's sha256d output,
///         the same number that is compared with the target.
///
///         Storage: one word per epoch holds (hash mod 2^192) << 64 | bits << 32 | time. A block
///         that meets a mainnet-era target has a hash below 2^192, so one SSTORE suffices; when
///         the hash has bits at or above 2^192 (early mainnet, regtest, test chains) the top 64
///         bits go to a second word written only then, so the full hash is always recoverable.
///
///         Stored epochs form one contiguous run [firstEpoch, latestEpoch]: a report must extend
///         it at either end, and header times must increase along it, so `bmeAt` can binary
///         search and every BME window is either complete or reported missing.
contract DifficultyOracle {
    /// EIP-712 typed data, mirrored in oracle/publish/signing.py.
    struct Report {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
    }

    bytes32 public constant REPORT_TYPEHASH =
        keccak256("Report(uint32 epoch,bytes32 blockHash,uint32 bits,uint32 time)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("BmeDifficultyOracle");
    bytes32 private constant VERSION_HASH = keccak256("1");
    /// secp256k1n / 2: signatures with a larger s are malleated copies and are refused.
    uint256 private constant MAX_S = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 private constant HEADER_SIZE = 80;
    uint256 private constant SIGNATURE_SIZE = 65;

    /// Targets above this are refused (the Bitcoin network's powLimit).
    uint256 public immutable powLimit;
    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedDomainSeparator;

    // Slot 0, the only word of state every submit reads and writes: flags, the stored run
    // [firstEpoch, latestEpoch] and the bits and time of both ends, so the [1/4, 4] and time
    // checks against the neighbour need no extra cold storage read.
    bool public paused;
    uint8 public threshold;
    bool private _hasEpochs;
    uint32 private _firstEpoch;
    uint32 private _latestEpoch;
    uint32 private _firstBits;
    uint32 private _firstTime;
    uint32 private _latestBits;
    uint32 private _latestTime;

    address public owner;
    address public pendingOwner;
    mapping(address => bool) public isSigner;
    address[] private _signers;
    mapping(uint256 => uint256) private _retargetWord;
    mapping(uint256 => uint256) private _hashHigh;

    event ReportAccepted(uint32 indexed epoch, bytes32 blockHash, uint32 bits, uint32 time);
    event SignerAdded(address indexed signer);
    event SignerRemoved(address indexed signer);
    event ThresholdChanged(uint8 threshold);
    event Paused(address account);
    event Unpaused(address account);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // --- refusals of submit ---
    error EnforcedPause();
    error BadHeaderLength(uint256 length);
    error MalformedSignatures(uint256 length);
    error TooFewSignatures(uint256 count, uint256 threshold);
    error InvalidSignature(uint256 index);
    error UnknownSigner(address signer);
    error DuplicateSigner(address signer);
    error SignersNotAscending(address previous, address signer);
    error ReportAlreadyAccepted(uint32 epoch);
    error EpochAlreadyStored(uint32 epoch, bytes32 storedBlockHash);
    error EpochNotContiguous(uint32 epoch, uint32 firstEpoch, uint32 latestEpoch);
    error HeaderHashMismatch(bytes32 reported, bytes32 computed);
    error BitsMismatch(uint32 reported, uint32 header);
    error TimeMismatch(uint32 reported, uint32 header);
    error TargetAbovePowLimit(uint256 target, uint256 powLimit);
    error InsufficientProofOfWork(bytes32 blockHash, uint256 target);
    error DifficultyTransitionOutOfBounds(uint32 previousBits, uint32 nextBits);
    error TimeNotIncreasing(uint32 time, uint32 neighbourTime);
    // --- views ---
    error NoEpochs();
    error EpochMissing(uint256 epoch);
    error NoEpochAtTime(uint256 time);
    // --- owner ---
    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ZeroAddress();
    error SignerAlreadyAuthorised(address signer);
    error SignerNotAuthorised(address signer);
    error InvalidThreshold(uint256 threshold, uint256 signerCount);
    error ExpectedPause();

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(address initialOwner, address[] memory signers_, uint8 threshold_, uint256 powLimit_) {
        if (initialOwner == address(0)) revert ZeroAddress();
        if (powLimit_ == 0) revert BitcoinMath.InvalidBits(0);
        owner = initialOwner;
        emit OwnershipTransferred(address(0), initialOwner);
        for (uint256 i = 0; i < signers_.length; i++) {
            _addSigner(signers_[i]);
        }
        _setThreshold(threshold_);
        powLimit = powLimit_;
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    // ------------------------------------------------------------------ submit

    /// @notice Store one epoch's retarget. `signatures` is the concatenation of 65-byte
    ///         (r, s, v) signatures over the EIP-712 report, in strictly ascending signer order;
    ///         `header` is the retarget block's raw 80-byte header.
    function submit(Report calldata report, bytes calldata signatures, bytes calldata header) external {
        if (paused) revert EnforcedPause();
        if (header.length != HEADER_SIZE) revert BadHeaderLength(header.length);
        int256 side = _checkEpochIsNew(report);
        _checkSignatures(report, signatures);
        uint256 newTarget = _checkHeader(report, header);
        _checkNeighbour(report, newTarget, side);
        _store(report, side);
    }

    /// Returns where the epoch extends the stored run: 1 above it, -1 below it, 0 first ever.
    function _checkEpochIsNew(Report calldata report) private view returns (int256 side) {
        uint256 word = _retargetWord[report.epoch];
        if (word != 0) {
            bytes32 stored = _storedHash(report.epoch, word);
            if (stored == report.blockHash) revert ReportAlreadyAccepted(report.epoch);
            revert EpochAlreadyStored(report.epoch, stored);
        }
        if (!_hasEpochs) return 0;
        uint256 epoch = report.epoch;
        if (epoch == uint256(_latestEpoch) + 1) return 1;
        if (epoch + 1 == uint256(_firstEpoch)) return -1;
        revert EpochNotContiguous(report.epoch, _firstEpoch, _latestEpoch);
    }

    function _checkSignatures(Report calldata report, bytes calldata signatures) private view {
        if (signatures.length % SIGNATURE_SIZE != 0) revert MalformedSignatures(signatures.length);
        uint256 count = signatures.length / SIGNATURE_SIZE;
        if (count < threshold) revert TooFewSignatures(count, threshold);
        bytes32 digest = reportDigest(report);
        address previous = address(0);
        for (uint256 i = 0; i < count; i++) {
            address signer = _recover(digest, signatures, i);
            if (signer == previous) revert DuplicateSigner(signer);
            if (signer < previous) revert SignersNotAscending(previous, signer);
            if (!isSigner[signer]) revert UnknownSigner(signer);
            previous = signer;
        }
    }

    function _recover(bytes32 digest, bytes calldata signatures, uint256 index) private pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            let offset := add(signatures.offset, mul(index, 65))
            r := calldataload(offset)
            s := calldataload(add(offset, 32))
            v := byte(0, calldataload(add(offset, 64)))
        }
        if (uint256(s) > MAX_S || (v != 27 && v != 28)) revert InvalidSignature(index);
        address signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature(index);
        return signer;
    }

    /// Returns the target of the header's bits after checking hash, fields and proof-of-work.
    function _checkHeader(Report calldata report, bytes calldata header) private view returns (uint256 headerTarget) {
        uint256 hashNumber = BitcoinMath.reverseBytes32(uint256(sha256(abi.encodePacked(sha256(header)))));
        if (bytes32(hashNumber) != report.blockHash) {
            revert HeaderHashMismatch(report.blockHash, bytes32(hashNumber));
        }
        uint256 timeAndBits;
        assembly ("memory-safe") {
            timeAndBits := shr(192, calldataload(add(header.offset, 68)))
        }
        uint32 headerTime = BitcoinMath.swap32(timeAndBits >> 32);
        uint32 headerBits = BitcoinMath.swap32(timeAndBits & 0xffffffff);
        if (headerBits != report.bits) revert BitsMismatch(report.bits, headerBits);
        if (headerTime != report.time) revert TimeMismatch(report.time, headerTime);
        headerTarget = BitcoinMath.bitsToTarget(headerBits);
        if (headerTarget > powLimit) revert TargetAbovePowLimit(headerTarget, powLimit);
        if (hashNumber > headerTarget) revert InsufficientProofOfWork(report.blockHash, headerTarget);
    }

    /// [1/4, 4] against the stored neighbour on the side the run is extended (Core's
    /// PermittedDifficultyTransition, old -> new in chain order) and increasing header times.
    /// Contiguity means the other side is never stored; the neighbour's bits and time are
    /// cached in slot 0.
    function _checkNeighbour(Report calldata report, uint256 newTarget, int256 side) private view {
        if (side == 0) return;
        if (side > 0) {
            uint32 previousBits = _latestBits;
            uint32 previousTime = _latestTime;
            if (!BitcoinMath.permittedTransition(BitcoinMath.bitsToTarget(previousBits), newTarget, powLimit)) {
                revert DifficultyTransitionOutOfBounds(previousBits, report.bits);
            }
            if (report.time <= previousTime) revert TimeNotIncreasing(report.time, previousTime);
        } else {
            uint32 nextBits = _firstBits;
            uint32 nextTime = _firstTime;
            if (!BitcoinMath.permittedTransition(newTarget, BitcoinMath.bitsToTarget(nextBits), powLimit)) {
                revert DifficultyTransitionOutOfBounds(report.bits, nextBits);
            }
            if (report.time >= nextTime) revert TimeNotIncreasing(report.time, nextTime);
        }
    }

    function _store(Report calldata report, int256 side) private {
        uint256 hashNumber = uint256(report.blockHash);
        _retargetWord[report.epoch] = (hashNumber << 64) | (uint256(report.bits) << 32) | uint256(report.time);
        if (hashNumber >> 192 != 0) _hashHigh[report.epoch] = hashNumber >> 192;
        if (side >= 0) {
            _latestEpoch = report.epoch;
            _latestBits = report.bits;
            _latestTime = report.time;
        }
        if (side <= 0) {
            _firstEpoch = report.epoch;
            _firstBits = report.bits;
            _firstTime = report.time;
        }
        if (side == 0) _hasEpochs = true;
        emit ReportAccepted(report.epoch, report.blockHash, report.bits, report.time);
    }

    // ------------------------------------------------------------------ EIP-712

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed by a fork).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedDomainSeparator : _buildDomainSeparator();
    }

    /// @notice The digest each operator signs for `report`.
    function reportDigest(Report calldata report) public view returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(REPORT_TYPEHASH, report.epoch, report.blockHash, report.bits, report.time));
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    // ------------------------------------------------------------------ views

    /// @notice The newest stored epoch; reverts `NoEpochs` before the first report.
    function latestEpoch() public view returns (uint32) {
        if (!_hasEpochs) revert NoEpochs();
        return _latestEpoch;
    }

    /// @notice The oldest stored epoch; reverts `NoEpochs` before the first report.
    function firstEpoch() external view returns (uint32) {
        if (!_hasEpochs) revert NoEpochs();
        return _firstEpoch;
    }

    /// @notice The stored retarget of epoch `e`: block hash (display order), bits, header time.
    function retarget(uint256 e) public view returns (bytes32 blockHash, uint32 bits, uint32 time) {
        uint256 word = _word(e);
        return (_storedHash(e, word), uint32(word >> 32), uint32(word));
    }

    /// @notice The target of epoch `e`'s bits.
    function target(uint256 e) public view returns (uint256) {
        return BitcoinMath.bitsToTarget(uint32(_word(e) >> 32));
    }

    /// @notice Difficulty of epoch `e` in 10^18 fixed point: floor(DIFF1_TARGET x 10^18 / target).
    ///         Reverts `MulDivOverflow` for targets so small the value exceeds 2^256.
    function difficulty(uint256 e) external view returns (uint256) {
        return BitcoinMath.mulDiv(BitcoinMath.DIFF1_TARGET, 1e18, target(e));
    }

    /// @notice BME_N at epoch `e` in 10^18 fixed point (DESIGN.md), from the stored bits of
    ///         epochs e-T+1 .. e; reverts `EpochMissing` naming the first absent one.
    function bme(uint256 nDays, uint256 e) public view returns (uint256) {
        uint256 epochs = BitcoinMath.epochsForDays(nDays);
        if (e + 1 < epochs) revert EpochMissing(0);
        uint256 hi;
        uint256 lo;
        for (uint256 i = e + 1 - epochs; i <= e; i++) {
            (hi, lo) = BitcoinMath.accumulate(hi, lo, i, target(i));
        }
        return BitcoinMath.bmeFixed(hi, lo, epochs);
    }

    /// @notice BME_N for the latest epoch whose retarget header time is <= `t` (settlement).
    function bmeAt(uint256 nDays, uint256 t) external view returns (uint256) {
        return bme(nDays, epochAtTime(t));
    }

    /// @notice The latest stored epoch whose retarget header time is <= `t`.
    function epochAtTime(uint256 t) public view returns (uint256) {
        if (!_hasEpochs) revert NoEpochs();
        uint256 low = _firstEpoch;
        uint256 high = _latestEpoch;
        if (uint32(_retargetWord[low]) > t) revert NoEpochAtTime(t);
        while (low < high) {
            uint256 mid = (low + high + 1) / 2;
            if (uint32(_retargetWord[mid]) <= t) low = mid;
            else high = mid - 1;
        }
        return low;
    }

    /// @notice BME_N for an explicit window of bits ending at `lastEpoch`, with no storage:
    ///         the same arithmetic as `bme`, for consumers who hold their own bits.
    function computeBme(uint256 nDays, uint256 lastEpoch, uint32[] calldata windowBits)
        external
        pure
        returns (uint256)
    {
        uint256 epochs = BitcoinMath.epochsForDays(nDays);
        if (windowBits.length != epochs || lastEpoch + 1 < epochs) revert BitcoinMath.InvalidWindow(nDays);
        uint256 hi;
        uint256 lo;
        for (uint256 i = 0; i < epochs; i++) {
            uint256 epoch = lastEpoch + 1 - epochs + i;
            (hi, lo) = BitcoinMath.accumulate(hi, lo, epoch, BitcoinMath.bitsToTarget(windowBits[i]));
        }
        return BitcoinMath.bmeFixed(hi, lo, epochs);
    }

    /// @notice Compact bits to target exactly as Bitcoin Core; reverts `InvalidBits`.
    function bitsToTarget(uint32 bits) external pure returns (uint256) {
        return BitcoinMath.bitsToTarget(bits);
    }

    /// @notice Core's PermittedDifficultyTransition at a retarget, under this oracle's powLimit.
    function permittedTransition(uint32 oldBits, uint32 newBits) external view returns (bool) {
        return BitcoinMath.permittedTransition(
            BitcoinMath.bitsToTarget(oldBits), BitcoinMath.bitsToTarget(newBits), powLimit
        );
    }

    /// @notice Total subsidy of the 2016 blocks of `epoch`, in satoshis.
    function epochSubsidySat(uint256 epoch) external pure returns (uint256) {
        return BitcoinMath.epochSubsidySat(epoch);
    }

    /// @notice The authorised signers, in insertion order.
    function signers() external view returns (address[] memory) {
        return _signers;
    }

    function _word(uint256 e) private view returns (uint256 word) {
        word = _retargetWord[e];
        if (word == 0) revert EpochMissing(e);
    }

    function _storedHash(uint256 e, uint256 word) private view returns (bytes32) {
        return bytes32((_hashHigh[e] << 192) | (word >> 64));
    }

    // ------------------------------------------------------------------ owner

    function addSigner(address signer) external onlyOwner {
        _addSigner(signer);
    }

    function removeSigner(address signer) external onlyOwner {
        if (!isSigner[signer]) revert SignerNotAuthorised(signer);
        if (_signers.length - 1 < threshold) revert InvalidThreshold(threshold, _signers.length - 1);
        isSigner[signer] = false;
        uint256 last = _signers.length - 1;
        for (uint256 i = 0; i <= last; i++) {
            if (_signers[i] == signer) {
                _signers[i] = _signers[last];
                _signers.pop();
                break;
            }
        }
        emit SignerRemoved(signer);
    }

    function setThreshold(uint8 threshold_) external onlyOwner {
        _setThreshold(threshold_);
    }

    function pause() external onlyOwner {
        if (paused) revert EnforcedPause();
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOwner {
        if (!paused) revert ExpectedPause();
        paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Step one of two: name the next owner, who must call `acceptOwnership`.
    function transferOwnership(address newOwner) external onlyOwner {
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(owner, newOwner);
    }

    /// @notice Step two: the pending owner takes over.
    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        emit OwnershipTransferred(owner, msg.sender);
        owner = msg.sender;
        pendingOwner = address(0);
    }

    function _addSigner(address signer) private {
        if (signer == address(0)) revert ZeroAddress();
        if (isSigner[signer]) revert SignerAlreadyAuthorised(signer);
        isSigner[signer] = true;
        _signers.push(signer);
        emit SignerAdded(signer);
    }

    function _setThreshold(uint8 threshold_) private {
        if (threshold_ == 0 || threshold_ > _signers.length) revert InvalidThreshold(threshold_, _signers.length);
        threshold = threshold_;
        emit ThresholdChanged(threshold_);
    }
}
