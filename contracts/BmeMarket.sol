// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {BmeNames} from "./BmeNames.sol";
import {BmePositionToken} from "./BmePositionToken.sol";
import {DifficultyOracle} from "./DifficultyOracle.sol";

/// @title BmeMarket
/// @notice Fully collateralised BME position tokens (the seed's contract stack): lock
///         (Cap - Floor) x 10^6 BTC of collateral per pair to mint one long and one short
///         ERC-20 of a series, trade them anywhere, and claim after settlement: a long receives
///         (clamp(BME) - Floor) x 10^6, a short (Cap - clamp(BME)) x 10^6, BME clamped to
///         [Floor, Cap]. Nobody owns or administers the market.
/// @dev    Series. A series is (N, Floor, Cap, expiry, collateral token); its id is
///         keccak256(abi.encode(N, Floor, Cap, expiry, collateral)) and its canonical name
///         `BME<N>-<Floor>-<Cap>-<YYMMDD>` (tokens `L...`/`S...`) is computed on chain
///         (`BmeNames`). Anyone can create a series. N is a positive multiple of 14 up to the
///         oracle's window limit (14 x MAX_WINDOW_EPOCHS days).
///
///         Units. Index values and strikes are 10^18 fixed point of BTC per TH/s per day, like
///         the oracle's `bme` (4.85E-07 BTC = 485_000_000_000). Names carry Floor and Cap in
///         units of 1E-7 BTC with at most 7 decimals, so a strike must be a multiple of 10^4
///         (`StrikeTooPrecise`). Multiplier = 10^6. Position tokens have 18 decimals: 10^18
///         base units are one token. Collateral amounts are in the collateral token's base
///         units: a whole pair locks (Cap - Floor) x 10^6 x 10^decimals / 10^18, for an
///         8-decimal WBTC-like token (Cap - Floor) / 10^4 satoshi (4.85-5.4: 0.055 BTC), an
///         integer for every valid strike. A collateral with fewer decimals is accepted only
///         for series whose pair collateral is still an integer (`PairCollateralNotIntegral`).
///
///         Collateral. The allowlist and each token's decimals are fixed at deployment. Mints
///         are accounted by the market's balance delta: a fee-on-transfer token that delivers
///         less than required reverts `CollateralShortfall`, so it cannot make the market
///         insolvent. Payouts use SafeERC20 (transfer results are checked).
///
///         Rounding and dust. Mint takes ceil(amount x pairCollateral / 10^18); redeem pays
///         floor(amount x pairCollateral / 10^18); a claim pays floor(long x (clamp - Floor) x
///         10^(decimals+6) / 10^36) + floor(short x (Cap - clamp) x 10^(decimals+6) / 10^36).
///         So a long plus a short of the same amount pay the collateral their mint took minus
///         at most 2 base units (one from the mint's ceiling, one from splitting), which stay
///         in the market. A per-series ledger (`deposited`: collateral received by mints;
///         `paidOut`: paid by redeems and claims) enforces paidOut <= deposited on every payout
///         (`LedgerExceeded`, unreachable by the arithmetic above: it is the proof).
///
///         Settlement. `settle` opens SETTLEMENT_DELAY (1 day) after expiry (02:00 UTC of the
///         named day) and reads the oracle's `bmeAtFinal(N, expiry)`: BME_N of the latest epoch
///         whose retarget time is <= expiry, which is final only once the next retarget (0-14
///         days after expiry) is stored and out of its challenge window; until then `settle`
///         reverts `SettlementNotFinal` carrying the oracle's reason. Early: `settleEarly`, by
///         anyone, settles at `bmeFinal(N, e)` when that value is at or beyond Floor or Cap for
///         an epoch e whose retarget time lies after the series' creation and before expiry
///         (whichever qualifying epoch is submitted first; a series whose index touched both
///         barriers pays by the one settled first). Fallback: if no final value exists
///         FALLBACK_DELAY (30 days) after expiry (oracle paused or halted), `settle` settles
///         the series at the midpoint: each long and each short token claims half a pair's
///         collateral, rounded down.
///
///         The index's halving rule. BME_N uses, for each epoch, K = 86400 x 10^12 / 2^32 x the
///         block-weighted mean subsidy of the epoch's 2016 blocks, so an epoch containing a
///         halving counts both subsidies by their blocks. The index authors' historical series
///         used the subsidy of each epoch's first block; the two differ only in windows that
///         contain a halving epoch (by up to 42%).
///
///         Storage: each series packs into six slots so that a mint reads four and a claim four
///         (plus one write each): the width Cap - Floor (< 2^96) sits beside the long token and
///         the settled long share clamp(BME) - Floor beside the short token.
contract BmeMarket is ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// The seed's Multiplier: one pair locks (Cap - Floor) x 10^6 BTC.
    uint256 public constant MULTIPLIER = 1e6;
    /// `settle` opens this long after expiry (the seed's rule).
    uint256 public constant SETTLEMENT_DELAY = 1 days;
    /// Without a final oracle value this long after expiry, the series settles at the midpoint.
    uint256 public constant FALLBACK_DELAY = 30 days;
    /// Expiry is 02:00 UTC of the named day.
    uint256 public constant EXPIRY_TIME_OF_DAY = 2 hours;
    /// Strikes are multiples of this (the 7th decimal of the 1E-7 BTC unit).
    uint256 public constant STRIKE_STEP = 1e4;
    /// Collateral tokens with more decimals are refused at deployment.
    uint8 public constant MAX_COLLATERAL_DECIMALS = 18;

    uint8 public constant STATE_NONE = 0;
    uint8 public constant STATE_OPEN = 1;
    uint8 public constant STATE_SETTLED = 2;
    uint8 public constant STATE_FALLBACK = 3;
    uint8 public constant SETTLED_FINAL = 1;
    uint8 public constant SETTLED_EARLY = 2;
    uint8 public constant SETTLED_FALLBACK = 3;

    /// Two-digit years: the last expiry is in 2099 (2100-01-01T00:00:00Z is refused).
    uint256 private constant EXPIRY_LIMIT = 4_102_444_800;
    uint256 private constant ONE = 1e18;

    /// What `seriesInfo` returns. `state`: 1 open, 2 settled (final or early), 3 fallback.
    /// `settlementValue`: the oracle's BME_N (not clamped) or, in fallback, the midpoint;
    /// `settlementEpoch`: the epoch it belongs to (0 in fallback). `deposited`/`paidOut`: the
    /// collateral ledger, in the collateral's base units.
    struct SeriesInfo {
        uint256 nDays;
        uint256 floor;
        uint256 cap;
        uint64 expiry;
        uint64 createdAt;
        address collateral;
        address longToken;
        address shortToken;
        uint8 state;
        uint256 settlementValue;
        uint256 settlementEpoch;
        uint256 deposited;
        uint256 paidOut;
        string name;
    }

    struct Series {
        // slot 0: read by every operation
        address collateral;
        uint64 expiry;
        uint16 nDays;
        uint8 state;
        uint8 decimals;
        // slot 1
        BmePositionToken longToken;
        uint96 width; // cap - floor
        // slot 2
        BmePositionToken shortToken;
        uint96 longShare; // clamp(value) - floor, set at settlement
        // slot 3: the ledger
        uint128 deposited;
        uint128 paidOut;
        // slot 4
        uint128 floor;
        uint128 cap;
        // slot 5
        uint128 settlementValue;
        uint64 createdAt;
        uint64 settlementEpoch;
    }

    /// The DifficultyOracle that settles every series.
    DifficultyOracle public immutable oracle;
    /// The largest N the oracle answers (14 x its MAX_WINDOW_EPOCHS), read at deployment.
    uint256 public immutable maxDays;

    /// Allowlisted collateral => its decimals + 1 (0: not allowed).
    mapping(address => uint256) private _decimalsPlusOne;
    address[] private _collaterals;
    mapping(bytes32 => Series) private _series;
    bytes32[] private _seriesIds;

    event SeriesCreated(
        bytes32 indexed id,
        address longToken,
        address shortToken,
        string name,
        uint256 nDays,
        uint256 floor,
        uint256 cap,
        uint256 expiry,
        address indexed collateral
    );
    event Minted(bytes32 indexed id, address indexed account, uint256 amount, uint256 collateralIn);
    event Redeemed(bytes32 indexed id, address indexed account, uint256 amount, uint256 collateralOut);
    /// `kind`: 1 final (`bmeAtFinal` at expiry), 2 early (a barrier epoch), 3 fallback.
    event Settled(bytes32 indexed id, uint256 value, uint256 epoch, uint8 kind);
    event Claimed(
        bytes32 indexed id, address indexed account, uint256 longAmount, uint256 shortAmount, uint256 paid
    );

    // --- deployment ---
    error OracleNotContract(address oracle);
    error NoCollateral();
    error ZeroAddress();
    error DuplicateCollateral(address collateral);
    error CollateralDecimalsUnsupported(address collateral, uint8 decimals);
    // --- createSeries ---
    error CollateralNotAllowed(address collateral);
    error BadWindow(uint256 nDays, uint256 maxDays);
    error FloorNotBelowCap(uint256 floor, uint256 cap);
    error StrikeTooPrecise(uint256 strike);
    error StrikeTooLarge(uint256 strike, uint256 maximum);
    error RangeTooWide(uint256 width, uint256 maximum);
    error PairCollateralNotIntegral(uint256 width, uint8 decimals);
    error BadExpiry(uint256 expiry);
    error ExpiryPassed(uint256 expiry, uint256 now_);
    error SeriesExists(bytes32 id);
    // --- series operations ---
    error UnknownSeries(bytes32 id);
    error SeriesIndexOutOfRange(uint256 index, uint256 count);
    error AlreadySettled(bytes32 id, uint8 state);
    error NotSettled(bytes32 id);
    error ZeroAmount();
    error CollateralShortfall(uint256 required, uint256 received);
    error SettlementTooEarly(bytes32 id, uint256 opensAt);
    error SettlementNotFinal(bytes32 id, bytes reason);
    error EpochOutsideSeries(bytes32 id, uint256 epoch, uint256 epochTime, uint256 createdAt, uint256 expiry);
    error BarrierNotReached(bytes32 id, uint256 value, uint256 floor, uint256 cap);
    error LedgerExceeded(bytes32 id, uint256 paidOut, uint256 deposited);

    /// @param oracle_ The DifficultyOracle (any network mode) whose final values settle series.
    /// @param allowlist The only collateral tokens series may use, forever; each
    ///        token's `decimals()` (at most 18) is read once, here.
    constructor(address oracle_, address[] memory allowlist) {
        if (oracle_.code.length == 0) revert OracleNotContract(oracle_);
        if (allowlist.length == 0) revert NoCollateral();
        oracle = DifficultyOracle(oracle_);
        maxDays = 14 * DifficultyOracle(oracle_).MAX_WINDOW_EPOCHS();
        for (uint256 i = 0; i < allowlist.length; i++) {
            address token = allowlist[i];
            if (token == address(0)) revert ZeroAddress();
            if (_decimalsPlusOne[token] != 0) revert DuplicateCollateral(token);
            uint8 decimals = IERC20Metadata(token).decimals();
            if (decimals > MAX_COLLATERAL_DECIMALS) revert CollateralDecimalsUnsupported(token, decimals);
            _decimalsPlusOne[token] = uint256(decimals) + 1;
            _collaterals.push(token);
        }
    }

    // ------------------------------------------------------------------ series

    /// @notice The id of series (N, Floor, Cap, expiry, collateral), whether or not it exists.
    function seriesId(uint256 nDays, uint256 floor, uint256 cap, uint256 expiry, address collateral)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(nDays, floor, cap, expiry, collateral));
    }

    /// @notice Create a series and deploy its long and short tokens, named canonically.
    /// @param nDays N of BME_N: a positive multiple of 14 up to `maxDays`.
    /// @param floor Floor, 10^18 fixed point of BTC per TH/s per day, a multiple of 10^4 (0 is
    ///        allowed: the long then pays clamp(BME) x 10^6).
    /// @param cap Cap, same units, above Floor, below 2^128, Cap - Floor below 2^96.
    /// @param expiry 02:00 UTC of the expiry day (Unix seconds), in the future, before 2100.
    /// @param collateral An allowlisted token.
    function createSeries(uint256 nDays, uint256 floor, uint256 cap, uint256 expiry, address collateral)
        external
        returns (bytes32 id)
    {
        id = seriesId(nDays, floor, cap, expiry, collateral);
        if (_series[id].state != STATE_NONE) revert SeriesExists(id);
        uint256 plusOne = _decimalsPlusOne[collateral];
        if (plusOne == 0) revert CollateralNotAllowed(collateral);
        if (nDays == 0 || nDays % 14 != 0 || nDays > maxDays) revert BadWindow(nDays, maxDays);
        _checkStrikes(floor, cap, uint8(plusOne - 1));
        if (expiry % 1 days != EXPIRY_TIME_OF_DAY || expiry >= EXPIRY_LIMIT) revert BadExpiry(expiry);
        if (expiry <= block.timestamp) revert ExpiryPassed(expiry, block.timestamp);

        Series storage s = _series[id];
        s.collateral = collateral;
        s.expiry = uint64(expiry);
        s.nDays = uint16(nDays);
        s.state = STATE_OPEN;
        s.decimals = uint8(plusOne - 1);
        s.width = uint96(cap - floor);
        s.floor = uint128(floor);
        s.cap = uint128(cap);
        s.createdAt = uint64(block.timestamp);
        _seriesIds.push(id);
        _deployTokens(id, s);
    }

    /// The long and short tokens, named from the stored fields; emits `SeriesCreated`.
    function _deployTokens(bytes32 id, Series storage s) private {
        string memory name = BmeNames.seriesName(s.nDays, s.floor, s.cap, s.expiry);
        BmePositionToken longToken = new BmePositionToken(string.concat("L", name), id);
        BmePositionToken shortToken = new BmePositionToken(string.concat("S", name), id);
        s.longToken = longToken;
        s.shortToken = shortToken;
        emit SeriesCreated(
            id, address(longToken), address(shortToken), name, s.nDays, s.floor, s.cap, s.expiry, s.collateral
        );
    }

    function _checkStrikes(uint256 floor, uint256 cap, uint8 decimals) private pure {
        if (floor >= cap) revert FloorNotBelowCap(floor, cap);
        if (floor % STRIKE_STEP != 0) revert StrikeTooPrecise(floor);
        if (cap % STRIKE_STEP != 0) revert StrikeTooPrecise(cap);
        if (cap > type(uint128).max) revert StrikeTooLarge(cap, type(uint128).max);
        uint256 width = cap - floor;
        if (width > type(uint96).max) revert RangeTooWide(width, type(uint96).max);
        if ((width * 10 ** (uint256(decimals) + 6)) % ONE != 0) revert PairCollateralNotIntegral(width, decimals);
    }

    // ------------------------------------------------------------------ mint and redeem

    /// @notice Mint `amount` long and `amount` short tokens (18 decimals: 10^18 = one pair)
    ///         for ceil(amount x pairCollateral(id) / 10^18) collateral, taken from the caller
    ///         (approve the market first). Open until the series settles, expiry included.
    /// @return collateralIn What the market received (balance delta); reverts
    ///         `CollateralShortfall` if it is less than required.
    function mint(bytes32 id, uint256 amount) external nonReentrant returns (uint256 collateralIn) {
        Series storage s = _series[id];
        address collateral = s.collateral;
        _requireOpen(id, s.state);
        if (amount == 0) revert ZeroAmount();
        uint256 required = Math.mulDiv(amount, _pairCollateral(s.width, s.decimals), ONE, Math.Rounding.Ceil);
        uint256 before = IERC20(collateral).balanceOf(address(this));
        IERC20(collateral).safeTransferFrom(msg.sender, address(this), required);
        collateralIn = IERC20(collateral).balanceOf(address(this)) - before;
        if (collateralIn < required) revert CollateralShortfall(required, collateralIn);
        uint256 deposited = uint256(s.deposited) + collateralIn;
        if (deposited > type(uint128).max) revert LedgerExceeded(id, s.paidOut, deposited);
        s.deposited = uint128(deposited);
        s.longToken.mint(msg.sender, amount);
        s.shortToken.mint(msg.sender, amount);
        emit Minted(id, msg.sender, amount, collateralIn);
    }

    /// @notice Burn `amount` long and `amount` short tokens of the caller for
    ///         floor(amount x pairCollateral(id) / 10^18) collateral. Only before settlement.
    function redeem(bytes32 id, uint256 amount) external nonReentrant returns (uint256 collateralOut) {
        Series storage s = _series[id];
        _requireOpen(id, s.state);
        if (amount == 0) revert ZeroAmount();
        collateralOut = Math.mulDiv(amount, _pairCollateral(s.width, s.decimals), ONE);
        s.longToken.burn(msg.sender, amount);
        s.shortToken.burn(msg.sender, amount);
        emit Redeemed(id, msg.sender, amount, collateralOut);
        _payOut(id, s, collateralOut);
    }

    // ------------------------------------------------------------------ settlement

    /// @notice Settle at BME_N final at expiry: possible from expiry + 1 day, once the oracle's
    ///         `bmeAtFinal(N, expiry)` answers (the next retarget stored and out of its challenge
    ///         window); reverts `SettlementTooEarly` before the delay and `SettlementNotFinal`
    ///         (with the oracle's revert data) until then. From expiry + 30 days, if the oracle
    ///         still has no final value (paused, halted, no later epoch), the series settles in
    ///         fallback: long and short each claim half a pair's collateral.
    function settle(bytes32 id) external nonReentrant {
        Series storage s = _series[id];
        _requireOpen(id, s.state);
        uint256 expiry = s.expiry;
        if (block.timestamp < expiry + SETTLEMENT_DELAY) revert SettlementTooEarly(id, expiry + SETTLEMENT_DELAY);
        try oracle.bmeAtFinal(s.nDays, expiry) returns (uint256 value, uint256 epoch) {
            _settle(id, s, value, epoch, SETTLED_FINAL);
        } catch (bytes memory reason) {
            // Only the oracle's own "no final value" refusals open the fallback: an empty
            // reason (out of gas in the call) must not let a caller skip a real value.
            if (block.timestamp < expiry + FALLBACK_DELAY || !_isNoFinalValue(reason)) {
                revert SettlementNotFinal(id, reason);
            }
            uint256 half = uint256(s.width) / 2; // exact: the width is a multiple of 10^4
            s.state = STATE_FALLBACK;
            s.longShare = uint96(half);
            uint256 midpoint = uint256(s.floor) + half;
            s.settlementValue = uint128(midpoint);
            emit Settled(id, midpoint, 0, SETTLED_FALLBACK);
        }
    }

    /// @notice Settle before expiry at a barrier: `bmeFinal(N, epoch)` at or below Floor or at
    ///         or above Cap, for an epoch whose retarget header time lies strictly between the
    ///         series' creation (EVM time) and its expiry. Anyone may call it.
    function settleEarly(bytes32 id, uint256 epoch) external nonReentrant {
        Series storage s = _series[id];
        _requireOpen(id, s.state);
        (,, uint32 epochTime) = oracle.retarget(epoch); // EpochMissing if not stored
        uint256 createdAt = s.createdAt;
        uint256 expiry = s.expiry;
        if (epochTime <= createdAt || epochTime >= expiry) {
            revert EpochOutsideSeries(id, epoch, epochTime, createdAt, expiry);
        }
        uint256 value;
        try oracle.bmeFinal(s.nDays, epoch) returns (uint256 v) {
            value = v;
        } catch (bytes memory reason) {
            revert SettlementNotFinal(id, reason);
        }
        if (value > s.floor && value < s.cap) revert BarrierNotReached(id, value, s.floor, s.cap);
        _settle(id, s, value, epoch, SETTLED_EARLY);
    }

    function _settle(bytes32 id, Series storage s, uint256 value, uint256 epoch, uint8 kind) private {
        uint256 floor = s.floor;
        uint256 cap = s.cap;
        uint256 clamped = value < floor ? floor : value > cap ? cap : value;
        s.state = STATE_SETTLED;
        s.longShare = uint96(clamped - floor);
        // The oracle's values stay below 2^128 (regtest's powLimit gives about 2.2e36);
        // saturating keeps settlement possible whatever it answers.
        s.settlementValue = value > type(uint128).max ? type(uint128).max : uint128(value);
        s.settlementEpoch = uint64(epoch);
        emit Settled(id, value, epoch, kind);
    }

    /// The oracle's refusals that mean "no final value at this time": paused, no epoch after
    /// it, not final yet, or the window's epochs not stored (e.g. after a re-anchor).
    function _isNoFinalValue(bytes memory reason) private pure returns (bool) {
        if (reason.length < 4) return false;
        bytes4 selector = bytes4(reason);
        return selector == DifficultyOracle.EnforcedPause.selector
            || selector == DifficultyOracle.NoEpochAfter.selector
            || selector == DifficultyOracle.EpochNotFinal.selector
            || selector == DifficultyOracle.NoEpochAtTime.selector
            || selector == DifficultyOracle.EpochMissing.selector;
    }

    // ------------------------------------------------------------------ claim

    /// @notice After settlement, burn `longAmount` long and `shortAmount` short tokens of the
    ///         caller and pay floor(long x (clamp - Floor) x 10^6 BTC) + floor(short x
    ///         (Cap - clamp) x 10^6 BTC), each term rounded down to the collateral's base unit
    ///         (amounts in 10^18 token units). A second claim of burnt tokens reverts with the
    ///         token's `ERC20InsufficientBalance`.
    function claim(bytes32 id, uint256 longAmount, uint256 shortAmount)
        external
        nonReentrant
        returns (uint256 paid)
    {
        Series storage s = _series[id];
        uint8 state = s.state;
        if (state != STATE_SETTLED && state != STATE_FALLBACK) {
            if (state == STATE_NONE) revert UnknownSeries(id);
            revert NotSettled(id);
        }
        if (longAmount == 0 && shortAmount == 0) revert ZeroAmount();
        uint256 unit = 10 ** (uint256(s.decimals) + 6);
        uint256 longShare = s.longShare;
        if (longAmount != 0) {
            paid = Math.mulDiv(longAmount, longShare * unit, ONE * ONE);
            s.longToken.burn(msg.sender, longAmount);
        }
        if (shortAmount != 0) {
            paid += Math.mulDiv(shortAmount, (uint256(s.width) - longShare) * unit, ONE * ONE);
            s.shortToken.burn(msg.sender, shortAmount);
        }
        emit Claimed(id, msg.sender, longAmount, shortAmount, paid);
        _payOut(id, s, paid);
    }

    /// Ledger first (paidOut <= deposited), then the transfer: checks-effects-interactions.
    function _payOut(bytes32 id, Series storage s, uint256 amount) private {
        uint256 paidOut = uint256(s.paidOut) + amount;
        uint256 deposited = s.deposited;
        if (paidOut > deposited) revert LedgerExceeded(id, paidOut, deposited);
        s.paidOut = uint128(paidOut);
        if (amount != 0) IERC20(s.collateral).safeTransfer(msg.sender, amount);
    }

    function _requireOpen(bytes32 id, uint8 state) private pure {
        if (state != STATE_OPEN) {
            if (state == STATE_NONE) revert UnknownSeries(id);
            revert AlreadySettled(id, state);
        }
    }

    /// Collateral base units per 10^18 pairs: width x 10^6 x 10^decimals / 10^18 (exact).
    function _pairCollateral(uint256 width, uint8 decimals) private pure returns (uint256) {
        return width * 10 ** (uint256(decimals) + 6) / ONE;
    }

    // ------------------------------------------------------------------ views

    /// @notice Collateral, in the collateral's base units, of 10^18 pairs (one long and one
    ///         short token): (Cap - Floor) x 10^6 x 10^decimals / 10^18.
    function pairCollateral(bytes32 id) external view returns (uint256) {
        Series storage s = _series[id];
        if (s.state == STATE_NONE) revert UnknownSeries(id);
        return _pairCollateral(s.width, s.decimals);
    }

    /// @notice Everything about a series, including its canonical name.
    function seriesInfo(bytes32 id) external view returns (SeriesInfo memory info) {
        Series storage s = _series[id];
        if (s.state == STATE_NONE) revert UnknownSeries(id);
        info.nDays = s.nDays;
        info.floor = s.floor;
        info.cap = s.cap;
        info.expiry = s.expiry;
        info.createdAt = s.createdAt;
        info.collateral = s.collateral;
        info.longToken = address(s.longToken);
        info.shortToken = address(s.shortToken);
        info.state = s.state;
        info.settlementValue = s.settlementValue;
        info.settlementEpoch = s.settlementEpoch;
        info.deposited = s.deposited;
        info.paidOut = s.paidOut;
        info.name = BmeNames.seriesName(s.nDays, s.floor, s.cap, s.expiry);
    }

    /// @notice How many series exist.
    function seriesCount() external view returns (uint256) {
        return _seriesIds.length;
    }

    /// @notice The id of the `index`-th series created (0-based).
    function seriesIdAt(uint256 index) external view returns (bytes32) {
        if (index >= _seriesIds.length) revert SeriesIndexOutOfRange(index, _seriesIds.length);
        return _seriesIds[index];
    }

    /// @notice Whether `token` may be a series' collateral (fixed at deployment).
    function isAllowedCollateral(address token) external view returns (bool) {
        return _decimalsPlusOne[token] != 0;
    }

    /// @notice The collateral allowlist, in deployment order.
    function collateralAllowlist() external view returns (address[] memory) {
        return _collaterals;
    }
}
