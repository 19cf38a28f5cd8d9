// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DifficultyOracle} from "./DifficultyOracle.sol";

/// @title BmeAggregator
/// @notice Read-only adapter that shows BME_N of a DifficultyOracle in the shape of Chainlink's
///         AggregatorV3Interface, so consumers that already read price feeds need no new code.
///         It serves the latest known value; settlement should read the oracle's `bmeAtFinal`.
/// @dev    roundId = Bitcoin epoch; answer = BME_N(epoch) in 10^18 fixed point;
///         answeredInRound = roundId. For the latest round, `updatedAt` is the EVM block time
///         at which the oracle stored that epoch (so `block.timestamp - updatedAt` never
///         underflows) and `startedAt` the retarget block's Bitcoin header time. For past rounds
///         both are the Bitcoin header time (the oracle keeps the storing time of the latest
///         epoch only); a header time is at most 2 hours ahead of the EVM clock when stored.
///         Every read reverts while the oracle is paused; missing epochs revert with the
///         oracle's own errors.
contract BmeAggregator {
    DifficultyOracle public immutable oracle;
    uint256 public immutable nDays;
    uint256 public constant version = 2;

    error AnswerOverflow(uint256 value);
    error InvalidWindow(uint256 nDays);
    error OraclePaused();

    constructor(DifficultyOracle oracle_, uint256 nDays_) {
        if (nDays_ == 0 || nDays_ % 14 != 0) revert InvalidWindow(nDays_);
        oracle = oracle_;
        nDays = nDays_;
    }

    function decimals() external pure returns (uint8) {
        return 18;
    }

    function description() external view returns (string memory) {
        return string.concat("BME", _toString(nDays), " / BTC per TH/s per day");
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        if (oracle.paused()) revert OraclePaused();
        uint256 value = oracle.bme(nDays, roundId);
        if (value > uint256(type(int256).max)) revert AnswerOverflow(value);
        (,, uint32 time) = oracle.retarget(roundId);
        updatedAt = roundId == oracle.latestEpoch() ? oracle.latestStoredAt() : time;
        return (roundId, int256(value), time, updatedAt, roundId);
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(uint80(oracle.latestEpoch()));
    }

    function _toString(uint256 value) private pure returns (string memory) {
        if (value == 0) return "0";
        uint256 digits;
        for (uint256 v = value; v != 0; v /= 10) digits++;
        bytes memory buffer = new bytes(digits);
        while (value != 0) {
            digits -= 1;
            buffer[digits] = bytes1(uint8(48 + (value % 10)));
            value /= 10;
        }
        return string(buffer);
    }
}
