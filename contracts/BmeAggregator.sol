// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {DifficultyOracle} from "./DifficultyOracle.sol";

/// @title BmeAggregator
/// @notice Read-only adapter that shows BME_N of a DifficultyOracle in the shape of Chainlink's
///         AggregatorV3Interface, so consumers that already read price feeds need no new code.
/// @dev    roundId = Bitcoin epoch; answer = BME_N(epoch) in 10^18 fixed point; startedAt and
///         updatedAt = the retarget block's header time (the moment the value became final);
///         answeredInRound = roundId. Missing epochs revert with the oracle's own errors.
contract BmeAggregator {
    DifficultyOracle public immutable oracle;
    uint256 public immutable nDays;
    uint256 public constant version = 1;

    error AnswerOverflow(uint256 value);
    error InvalidWindow(uint256 nDays);

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
        uint256 value = oracle.bme(nDays, roundId);
        if (value > uint256(type(int256).max)) revert AnswerOverflow(value);
        (,, uint32 time) = oracle.retarget(roundId);
        return (roundId, int256(value), time, time, roundId);
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
