// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title ReentrantToken
/// @notice TEST ONLY (compiled by the tests, never shipped): an 8-decimal ERC-20 that, once
///         armed, calls back into a target (the market) in the middle of its next transfer,
///         with calldata the test chose (e.g. `redeem` during `mint`, `claim` during `claim`),
///         and bubbles the callback's revert. The market's reentrancy guard must refuse it.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public callback;

    constructor() ERC20("Reentrant", "REENTER") {}

    function decimals() public pure override returns (uint8) {
        return 8;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Call `target_` with `callback_` during the next transfer (once).
    function arm(address target_, bytes calldata callback_) external {
        target = target_;
        callback = callback_;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        address armed = target;
        if (armed != address(0) && from != address(0) && to != address(0)) {
            target = address(0);
            (bool ok, bytes memory reason) = armed.call(callback);
            if (!ok) {
                assembly ("memory-safe") {
                    revert(add(reason, 32), mload(reason))
                }
            }
        }
    }
}
