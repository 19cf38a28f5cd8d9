// SPDX-License-Identifier: MIT
// Generated from the BmeAggregator artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed BmeAggregator (constructor aside).
pragma solidity ^0.8.4;

import {IDifficultyOracle} from "./IDifficultyOracle.sol";

/// @title IBmeAggregator
/// @notice Read-only adapter that shows BME_N of a DifficultyOracle in the shape of Chainlink's
///         AggregatorV3Interface, so consumers that already read price feeds need no new code.
/// @dev roundId = Bitcoin epoch; answer = BME_N(epoch) in 10^18 fixed point; startedAt and
///      updatedAt = the retarget block's header time (the moment the value became final);
///      answeredInRound = roundId. Missing epochs revert with the oracle's own errors.
interface IBmeAggregator {
    error AnswerOverflow(uint256 value);
    error InvalidWindow(uint256 nDays);

    function decimals() external pure returns (uint8);
    function description() external view returns (string memory);

    function getRoundData(uint80 roundId)
        external
        view
        returns (
            uint80,
            int256 answer,
            uint256 startedAt,
            uint256 updatedAt,
            uint80 answeredInRound
        );

    function latestRoundData()
        external
        view
        returns (
            uint80 roundId,
            int256 answer,
            uint256 startedAt,
            uint256 updatedAt,
            uint80 answeredInRound
        );

    function nDays() external view returns (uint256);
    function oracle() external view returns (IDifficultyOracle);
    function version() external view returns (uint256);
}
