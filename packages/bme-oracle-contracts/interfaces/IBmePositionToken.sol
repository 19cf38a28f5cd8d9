// SPDX-License-Identifier: MIT
// Generated from the BmePositionToken artifact (solc 0.8.28) by
// scripts/gen-interfaces of bme-oracle; do not edit. ABI-compatible with the
// deployed BmePositionToken (constructor aside).
pragma solidity ^0.8.4;

/// @title IBmePositionToken
/// @notice The long or the short side of one BME series of a `BmeMarket`: a plain OpenZeppelin
///         ERC-20 named (and symbolised) canonically, e.g. `LBME84-4.85-5.4-261215`. Only the
///         market that deployed it mints (against collateral) and burns (on redeem and claim).
/// @dev 18 decimals: 10^18 base units are one whole token, the seed's "1 token", so fractional
///      positions (the seed's hedge holds 0.0084 tokens) are exact. One long plus one short (a
///      pair) is backed by (Cap - Floor) x 10^6 BTC of collateral.
interface IBmePositionToken {
    /// @dev Emitted when the allowance of a `spender` for an `owner` is set by a call to {approve}.
    ///      `value` is the new allowance.
    event Approval(address indexed owner, address indexed spender, uint256 value);

    /// @dev Emitted when `value` tokens are moved from one account (`from`) to another (`to`). Note
    ///      that `value` may be zero.
    event Transfer(address indexed from, address indexed to, uint256 value);

    /// @dev Indicates a failure with the `spender`’s `allowance`. Used in transfers.
    /// @param spender Address that may be allowed to operate on tokens without being their owner.
    /// @param allowance Amount of tokens a `spender` is allowed to operate with.
    /// @param needed Minimum amount required to perform a transfer.
    error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed);

    /// @dev Indicates an error related to the current `balance` of a `sender`. Used in transfers.
    /// @param sender Address whose tokens are being transferred.
    /// @param balance Current balance for the interacting account.
    /// @param needed Minimum amount required to perform a transfer.
    error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed);

    /// @dev Indicates a failure with the `approver` of a token to be approved. Used in approvals.
    /// @param approver Address initiating an approval operation.
    error ERC20InvalidApprover(address approver);

    /// @dev Indicates a failure with the token `receiver`. Used in transfers.
    /// @param receiver Address to which tokens are being transferred.
    error ERC20InvalidReceiver(address receiver);

    /// @dev Indicates a failure with the token `sender`. Used in transfers.
    /// @param sender Address whose tokens are being transferred.
    error ERC20InvalidSender(address sender);

    /// @dev Indicates a failure with the `spender` to be approved. Used in approvals.
    /// @param spender Address that may be allowed to operate on tokens without being their owner.
    error ERC20InvalidSpender(address spender);

    error NotMarket(address caller);

    /// @dev Returns the remaining number of tokens that `spender` will be allowed to spend on
    ///      behalf of `owner` through {transferFrom}. This is zero by default. This value changes
    ///      when {approve} or {transferFrom} are called.
    function allowance(address owner, address spender) external view returns (uint256);

    /// @dev See {IERC20-approve}. NOTE: If `value` is the maximum `uint256`, the allowance is not
    ///      updated on `transferFrom`. This is semantically equivalent to an infinite approval.
    ///      Requirements: - `spender` cannot be the zero address.
    function approve(address spender, uint256 value) external returns (bool);

    /// @dev Returns the value of tokens owned by `account`.
    function balanceOf(address account) external view returns (uint256);

    /// @notice Destroy `amount` base units of `from` (the market, on redeem and claim, for the
    ///         holder who called it: no allowance is needed since only the market can burn).
    function burn(address from, uint256 amount) external;

    /// @dev Returns the number of decimals used to get its user representation. For example, if
    ///      `decimals` equals `2`, a balance of `505` tokens should be displayed to a user as
    ///      `5.05` (`505 / 10 ** 2`). Tokens usually opt for a value of 18, imitating the
    ///      relationship between Ether and Wei. This is the default value returned by this
    ///      function, unless it's overridden. NOTE: This information is only used for _display_
    ///      purposes: it in no way affects any of the arithmetic of the contract, including
    ///      {IERC20-balanceOf} and {IERC20-transfer}.
    function decimals() external view returns (uint8);

    /// @notice The market that deployed this token; the only minter and burner.
    function market() external view returns (address);

    /// @notice Create `amount` base units for `to` (the market, on mint).
    function mint(address to, uint256 amount) external;

    /// @dev Returns the name of the token.
    function name() external view returns (string memory);

    /// @notice The series id in the market (`BmeMarket.seriesId`).
    function seriesId() external view returns (bytes32);

    /// @dev Returns the symbol of the token, usually a shorter version of the name.
    function symbol() external view returns (string memory);

    /// @dev Returns the value of tokens in existence.
    function totalSupply() external view returns (uint256);

    /// @dev See {IERC20-transfer}. Requirements: - `to` cannot be the zero address. - the caller
    ///      must have a balance of at least `value`.
    function transfer(address to, uint256 value) external returns (bool);

    /// @dev See {IERC20-transferFrom}. Skips emitting an {Approval} event indicating an allowance
    ///      update. This is not required by the ERC. See
    ///      {xref-ERC20-_approve-address-address-uint256-bool-}[_approve]. NOTE: Does not update
    ///      the allowance if the current allowance is the maximum `uint256`. Requirements: - `from`
    ///      and `to` cannot be the zero address. - `from` must have a balance of at least `value`.
    ///      - the caller must have allowance for ``from``'s tokens of at least `value`.
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}
