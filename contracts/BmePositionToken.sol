// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title BmePositionToken
/// @notice The long or the short side of one BME series of a `BmeMarket`: a plain OpenZeppelin
///         ERC-20 named (and symbolised) canonically, e.g. `LBME84-4.85-5.4-261215`. Only the
///         market that deployed it mints (against collateral) and burns (on redeem and claim).
/// @dev    18 decimals: 10^18 base units are one whole token, the seed's "1 token", so
///         fractional positions (the seed's hedge holds 0.0084 tokens) are exact. One long plus
///         one short (a pair) is backed by (Cap - Floor) x 10^6 BTC of collateral.
contract BmePositionToken is ERC20 {
    /// The market that deployed this token; the only minter and burner.
    address public immutable market;
    /// The series id in the market (`BmeMarket.seriesId`).
    bytes32 public immutable seriesId;

    error NotMarket(address caller);

    /// @param name_ The canonical token name, also used as the symbol.
    /// @param seriesId_ The market's id of the series.
    constructor(string memory name_, bytes32 seriesId_) ERC20(name_, name_) {
        market = msg.sender;
        seriesId = seriesId_;
    }

    /// @notice Create `amount` base units for `to` (the market, on mint).
    function mint(address to, uint256 amount) external {
        if (msg.sender != market) revert NotMarket(msg.sender);
        _mint(to, amount);
    }

    /// @notice Destroy `amount` base units of `from` (the market, on redeem and claim, for the
    ///         holder who called it: no allowance is needed since only the market can burn).
    function burn(address from, uint256 amount) external {
        if (msg.sender != market) revert NotMarket(msg.sender);
        _burn(from, amount);
    }
}
