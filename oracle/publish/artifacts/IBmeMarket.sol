// SPDX-License-Identifier: MIT
// Generated from the BmeMarket artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed BmeMarket (constructor aside).
pragma solidity ^0.8.4;

import {IDifficultyOracle} from "./IDifficultyOracle.sol";

/// @title IBmeMarket
/// @notice Fully collateralised BME position tokens (the seed's contract stack): lock (Cap - Floor)
///         x 10^6 BTC of collateral per pair to mint one long and one short ERC-20 of a series,
///         trade them anywhere, and claim after settlement: a long receives (clamp(BME) - Floor) x
///         10^6, a short (Cap - clamp(BME)) x 10^6, BME clamped to [Floor, Cap]. Nobody owns or
///         administers the market.
/// @dev Series. A series is (N, Floor, Cap, expiry, collateral token); its id is
///      keccak256(abi.encode(N, Floor, Cap, expiry, collateral)) and its canonical name
///      `BME<N>-<Floor>-<Cap>-<YYMMDD>` (tokens `L...`/`S...`) is computed on chain (`BmeNames`).
///      Anyone can create a series. N is a positive multiple of 14 up to the oracle's window limit
///      (14 x MAX_WINDOW_EPOCHS days). Units. Index values and strikes are 10^18 fixed point of BTC
///      per TH/s per day, like the oracle's `bme` (4.85E-07 BTC = 485_000_000_000). Names carry
///      Floor and Cap in units of 1E-7 BTC with at most 7 decimals, so a strike must be a multiple
///      of 10^4 (`StrikeTooPrecise`). Multiplier = 10^6. Position tokens have 18 decimals: 10^18
///      base units are one token. Collateral amounts are in the collateral token's base units: a
///      whole pair locks (Cap - Floor) x 10^6 x 10^decimals / 10^18, for an 8-decimal WBTC-like
///      token (Cap - Floor) / 10^4 satoshi (4.85-5.4: 0.055 BTC), an integer for every valid
///      strike. A collateral with fewer decimals is accepted only for series whose pair collateral
///      is still an integer (`PairCollateralNotIntegral`). Collateral. The allowlist and each
///      token's decimals are fixed at deployment. Mints are accounted by the market's balance
///      delta: a fee-on-transfer token that delivers less than required reverts
///      `CollateralShortfall`, so it cannot make the market insolvent. Payouts use SafeERC20
///      (transfer results are checked). Rounding and dust. Mint takes ceil(amount x pairCollateral
///      / 10^18); redeem pays floor(amount x pairCollateral / 10^18); a claim pays floor(long x
///      (clamp - Floor) x 10^(decimals+6) / 10^36) + floor(short x (Cap - clamp) x 10^(decimals+6)
///      / 10^36). So a long plus a short of the same amount pay the collateral their mint took
///      minus at most 2 base units (one from the mint's ceiling, one from splitting), which stay in
///      the market. A per-series ledger (`deposited`: collateral received by mints; `paidOut`: paid
///      by redeems and claims) enforces paidOut <= deposited on every payout (`LedgerExceeded`,
///      unreachable by the arithmetic above: it is the proof). Settlement. `settle` opens
///      SETTLEMENT_DELAY (1 day) after expiry (02:00 UTC of the named day) and reads the oracle's
///      `bmeAtFinal(N, expiry)`: BME_N of the latest epoch whose retarget time is <= expiry, which
///      is final only once the next retarget (0-14 days after expiry) is stored and out of its
///      challenge window; until then `settle` reverts `SettlementNotFinal` carrying the oracle's
///      reason. Early: `settleEarly`, by anyone, settles at `bmeFinal(N, e)` when that value is at
///      or beyond Floor or Cap for an epoch e whose retarget time lies after the series' creation
///      and before expiry (whichever qualifying epoch is submitted first; a series whose index
///      touched both barriers pays by the one settled first). Fallback: if no final value exists
///      FALLBACK_DELAY (30 days) after expiry (oracle paused or halted), `settle` settles the
///      series at the midpoint: each long and each short token claims half a pair's collateral,
///      rounded down. The index's halving rule. BME_N uses, for each epoch, K = 86400 x 10^12 /
///      2^32 x the block-weighted mean subsidy of the epoch's 2016 blocks, so an epoch containing a
///      halving counts both subsidies by their blocks. The index authors' historical series used
///      the subsidy of each epoch's first block; the two differ only in windows that contain a
///      halving epoch (by up to 42%). Storage: each series packs into six slots so that a mint
///      reads four and a claim four (plus one write each): the width Cap - Floor (< 2^96) sits
///      beside the long token and the settled long share clamp(BME) - Floor beside the short token.
interface IBmeMarket {
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

    event Claimed(
        bytes32 indexed id,
        address indexed account,
        uint256 longAmount,
        uint256 shortAmount,
        uint256 paid
    );

    event Minted(bytes32 indexed id, address indexed account, uint256 amount, uint256 collateralIn);

    event Redeemed(
        bytes32 indexed id,
        address indexed account,
        uint256 amount,
        uint256 collateralOut
    );

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

    /// @notice `kind`: 1 final (`bmeAtFinal` at expiry), 2 early (a barrier epoch), 3 fallback.
    event Settled(bytes32 indexed id, uint256 value, uint256 epoch, uint8 kind);

    error AlreadySettled(bytes32 id, uint8 state);
    error BadExpiry(uint256 expiry);
    error BadWindow(uint256 nDays, uint256 maxDays);
    error BarrierNotReached(bytes32 id, uint256 value, uint256 floor, uint256 cap);
    error CollateralDecimalsUnsupported(address collateral, uint8 decimals);
    error CollateralNotAllowed(address collateral);
    error CollateralShortfall(uint256 required, uint256 received);
    error DuplicateCollateral(address collateral);

    error EpochOutsideSeries(
        bytes32 id,
        uint256 epoch,
        uint256 epochTime,
        uint256 createdAt,
        uint256 expiry
    );

    error ExpiryPassed(uint256 expiry, uint256 now_);
    error FloorNotBelowCap(uint256 floor, uint256 cap);
    error LedgerExceeded(bytes32 id, uint256 paidOut, uint256 deposited);
    error NoCollateral();
    error NotSettled(bytes32 id);
    error OracleNotContract(address oracle);
    error PairCollateralNotIntegral(uint256 width, uint8 decimals);
    error RangeTooWide(uint256 width, uint256 maximum);

    /// @dev Unauthorized reentrant call.
    error ReentrancyGuardReentrantCall();

    /// @dev An operation with an ERC-20 token failed.
    error SafeERC20FailedOperation(address token);

    error SeriesExists(bytes32 id);
    error SeriesIndexOutOfRange(uint256 index, uint256 count);
    error SettlementNotFinal(bytes32 id, bytes reason);
    error SettlementTooEarly(bytes32 id, uint256 opensAt);
    error StrikeTooLarge(uint256 strike, uint256 maximum);
    error StrikeTooPrecise(uint256 strike);
    error UnknownSeries(bytes32 id);
    error ZeroAddress();
    error ZeroAmount();

    /// @notice Expiry is 02:00 UTC of the named day.
    function EXPIRY_TIME_OF_DAY() external view returns (uint256);

    /// @notice Without a final oracle value this long after expiry, the series settles at the
    ///         midpoint.
    function FALLBACK_DELAY() external view returns (uint256);

    /// @notice Collateral tokens with more decimals are refused at deployment.
    function MAX_COLLATERAL_DECIMALS() external view returns (uint8);

    /// @notice The seed's Multiplier: one pair locks (Cap - Floor) x 10^6 BTC.
    function MULTIPLIER() external view returns (uint256);

    function SETTLED_EARLY() external view returns (uint8);
    function SETTLED_FALLBACK() external view returns (uint8);
    function SETTLED_FINAL() external view returns (uint8);

    /// @notice `settle` opens this long after expiry (the seed's rule).
    function SETTLEMENT_DELAY() external view returns (uint256);

    function STATE_FALLBACK() external view returns (uint8);
    function STATE_NONE() external view returns (uint8);
    function STATE_OPEN() external view returns (uint8);
    function STATE_SETTLED() external view returns (uint8);

    /// @notice Strikes are multiples of this (the 7th decimal of the 1E-7 BTC unit).
    function STRIKE_STEP() external view returns (uint256);

    /// @notice After settlement, burn `longAmount` long and `shortAmount` short tokens of the
    ///         caller and pay floor(long x (clamp - Floor) x 10^6 BTC) + floor(short x (Cap -
    ///         clamp) x 10^6 BTC), each term rounded down to the collateral's base unit (amounts in
    ///         10^18 token units). A second claim of burnt tokens reverts with the token's
    ///         `ERC20InsufficientBalance`.
    function claim(bytes32 id, uint256 longAmount, uint256 shortAmount)
        external
        returns (uint256 paid);

    /// @notice The collateral allowlist, in deployment order.
    function collateralAllowlist() external view returns (address[] memory);

    /// @notice Create a series and deploy its long and short tokens, named canonically.
    /// @param nDays N of BME_N: a positive multiple of 14 up to `maxDays`.
    /// @param floor Floor, 10^18 fixed point of BTC per TH/s per day, a multiple of 10^4 (0 is
    ///        allowed: the long then pays clamp(BME) x 10^6).
    /// @param cap Cap, same units, above Floor, below 2^128, Cap - Floor below 2^96.
    /// @param expiry 02:00 UTC of the expiry day (Unix seconds), in the future, before 2100.
    /// @param collateral An allowlisted token.
    function createSeries(
        uint256 nDays,
        uint256 floor,
        uint256 cap,
        uint256 expiry,
        address collateral
    )
        external
        returns (bytes32 id);

    /// @notice Whether `token` may be a series' collateral (fixed at deployment).
    function isAllowedCollateral(address token) external view returns (bool);

    /// @notice The largest N the oracle answers (14 x its MAX_WINDOW_EPOCHS), read at deployment.
    function maxDays() external view returns (uint256);

    /// @notice Mint `amount` long and `amount` short tokens (18 decimals: 10^18 = one pair) for
    ///         ceil(amount x pairCollateral(id) / 10^18) collateral, taken from the caller (approve
    ///         the market first). Open until the series settles, expiry included.
    /// @return collateralIn What the market received (balance delta); reverts `CollateralShortfall`
    ///         if it is less than required.
    function mint(bytes32 id, uint256 amount) external returns (uint256 collateralIn);

    /// @notice The DifficultyOracle that settles every series.
    function oracle() external view returns (IDifficultyOracle);

    /// @notice Collateral, in the collateral's base units, of 10^18 pairs (one long and one short
    ///         token): (Cap - Floor) x 10^6 x 10^decimals / 10^18.
    function pairCollateral(bytes32 id) external view returns (uint256);

    /// @notice Burn `amount` long and `amount` short tokens of the caller for floor(amount x
    ///         pairCollateral(id) / 10^18) collateral. Only before settlement.
    function redeem(bytes32 id, uint256 amount) external returns (uint256 collateralOut);

    /// @notice How many series exist.
    function seriesCount() external view returns (uint256);

    /// @notice The id of series (N, Floor, Cap, expiry, collateral), whether or not it exists.
    function seriesId(uint256 nDays, uint256 floor, uint256 cap, uint256 expiry, address collateral)
        external
        pure
        returns (bytes32);

    /// @notice The id of the `index`-th series created (0-based).
    function seriesIdAt(uint256 index) external view returns (bytes32);

    /// @notice Everything about a series, including its canonical name.
    function seriesInfo(bytes32 id) external view returns (SeriesInfo memory info);

    /// @notice Settle at BME_N final at expiry: possible from expiry + 1 day, once the oracle's
    ///         `bmeAtFinal(N, expiry)` answers (the next retarget stored and out of its challenge
    ///         window); reverts `SettlementTooEarly` before the delay and `SettlementNotFinal`
    ///         (with the oracle's revert data) until then. From expiry + 30 days, if the oracle
    ///         still has no final value (paused, halted, no later epoch), the series settles in
    ///         fallback: long and short each claim half a pair's collateral.
    function settle(bytes32 id) external;

    /// @notice Settle before expiry at a barrier: `bmeFinal(N, epoch)` at or below Floor or at or
    ///         above Cap, for an epoch whose retarget header time lies strictly between the series'
    ///         creation (EVM time) and its expiry. Anyone may call it.
    function settleEarly(bytes32 id, uint256 epoch) external;
}
