// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Strings} from "@openzeppelin/contracts/utils/Strings.sol";

/// @title BmeNames
/// @notice The canonical names of BME position-token series, computed on chain so that a token's
///         name can never disagree with the series it belongs to:
///         `<L|S>BME<N>-<Floor>-<Cap>-<YYMMDD>` (tokens) and `BME<N>-<Floor>-<Cap>-<YYMMDD>`
///         (series), e.g. `LBME84-4.85-5.4-261215`.
/// @dev    Floor and Cap are printed in units of 1E-7 BTC per TH/s per day (the seed's unit)
///         from the 10^18 fixed point used on chain: the integer part, then, if non-zero, a
///         "." and up to 7 decimals without trailing zeros (so 5.40 prints as `5.4`, 250 as
///         `250`). One 1E-7 unit is 10^11 on chain, one 7th decimal 10^4: a strike that is
///         not a multiple of 10^4 has no name (`BmeMarket` refuses it). The date is the UTC
///         calendar day of the expiry (expiry is 02:00 UTC on that day), two-digit year.
///         All functions are internal: the library is inlined into `BmeMarket`.
library BmeNames {
    /// 10^18 fixed point per 1E-7 BTC per TH/s per day.
    uint256 internal constant UNIT = 1e11;
    /// 10^18 fixed point per 7th decimal of the 1E-7 unit: every strike is a multiple of it.
    uint256 internal constant STRIKE_STEP = 1e4;

    /// @notice `BME<N>-<Floor>-<Cap>-<YYMMDD>`.
    function seriesName(uint256 nDays, uint256 floor, uint256 cap, uint256 expiry)
        internal
        pure
        returns (string memory)
    {
        return string.concat(
            "BME", Strings.toString(nDays), "-", strikeText(floor), "-", strikeText(cap), "-", dateText(expiry)
        );
    }

    /// @notice A strike (10^18 fixed point, a multiple of 10^4) in units of 1E-7 with at most
    ///         7 decimals and no trailing zeros: 4.85E-07 BTC (485_000_000_000) -> "4.85".
    function strikeText(uint256 strike) internal pure returns (string memory) {
        string memory whole = Strings.toString(strike / UNIT);
        uint256 fraction = (strike % UNIT) / STRIKE_STEP; // 7 digits
        if (fraction == 0) return whole;
        uint256 digits = 7;
        while (fraction % 10 == 0) {
            fraction /= 10;
            digits--;
        }
        bytes memory text = new bytes(digits);
        for (uint256 i = digits; i > 0; i--) {
            text[i - 1] = bytes1(uint8(48 + fraction % 10));
            fraction /= 10;
        }
        return string.concat(whole, ".", string(text));
    }

    /// @notice YYMMDD of the UTC day containing `timestamp`.
    function dateText(uint256 timestamp) internal pure returns (string memory) {
        (uint256 year, uint256 month, uint256 day) = civilFromDays(timestamp / 1 days);
        bytes memory text = new bytes(6);
        _twoDigits(text, 0, year % 100);
        _twoDigits(text, 2, month);
        _twoDigits(text, 4, day);
        return string(text);
    }

    /// @notice (year, month 1-12, day 1-31) of a day count since 1970-01-01, proleptic
    ///         Gregorian: Howard Hinnant's `civil_from_days`
    ///         (https://howardhinnant.github.io/date_algorithms.html#civil_from_days), for
    ///         non-negative day counts.
    function civilFromDays(uint256 daysSinceEpoch)
        internal
        pure
        returns (uint256 year, uint256 month, uint256 day)
    {
        uint256 z = daysSinceEpoch + 719_468; // days since 0000-03-01
        uint256 era = z / 146_097;
        uint256 doe = z - era * 146_097; // [0, 146096]
        uint256 yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
        uint256 doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
        uint256 mp = (5 * doy + 2) / 153; // [0, 11], March = 0
        day = doy - (153 * mp + 2) / 5 + 1;
        month = mp < 10 ? mp + 3 : mp - 9;
        year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    }

    function _twoDigits(bytes memory text, uint256 at, uint256 value) private pure {
        text[at] = bytes1(uint8(48 + value / 10));
        text[at + 1] = bytes1(uint8(48 + value % 10));
    }
}
