// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BitcoinMath} from "./BitcoinMath.sol";

/// @title DifficultyOracle
/// @notice Bitcoin difficulty retargets bound to the Bitcoin chain, signed by a threshold of
///         oracle operators, with the BME_N mining-earnings index computed on chain from the
///         stored bits (DESIGN.md "On-chain contract"). Settlement reads `bmeAtFinal` or
///         `bmeFinal`; `bmeAt` and `bme` are "latest known" and can still change.
/// @dev    Chain binding: every report carries the last header of epoch e-1 (height 2016e-1)
///         and the retarget header (2016e). The last header must carry the stored bits of
///         epoch e-1 and meet them, the retarget header must link to it and meet its own bits,
///         and those bits must be Bitcoin Core's `CalculateNextWorkRequired` from epoch e-1's
///         stored bits and time (the time of block 2016e-2016) and the last header's time. A
///         stored value therefore costs a block of real work at the network's difficulty on top
///         of the signatures.
///
///         Epochs are contiguous from a genesis checkpoint set at deployment (or by a
///         timelocked re-anchor), which also seeds the bits of the up to 5 epochs before it so
///         that BME84 answers from the genesis epoch on. Seeded epochs hold bits only.
///
///         Finality: only the latest stored epoch can change (`replace`, inside its challenge
///         window, which a replacement does not restart). An epoch is final once its window
///         has passed or a later epoch is stored on top of it; the genesis is final at once.
///         Settlement at time t becomes possible when the epoch after t is final: usually 0-14
///         days (the next retarget) plus the challenge window after t.
///
///         Byte order: `Report.blockHash` and `retarget(e)` use RPC display order, i.e.
///         `bytes32(uint256(hash number))`: the byte-reverse of the header's sha256d output,
///         the same number that is compared with the target.
///
///         Storage: one word per epoch holds (hash mod 2^192) << 64 | bits << 32 | time; a hash
///         at or above 2^192 (early mainnet, regtest) is also written whole to a second word,
///         only then, which counts only while it matches the first (so a second word left by an
///         earlier hash of the same epoch number never shows). Slot 0 holds everything else a
///         submit reads and writes.
///
///         View loops: `bme`, `bmeAt`, `bmeFinal`, `bmeAtFinal` and `computeBme` read N/14
///         epochs; N is at most 14 x 256 = 3,584 days (`MAX_WINDOW_EPOCHS`): about 1.13 million
///         gas (`bme(3584, 413)` on mainnet bits, eth_estimateGas), so on-chain consumers
///         should keep N small (BME84: about 30,000 gas of execution).
contract DifficultyOracle {
    /// EIP-712 typed data, mirrored in oracle/publish/signing.py. `configVersion` binds the
    /// signatures to the signer configuration: every signer or threshold change bumps it, so
    /// signatures made under an older set are void.
    struct Report {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
        uint32 configVersion;
    }

    /// A trust anchor: the retarget block of `epoch` (hash in display order, bits, header time).
    struct Checkpoint {
        uint32 epoch;
        bytes32 blockHash;
        uint32 bits;
        uint32 time;
    }

    bytes32 public constant REPORT_TYPEHASH =
        keccak256("Report(uint32 epoch,bytes32 blockHash,uint32 bits,uint32 time,uint32 configVersion)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("BmeDifficultyOracle");
    bytes32 private constant VERSION_HASH = keccak256("2");
    /// secp256k1n / 2: signatures with a larger s are malleated copies and are refused.
    uint256 private constant MAX_S = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    uint256 private constant HEADER_SIZE = 80;
    uint256 private constant PROOF_SIZE = 160;
    uint256 private constant SIGNATURE_SIZE = 65;

    /// Network modes (fixed at deployment). Signet (proof of work proves nothing there) and
    /// testnet3 (20-minute min-difficulty blocks) are refused.
    uint8 public constant NETWORK_MAINNET = 0;
    uint8 public constant NETWORK_TESTNET4 = 1;
    uint8 public constant NETWORK_REGTEST = 2;
    /// Regtest mode (no retargeting, trivial work) is accepted only on the dev chain.
    uint256 public constant DEV_CHAIN_ID = 31337;
    uint256 private constant MAINNET_POW_LIMIT = 0x00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    uint256 private constant REGTEST_POW_LIMIT = 0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff;
    /// Bitcoin's rule for block times (MAX_FUTURE_BLOCK_TIME), applied against the EVM clock.
    uint256 public constant MAX_FUTURE_S = 2 hours;
    uint256 public constant MAX_CHALLENGE_WINDOW_S = 3 days;
    uint256 public constant SEED_EPOCHS = 5;
    uint256 public constant MAX_SIGNERS = 64;
    uint256 public constant MAX_WINDOW_EPOCHS = 256;

    uint8 public immutable network;
    /// Targets above this are refused (the network's powLimit).
    uint256 public immutable powLimit;
    /// Seconds after it was first stored during which the latest epoch can be replaced.
    uint256 public immutable challengeWindow;
    /// Seconds between announcing a governance change and executing it.
    uint256 public immutable governanceDelay;
    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedDomainSeparator;

    // Slot 0: every field a submit reads or writes besides the epoch word and the signers.
    bool public paused;
    uint8 public threshold;
    uint32 public configVersion;
    uint32 private _firstEpoch;
    uint32 private _latestEpoch;
    uint32 private _latestBits;
    uint32 private _latestTime;
    uint40 private _latestStoredAt;

    address public owner;
    address public pendingOwner;
    address[] private _signers;
    /// Position in `_signers` plus one (0: not a signer); the bit of the signer bitmap.
    mapping(address => uint256) private _signerSlot;
    mapping(uint256 => uint256) private _retargetWord;
    /// The whole hash of an epoch whose hash is >= 2^192, written only then. It counts only
    /// while its low 192 bits equal the epoch word's: one left from an earlier hash of the same
    /// epoch number (a replacement, a re-anchor) never shows and needs no clearing.
    mapping(uint256 => uint256) private _wideHash;
    /// Governance operation id => earliest execution time (0: not scheduled).
    mapping(bytes32 => uint256) public scheduledAt;

    event ReportAccepted(
        uint32 indexed epoch, bytes32 blockHash, uint32 bits, uint32 time, address submitter, uint256 signerBitmap
    );
    event EpochReplaced(
        uint32 indexed epoch, bytes32 oldHash, bytes32 newHash, address submitter, uint256 signerBitmap
    );
    event Anchored(uint32 indexed epoch, bytes32 blockHash, uint32 bits, uint32 time, uint32[] seedBits);
    event SignerConfigChanged(uint32 indexed configVersion, address[] signers, uint8 threshold);
    event SignerConfigScheduled(bytes32 indexed id, address[] signers, uint8 threshold, uint256 executableAt);
    event ReanchorScheduled(bytes32 indexed id, Checkpoint genesis, uint32[] seedBits, uint256 executableAt);
    event GovernanceCancelled(bytes32 indexed id);
    event Paused(address account);
    event Unpaused(address account);
    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    // --- deployment ---
    error UnsupportedNetwork(uint8 network);
    error RegtestOnlyOnDevChain(uint256 chainId);
    error ChallengeWindowTooLong(uint256 window, uint256 maximum);
    error BadSeedCount(uint256 count, uint256 expected);
    // --- refusals of submit and replace ---
    error EnforcedPause();
    error BadProofLength(uint256 length);
    error MalformedSignatures(uint256 length);
    error TooFewSignatures(uint256 count, uint256 threshold);
    error InvalidSignature(uint256 index);
    error UnknownSigner(address signer);
    error DuplicateSigner(address signer);
    error SignersNotAscending(address previous, address signer);
    error StaleSignerConfig(uint32 signedVersion, uint32 currentVersion);
    error ReportAlreadyAccepted(uint32 epoch);
    error EpochAlreadyStored(uint32 epoch, bytes32 storedBlockHash);
    error EpochNotNext(uint32 epoch, uint32 latestEpoch);
    error NotLatestEpoch(uint32 epoch, uint32 latestEpoch);
    error GenesisNotReplaceable(uint32 epoch);
    error ReplacementWindowClosed(uint32 epoch, uint256 closedAt);
    error HeaderHashMismatch(bytes32 reported, bytes32 computed);
    error BitsMismatch(uint32 reported, uint32 header);
    error TimeMismatch(uint32 reported, uint32 header);
    error HeaderNotLinked(bytes32 lastHeaderHash, bytes32 prevHash);
    error LastHeaderBitsMismatch(uint32 headerBits, uint32 storedBits);
    error BitsNotRetarget(uint32 reported, uint32 expected);
    error TargetAbovePowLimit(uint256 target, uint256 powLimit);
    error InsufficientProofOfWork(bytes32 blockHash, uint256 target);
    error HeaderTimeInFuture(uint32 time, uint256 limit);
    error TimeNotIncreasing(uint32 time, uint32 previousTime);
    // --- views ---
    error EpochMissing(uint256 epoch);
    error NoEpochAtTime(uint256 time);
    error NoEpochAfter(uint256 time, uint32 latestEpoch);
    error EpochNotFinal(uint256 epoch, uint256 finalAt);
    // --- owner and governance ---
    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ZeroAddress();
    error DuplicateSignerInConfig(address signer);
    error TooManySigners(uint256 count, uint256 maximum);
    error InvalidThreshold(uint256 threshold, uint256 signerCount);
    error ExpectedPause();
    error AlreadyScheduled(bytes32 id);
    error NotScheduled(bytes32 id);
    error TooEarly(bytes32 id, uint256 executableAt);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert EnforcedPause();
        _;
    }

    /// @param network_ NETWORK_MAINNET, NETWORK_TESTNET4 or NETWORK_REGTEST (dev chain only).
    /// @param genesis The first stored epoch, trusted as given (final at once).
    /// @param seedBits The bits of the min(5, genesis.epoch) epochs before the genesis, oldest first.
    /// @param challengeWindow_ Seconds the latest epoch stays replaceable (at most 3 days).
    /// @param governanceDelay_ Seconds between announcing and executing a signer, threshold or
    ///        re-anchor change.
    constructor(
        address initialOwner,
        address[] memory signers_,
        uint8 threshold_,
        uint8 network_,
        Checkpoint memory genesis,
        uint32[] memory seedBits,
        uint256 challengeWindow_,
        uint256 governanceDelay_
    ) {
        if (initialOwner == address(0)) revert ZeroAddress();
        if (network_ > NETWORK_REGTEST) revert UnsupportedNetwork(network_);
        if (network_ == NETWORK_REGTEST && block.chainid != DEV_CHAIN_ID) revert RegtestOnlyOnDevChain(block.chainid);
        if (challengeWindow_ > MAX_CHALLENGE_WINDOW_S) {
            revert ChallengeWindowTooLong(challengeWindow_, MAX_CHALLENGE_WINDOW_S);
        }
        network = network_;
        powLimit = network_ == NETWORK_REGTEST ? REGTEST_POW_LIMIT : MAINNET_POW_LIMIT;
        challengeWindow = challengeWindow_;
        governanceDelay = governanceDelay_;
        owner = initialOwner;
        emit OwnershipTransferred(address(0), initialOwner);
        _setSignerConfig(signers_, threshold_);
        _anchor(genesis, seedBits);
        _cachedChainId = block.chainid;
        _cachedDomainSeparator = _buildDomainSeparator();
    }

    // ------------------------------------------------------------------ submit and replace

    /// @notice Store the next epoch (latest + 1). `signatures` is the concatenation of 65-byte
    ///         (r, s, v) signatures over the EIP-712 report, in strictly ascending signer order;
    ///         `proof` is the raw 80-byte header at height 2016e-1 followed by the one at 2016e.
    function submit(Report calldata report, bytes calldata signatures, bytes calldata proof)
        external
        whenNotPaused
    {
        uint32 latest = _latestEpoch;
        if (report.epoch != uint256(latest) + 1) {
            if (report.epoch <= latest && report.epoch >= _firstEpoch) {
                bytes32 stored = _storedHash(report.epoch, _retargetWord[report.epoch]);
                if (stored == report.blockHash) revert ReportAlreadyAccepted(report.epoch);
                revert EpochAlreadyStored(report.epoch, stored);
            }
            revert EpochNotNext(report.epoch, latest);
        }
        uint256 bitmap = _checkSignatures(report, signatures);
        _checkProof(report, proof, _latestBits, _latestTime);
        _storeWord(report);
        _latestEpoch = report.epoch;
        _latestBits = report.bits;
        _latestTime = report.time;
        _latestStoredAt = uint40(block.timestamp);
        emit ReportAccepted(report.epoch, report.blockHash, report.bits, report.time, msg.sender, bitmap);
    }

    /// @notice Replace the latest epoch inside its challenge window (a Bitcoin reorg), with a
    ///         new chain-bound proof from epoch e-1. The window is not restarted.
    function replace(Report calldata report, bytes calldata signatures, bytes calldata proof)
        external
        whenNotPaused
    {
        uint32 latest = _latestEpoch;
        if (report.epoch != latest) revert NotLatestEpoch(report.epoch, latest);
        if (report.epoch == _firstEpoch) revert GenesisNotReplaceable(report.epoch);
        uint256 closesAt = uint256(_latestStoredAt) + challengeWindow;
        if (block.timestamp >= closesAt) revert ReplacementWindowClosed(report.epoch, closesAt);
        bytes32 oldHash = _storedHash(report.epoch, _retargetWord[report.epoch]);
        if (oldHash == report.blockHash) revert ReportAlreadyAccepted(report.epoch);
        uint256 bitmap = _checkSignatures(report, signatures);
        uint256 previous = _retargetWord[report.epoch - 1];
        _checkProof(report, proof, uint32(previous >> 32), uint32(previous));
        _storeWord(report);
        _latestBits = report.bits;
        _latestTime = report.time;
        emit EpochReplaced(report.epoch, oldHash, report.blockHash, msg.sender, bitmap);
    }

    /// Threshold of distinct authorised signers under the current configuration; returns
    /// their bitmap (bit i = `signers()[i]`).
    function _checkSignatures(Report calldata report, bytes calldata signatures)
        private
        view
        returns (uint256 bitmap)
    {
        if (report.configVersion != configVersion) revert StaleSignerConfig(report.configVersion, configVersion);
        if (signatures.length % SIGNATURE_SIZE != 0) revert MalformedSignatures(signatures.length);
        uint256 count = signatures.length / SIGNATURE_SIZE;
        if (count < threshold) revert TooFewSignatures(count, threshold);
        bytes32 digest = reportDigest(report);
        address previous = address(0);
        for (uint256 i = 0; i < count; i++) {
            address signer = _recover(digest, signatures, i);
            if (signer == previous) revert DuplicateSigner(signer);
            if (signer < previous) revert SignersNotAscending(previous, signer);
            uint256 slot = _signerSlot[signer];
            if (slot == 0) revert UnknownSigner(signer);
            bitmap |= 1 << (slot - 1);
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

    /// The chain-bound proof against epoch e-1's stored bits and time.
    function _checkProof(Report calldata report, bytes calldata proof, uint32 previousBits, uint32 previousTime)
        private
        view
    {
        if (proof.length != PROOF_SIZE) revert BadProofLength(proof.length);
        uint256 timeLimit = block.timestamp + MAX_FUTURE_S;
        uint256 offset;
        bytes32 prevHash;
        assembly ("memory-safe") {
            offset := proof.offset
            prevHash := calldataload(add(offset, 84))
        }
        // The last header of epoch e-1: the stored bits (or, on testnet4, a minimum-difficulty
        // block), met by its own hash, and not from the future.
        (uint256 lastDigest, uint32 lastTime, uint32 lastBits) = _readHeader(offset);
        if (lastBits != previousBits && !(network == NETWORK_TESTNET4 && lastBits == _powLimitBits())) {
            revert LastHeaderBitsMismatch(lastBits, previousBits);
        }
        _checkWork(lastDigest, lastBits);
        if (lastTime > timeLimit) revert HeaderTimeInFuture(lastTime, timeLimit);
        // The retarget header: links to the last header, is the reported block, meets its bits.
        (uint256 digest, uint32 time, uint32 bits) = _readHeader(offset + HEADER_SIZE);
        if (prevHash != bytes32(lastDigest)) revert HeaderNotLinked(bytes32(lastDigest), prevHash);
        bytes32 blockHash = bytes32(BitcoinMath.reverseBytes32(digest));
        if (blockHash != report.blockHash) revert HeaderHashMismatch(report.blockHash, blockHash);
        if (bits != report.bits) revert BitsMismatch(report.bits, bits);
        if (time != report.time) revert TimeMismatch(report.time, time);
        _checkWork(digest, bits);
        if (time > timeLimit) revert HeaderTimeInFuture(time, timeLimit);
        if (time <= previousTime) revert TimeNotIncreasing(time, previousTime);
        // The retarget rule (regtest: no retargeting).
        uint32 expected = network == NETWORK_REGTEST
            ? previousBits
            : BitcoinMath.nextWorkRequired(previousBits, previousTime, lastTime, powLimit);
        if (bits != expected) revert BitsNotRetarget(bits, expected);
    }

    /// sha256d of the 80-byte header at `offset` (raw digest, internal byte order) and its
    /// time and bits fields.
    function _readHeader(uint256 offset) private view returns (uint256 digest, uint32 time, uint32 bits) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, offset, 80)
            if iszero(staticcall(gas(), 2, ptr, 80, 0x00, 32)) { revert(0, 0) }
            if iszero(staticcall(gas(), 2, 0x00, 32, 0x00, 32)) { revert(0, 0) }
            digest := mload(0x00)
        }
        uint256 timeAndBits;
        assembly ("memory-safe") {
            timeAndBits := shr(192, calldataload(add(offset, 68)))
        }
        time = BitcoinMath.swap32(timeAndBits >> 32);
        bits = BitcoinMath.swap32(timeAndBits & 0xffffffff);
    }

    /// The header's hash number is at most the target of its bits, itself at most powLimit.
    function _checkWork(uint256 digest, uint32 bits) private view {
        uint256 headerTarget = BitcoinMath.bitsToTarget(bits);
        if (headerTarget > powLimit) revert TargetAbovePowLimit(headerTarget, powLimit);
        uint256 hashNumber = BitcoinMath.reverseBytes32(digest);
        if (hashNumber > headerTarget) revert InsufficientProofOfWork(bytes32(hashNumber), headerTarget);
    }

    function _powLimitBits() private view returns (uint32) {
        return BitcoinMath.encodeCompact(powLimit);
    }

    function _storeWord(Report calldata report) private {
        uint256 hashNumber = uint256(report.blockHash);
        _retargetWord[report.epoch] = (hashNumber << 64) | (uint256(report.bits) << 32) | uint256(report.time);
        if (hashNumber >> 192 != 0) _wideHash[report.epoch] = hashNumber;
    }

    // ------------------------------------------------------------------ EIP-712

    /// @notice The EIP-712 domain separator (recomputed if the chain id changed by a fork).
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedDomainSeparator : _buildDomainSeparator();
    }

    /// @notice The digest each operator signs for `report`.
    function reportDigest(Report calldata report) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(REPORT_TYPEHASH, report.epoch, report.blockHash, report.bits, report.time, report.configVersion)
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    // ------------------------------------------------------------------ views

    /// @notice The newest stored epoch (latest known; final only after its window).
    function latestEpoch() public view returns (uint32) {
        return _latestEpoch;
    }

    /// @notice The genesis epoch: the oldest stored epoch with a hash and time.
    function firstEpoch() external view returns (uint32) {
        return _firstEpoch;
    }

    /// @notice The EVM block time at which the latest epoch was first stored (a replacement
    ///         keeps it): the start of its challenge window and the adapter's `updatedAt`.
    function latestStoredAt() external view returns (uint256) {
        return _latestStoredAt;
    }

    /// @notice When `e` is or becomes final: 0 if it is final now, else the end of the latest
    ///         epoch's challenge window. Reverts `EpochMissing` outside [firstEpoch, latestEpoch].
    function finalAt(uint256 e) public view returns (uint256) {
        if (e < _firstEpoch || e > _latestEpoch) revert EpochMissing(e);
        if (e < _latestEpoch || e == _firstEpoch) return 0;
        uint256 closesAt = uint256(_latestStoredAt) + challengeWindow;
        return block.timestamp >= closesAt ? 0 : closesAt;
    }

    /// @notice Whether stored epoch `e` can no longer change.
    function isFinal(uint256 e) external view returns (bool) {
        return finalAt(e) == 0;
    }

    /// @notice The stored retarget of epoch `e` in [firstEpoch, latestEpoch]: block hash
    ///         (display order), bits, header time.
    function retarget(uint256 e) public view returns (bytes32 blockHash, uint32 bits, uint32 time) {
        if (e < _firstEpoch || e > _latestEpoch) revert EpochMissing(e);
        uint256 word = _retargetWord[e];
        return (_storedHash(e, word), uint32(word >> 32), uint32(word));
    }

    /// @notice The target of epoch `e`'s bits (seeded epochs before the genesis included).
    function target(uint256 e) public view returns (uint256) {
        uint256 first = _firstEpoch;
        uint256 seeds = first < SEED_EPOCHS ? first : SEED_EPOCHS;
        if (e + seeds < first || e > _latestEpoch) revert EpochMissing(e);
        return BitcoinMath.bitsToTarget(uint32(_retargetWord[e] >> 32));
    }

    /// @notice Difficulty of epoch `e` in 10^18 fixed point: floor(DIFF1_TARGET x 10^18 / target).
    ///         Reverts `MulDivOverflow` for targets so small the value exceeds 2^256.
    function difficulty(uint256 e) external view returns (uint256) {
        return BitcoinMath.mulDiv(BitcoinMath.DIFF1_TARGET, 1e18, target(e));
    }

    /// @notice BME_N at epoch `e` in 10^18 fixed point (DESIGN.md), from the stored bits of
    ///         epochs e-T+1 .. e, T = N/14, each epoch with its own K (`epochSubsidySat`: the
    ///         block-weighted halving rule); latest known, not final. Reverts `EpochMissing`
    ///         naming an absent epoch, `InvalidWindow` unless N is a multiple of 14 up to 3,584.
    function bme(uint256 nDays, uint256 e) public view returns (uint256) {
        uint256 epochs = _epochsForDays(nDays);
        if (e + 1 < epochs) revert EpochMissing(0);
        uint256 hi;
        uint256 lo;
        for (uint256 i = e + 1 - epochs; i <= e; i++) {
            (hi, lo) = BitcoinMath.accumulate(hi, lo, i, target(i));
        }
        return BitcoinMath.bmeFixed(hi, lo, epochs);
    }

    /// @notice BME_N for the latest stored epoch whose retarget header time is <= `t`: the
    ///         latest known value, which can still change (see `bmeAtFinal` for settlement).
    function bmeAt(uint256 nDays, uint256 t) external view returns (uint256) {
        return bme(nDays, epochAtTime(t));
    }

    /// @notice BME_N at epoch `e`, only once `e` is final; reverts `EpochNotFinal` (with the
    ///         time it will be) before, `EnforcedPause` while paused.
    function bmeFinal(uint256 nDays, uint256 e) external view whenNotPaused returns (uint256) {
        uint256 at = finalAt(e);
        if (at != 0) revert EpochNotFinal(e, at);
        return bme(nDays, e);
    }

    /// @notice The settlement value: BME_N at `timestamp` (the latest epoch whose retarget
    ///         header time is <= timestamp) and that epoch, only once an epoch whose retarget
    ///         time is > timestamp is stored and final. Reverts `NoEpochAfter` while no later
    ///         epoch is stored, `EpochNotFinal` during its challenge window, `EnforcedPause`
    ///         while paused. Settlement at t is usually possible 0-14 days (the next retarget)
    ///         plus the challenge window after t.
    function bmeAtFinal(uint256 nDays, uint256 timestamp)
        external
        view
        whenNotPaused
        returns (uint256 value, uint256 epoch)
    {
        epoch = epochAtTime(timestamp);
        if (epoch == _latestEpoch) revert NoEpochAfter(timestamp, _latestEpoch);
        uint256 at = finalAt(epoch + 1);
        if (at != 0) revert EpochNotFinal(epoch + 1, at);
        value = bme(nDays, epoch);
    }

    /// @notice The latest stored epoch whose retarget header time is <= `t`.
    function epochAtTime(uint256 t) public view returns (uint256) {
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
        uint256 epochs = _epochsForDays(nDays);
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

    /// @notice Core's `GetCompact` of a non-negative value (the encoding the retarget rule uses).
    function encodeCompact(uint256 value) external pure returns (uint32) {
        return BitcoinMath.encodeCompact(value);
    }

    /// @notice The bits of block 2016e under this oracle's rule, from epoch e-1's bits, the time
    ///         of block 2016e-2016 and the time of block 2016e-1.
    function nextBits(uint32 previousBits, uint32 firstTime, uint32 lastTime) external view returns (uint32) {
        if (network == NETWORK_REGTEST) return previousBits;
        return BitcoinMath.nextWorkRequired(previousBits, firstTime, lastTime, powLimit);
    }

    /// @notice Total subsidy of the 2016 blocks of `epoch`, in satoshis, each block at its own
    ///         height's subsidy: the index's halving rule. An epoch containing a halving (epochs
    ///         104, 208, 312, 416, ...) counts its blocks at both subsidies (K from the
    ///         block-weighted mean), known in advance, so the index still changes only at
    ///         retargets. The index authors' published history used the subsidy of each epoch's
    ///         first block instead; the two differ only in windows containing a halving epoch
    ///         (by up to 42%: BME14 at epoch 104).
    function epochSubsidySat(uint256 epoch) external pure returns (uint256) {
        return BitcoinMath.epochSubsidySat(epoch);
    }

    /// @notice The authorised signers; a signer's position is its bit in the events' bitmap.
    function signers() external view returns (address[] memory) {
        return _signers;
    }

    /// @notice Whether `account` is an authorised signer under the current configuration.
    function isSigner(address account) external view returns (bool) {
        return _signerSlot[account] != 0;
    }

    function _storedHash(uint256 e, uint256 word) private view returns (bytes32) {
        uint256 low = word >> 64;
        uint256 wide = _wideHash[e];
        return bytes32(wide != 0 && uint192(wide) == low ? wide : low);
    }

    function _epochsForDays(uint256 nDays) private pure returns (uint256 epochs) {
        epochs = BitcoinMath.epochsForDays(nDays);
        if (epochs > MAX_WINDOW_EPOCHS) revert BitcoinMath.InvalidWindow(nDays);
    }

    // ------------------------------------------------------------------ governance

    /// @notice Announce a new signer set and threshold, executable after `governanceDelay`.
    function scheduleSignerConfig(address[] calldata signers_, uint8 threshold_)
        external
        onlyOwner
        returns (bytes32 id)
    {
        _validateSignerConfig(signers_, threshold_);
        id = signerConfigId(signers_, threshold_);
        uint256 executableAt = _schedule(id);
        emit SignerConfigScheduled(id, signers_, threshold_, executableAt);
    }

    /// @notice Apply an announced signer set after its delay (anyone may call); bumps
    ///         `configVersion`, which voids every signature made under the old set.
    function executeSignerConfig(address[] calldata signers_, uint8 threshold_) external {
        _consume(signerConfigId(signers_, threshold_));
        _setSignerConfig(signers_, threshold_);
    }

    /// @notice Announce a re-anchor at a new genesis checkpoint, for when a wrong epoch went
    ///         final (the oracle could then never prove the next one). Position holders see the
    ///         event `governanceDelay` before it can take effect.
    function scheduleReanchor(Checkpoint calldata genesis, uint32[] calldata seedBits)
        external
        onlyOwner
        returns (bytes32 id)
    {
        _validateCheckpoint(genesis, seedBits);
        id = reanchorId(genesis, seedBits);
        uint256 executableAt = _schedule(id);
        emit ReanchorScheduled(id, genesis, seedBits, executableAt);
    }

    /// @notice Apply an announced re-anchor after its delay (anyone may call): the stored run
    ///         becomes [genesis.epoch, genesis.epoch]; epochs before it (other than its seeds)
    ///         and after it are no longer served.
    function executeReanchor(Checkpoint calldata genesis, uint32[] calldata seedBits) external {
        _consume(reanchorId(genesis, seedBits));
        _anchor(genesis, seedBits);
    }

    /// @notice Withdraw an announced change before it is executed.
    function cancel(bytes32 id) external onlyOwner {
        if (scheduledAt[id] == 0) revert NotScheduled(id);
        delete scheduledAt[id];
        emit GovernanceCancelled(id);
    }

    /// @notice The id of a signer-configuration change.
    function signerConfigId(address[] calldata signers_, uint8 threshold_) public pure returns (bytes32) {
        return keccak256(abi.encode("signers", signers_, threshold_));
    }

    /// @notice The id of a re-anchor.
    function reanchorId(Checkpoint calldata genesis, uint32[] calldata seedBits) public pure returns (bytes32) {
        return keccak256(abi.encode("reanchor", genesis, seedBits));
    }

    function _schedule(bytes32 id) private returns (uint256 executableAt) {
        if (scheduledAt[id] != 0) revert AlreadyScheduled(id);
        executableAt = block.timestamp + governanceDelay;
        scheduledAt[id] = executableAt;
    }

    function _consume(bytes32 id) private {
        uint256 executableAt = scheduledAt[id];
        if (executableAt == 0) revert NotScheduled(id);
        if (block.timestamp < executableAt) revert TooEarly(id, executableAt);
        delete scheduledAt[id];
    }

    function _validateSignerConfig(address[] memory signers_, uint8 threshold_) private pure {
        if (signers_.length > MAX_SIGNERS) revert TooManySigners(signers_.length, MAX_SIGNERS);
        if (threshold_ == 0 || threshold_ > signers_.length) revert InvalidThreshold(threshold_, signers_.length);
        for (uint256 i = 0; i < signers_.length; i++) {
            if (signers_[i] == address(0)) revert ZeroAddress();
            for (uint256 j = 0; j < i; j++) {
                if (signers_[j] == signers_[i]) revert DuplicateSignerInConfig(signers_[i]);
            }
        }
    }

    function _setSignerConfig(address[] memory signers_, uint8 threshold_) private {
        _validateSignerConfig(signers_, threshold_);
        for (uint256 i = 0; i < _signers.length; i++) {
            delete _signerSlot[_signers[i]];
        }
        delete _signers;
        for (uint256 i = 0; i < signers_.length; i++) {
            _signers.push(signers_[i]);
            _signerSlot[signers_[i]] = i + 1;
        }
        threshold = threshold_;
        uint32 version = configVersion + 1;
        configVersion = version;
        emit SignerConfigChanged(version, signers_, threshold_);
    }

    function _validateCheckpoint(Checkpoint memory genesis, uint32[] memory seedBits) private view {
        uint256 expected = genesis.epoch < SEED_EPOCHS ? genesis.epoch : SEED_EPOCHS;
        if (seedBits.length != expected) revert BadSeedCount(seedBits.length, expected);
        for (uint256 i = 0; i < seedBits.length; i++) {
            BitcoinMath.bitsToTarget(seedBits[i]);
        }
        uint256 genesisTarget = BitcoinMath.bitsToTarget(genesis.bits);
        if (genesisTarget > powLimit) revert TargetAbovePowLimit(genesisTarget, powLimit);
        if (genesis.time > block.timestamp + MAX_FUTURE_S) {
            revert HeaderTimeInFuture(genesis.time, block.timestamp + MAX_FUTURE_S);
        }
    }

    function _anchor(Checkpoint memory genesis, uint32[] memory seedBits) private {
        _validateCheckpoint(genesis, seedBits);
        uint256 first = uint256(genesis.epoch) - seedBits.length;
        for (uint256 i = 0; i < seedBits.length; i++) {
            _retargetWord[first + i] = uint256(seedBits[i]) << 32;
        }
        uint256 hashNumber = uint256(genesis.blockHash);
        _retargetWord[genesis.epoch] = (hashNumber << 64) | (uint256(genesis.bits) << 32) | uint256(genesis.time);
        if (hashNumber >> 192 != 0) _wideHash[genesis.epoch] = hashNumber;
        _firstEpoch = genesis.epoch;
        _latestEpoch = genesis.epoch;
        _latestBits = genesis.bits;
        _latestTime = genesis.time;
        _latestStoredAt = uint40(block.timestamp);
        emit Anchored(genesis.epoch, genesis.blockHash, genesis.bits, genesis.time, seedBits);
    }

    // ------------------------------------------------------------------ owner

    /// @notice Stop submissions, replacements, the final reads and the adapter at once.
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
}
