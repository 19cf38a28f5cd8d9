// SPDX-License-Identifier: MIT
// Generated from the BmeAggregator artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed BmeAggregator (constructor aside).
pragma solidity ^0.8.4;

import {IDifficultyOracle} from "./IDifficultyOracle.sol";

/// @title IBmeAggregator
/// @notice Read-only adapter that shows BME_N of a DifficultyOracle in the shape of Chainlink's
///         AggregatorV3Interface, so consumers that already read price feeds need no new code. It
///         serves the latest known value; settlement should read the oracle's `bmeAtFinal`.
/// @dev roundId = Bitcoin epoch; answer = BME_N(epoch) in 10^18 fixed point; answeredInRound =
///      roundId. For the latest round, `updatedAt` is the EVM block time at which the oracle stored
///      that epoch (so `block.timestamp - updatedAt` never underflows) and `startedAt` the retarget
///      block's Bitcoin header time. For past rounds both are the Bitcoin header time (the oracle
///      keeps the storing time of the latest epoch only); a header time is at most 2 hours ahead of
///      the EVM clock when stored. Every read reverts while the oracle is paused; missing epochs
///      revert with the oracle's own errors.
interface IBmeAggregator {
    error AnswerOverflow(uint256 value);
    error InvalidWindow(uint256 nDays);
    error OraclePaused();

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
