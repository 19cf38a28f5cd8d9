// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FeeOnTransferToken
/// @notice TEST ONLY (compiled by the tests, never shipped): an 8-decimal ERC-20 that burns 1%
///         of every transfer, so the receiver gets less than the amount sent. The market must
///         account a mint by its balance delta and refuse it (`CollateralShortfall`).
contract FeeOnTransferToken is ERC20 {
    constructor() ERC20("Fee on transfer", "FEE") {}

    function decimals() public pure override returns (uint8) {
        return 8;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = value / 100;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
