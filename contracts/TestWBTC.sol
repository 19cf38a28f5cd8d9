// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestWBTC
/// @notice DEV AND TEST ONLY: a WBTC-like collateral token with 8 decimals (base unit = one
///         satoshi) and a PUBLIC, UNRESTRICTED `mint`. Anyone can create any amount, so it is
///         worthless: never allowlist it in a `BmeMarket` on a real chain. `bme-oracle dev` and
///         the tests use it as the market's collateral.
contract TestWBTC is ERC20 {
    constructor() ERC20("Test Wrapped BTC (dev only)", "tWBTC") {}

    /// @notice 8, like WBTC: one base unit is one satoshi.
    function decimals() public pure override returns (uint8) {
        return 8;
    }

    /// @notice Create `amount` satoshi units for `to`. Anyone may call it (dev and tests only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
