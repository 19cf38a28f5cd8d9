"""web3 bindings for BmeMarket, its position tokens and the dev/test collateral TestWBTC.

Where it sits: after the oracle stage. The oracle publishes BME_N; the market settles series
of position tokens against it. The CLI (``bme-oracle market``), the API and ``dev`` talk to
the market only through this module. Like ``oracle.publish.contract`` it loads the committed
artifacts (no compiler at run time), signs with a keystore account, simulates at the pending
block (anvil answers "latest" calls with a stale time) and turns every revert into
``ContractReverted`` naming the market's custom error; a ``SettlementNotFinal`` carries the
oracle's own refusal, decoded, in ``inner``.

Amounts are integers in on-chain units: strikes and index values 10^18 fixed point of BTC per
TH/s per day, position tokens 10^18 per token, collateral in its base units (satoshi for an
8-decimal token). Converting from what a user types is the caller's job (``oracle.index``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.logs import DISCARD

from oracle.errors import InputError, PublishError
from oracle.publish.contract import (
    ContractReverted,
    deployment_data,
    load_artifact,
    revert_from_exception,
    send_and_wait,
)
from oracle.publish.signing import KeystoreAccount

MARKET = "BmeMarket"
POSITION_TOKEN = "BmePositionToken"
TEST_WBTC = "TestWBTC"
#: 10^18 fixed point (index values, strikes) and 10^18 base units per position token.
ONE = 10**18
MULTIPLIER = 10**6
#: ``SeriesInfo.state`` and the ``Settled`` event's ``kind``, as the contract numbers them.
STATES = {0: "none", 1: "open", 2: "settled", 3: "fallback"}
SETTLEMENT_KINDS = {1: "final", 2: "early", 3: "fallback"}
#: Fee defaults for one-off market transactions: the tip, and the max fee as twice the
#: pending block's base fee plus the tip (enough for a few blocks of rising base fee).
DEFAULT_PRIORITY_FEE_WEI = 10**9


def series_id(*, n_days: int, floor: int, cap: int, expiry: int, collateral: str) -> bytes:
    """keccak256(abi.encode(N, Floor, Cap, expiry, collateral)): the contract's ``seriesId``."""
    encoded = abi_encode(
        ["uint256", "uint256", "uint256", "uint256", "address"],
        [n_days, floor, cap, expiry, to_checksum_address(collateral)],
    )
    return keccak(encoded)


def parse_series_id(value: str | bytes) -> bytes:
    """A 32-byte series id from bytes or ``0x``-hex; InputError otherwise."""
    if isinstance(value, bytes):
        raw = value
    else:
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise InputError(f"series id should be 32 bytes of hex, got {value!r}") from None
    if len(raw) != 32:
        raise InputError(f"series id should be 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One series as the contract reports it (integers in on-chain units)."""

    series_id: bytes
    n_days: int
    floor: int  # 10^18 fixed point, BTC per TH/s per day
    cap: int
    expiry: int  # Unix seconds, 02:00 UTC
    created_at: int  # EVM block time of createSeries
    collateral: str
    long_token: str
    short_token: str
    state: int  # 1 open, 2 settled, 3 fallback
    settlement_value: int  # the oracle's BME_N (unclamped), or the midpoint in fallback
    settlement_epoch: int  # 0 in fallback
    deposited: int  # collateral base units received by mints
    paid_out: int  # collateral base units paid by redeems and claims
    name: str  # canonical series name, e.g. BME84-4.85-5.4-261215

    @property
    def state_name(self) -> str:
        return STATES.get(self.state, f"unknown ({self.state})")

    @property
    def long_name(self) -> str:
        return f"L{self.name}"

    @property
    def short_name(self) -> str:
        return f"S{self.name}"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["series_id"] = "0x" + self.series_id.hex()
        data["state"] = self.state_name
        return data


@dataclass(frozen=True, slots=True)
class TokenBalances:
    """An account's long, short and collateral balances in one series (base units)."""

    long: int
    short: int
    collateral: int


class MarketContract:
    """Reads and transactions of one deployed BmeMarket.

    Transactions take the signing account as ``sender=`` (a keystore account, as ``publish``
    uses) and return what the contract's event reports (id, collateral in or out, paid).
    """

    def __init__(
        self,
        w3: AsyncWeb3[Any],
        address: str,
        *,
        max_fee_wei: int | None = None,
        priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI,
    ) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(MARKET)["abi"])
        self.max_fee_wei = max_fee_wei
        self.priority_fee_wei = priority_fee_wei
        #: hashes (0x-hex) of the transactions sent through this object, in order (an
        #: ``approve`` before a ``mint`` included): what the CLI reports for the audit trail
        self.sent: list[str] = []

    # ------------------------------------------------------------------ plumbing

    async def _call(self, function: str, *args: Any, block: str = "pending") -> Any:
        try:
            return await getattr(self.contract.functions, function)(*args).call(
                block_identifier=block
            )
        except (ContractLogicError, Web3RPCError) as exc:
            raise _translated(exc, function) from exc

    async def _send(self, sender: KeystoreAccount, to: str, data: str) -> dict[str, Any]:
        max_fee, priority = await _fees(self.w3, self.max_fee_wei, self.priority_fee_wei)
        receipt = await send_and_wait(
            self.w3,
            sender,
            {"to": to, "data": data},
            max_fee_wei=max_fee,
            priority_fee_wei=priority,
        )
        self.sent.append("0x" + bytes(receipt["transactionHash"]).hex())
        return receipt

    async def _transact(self, sender: KeystoreAccount, function: str, *args: Any) -> dict[str, Any]:
        return await self._send(
            sender, self.address, self.contract.encode_abi(function, args=list(args))
        )

    async def transact(self, function: str, *args: Any, sender: KeystoreAccount) -> dict[str, Any]:
        """Any market function with raw arguments, no checks or approval first; the receipt."""
        return await self._transact(sender, function, *args)

    def _event(self, receipt: dict[str, Any], event: str) -> dict[str, Any]:
        logs = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        if not logs:
            raise PublishError(f"no {event} event in transaction {receipt['transactionHash']!r}")
        return dict(logs[-1]["args"])

    # ------------------------------------------------------------------ reads

    async def oracle(self) -> str:
        return str(await self._call("oracle"))

    async def max_days(self) -> int:
        return int(await self._call("maxDays"))

    async def is_allowed_collateral(self, token: str) -> bool:
        return bool(await self._call("isAllowedCollateral", to_checksum_address(token)))

    async def collateral_allowlist(self) -> list[str]:
        return [str(a) for a in await self._call("collateralAllowlist")]

    async def pair_collateral(self, series: bytes) -> int:
        """Collateral base units of 10^18 pairs (one long + one short token)."""
        return int(await self._call("pairCollateral", series))

    async def collateral_for(self, series: bytes, amount: int) -> int:
        """What ``mint(series, amount)`` takes: ceil(amount x pairCollateral / 10^18)."""
        pair = await self.pair_collateral(series)
        return -(-amount * pair // ONE)

    async def series_info(self, series: bytes) -> SeriesInfo:
        """Everything about a series; ``ContractReverted(UnknownSeries)`` if there is none."""
        raw = await self._call("seriesInfo", series)
        (n_days, floor, cap, expiry, created_at, collateral, long_token, short_token, state,
         value, epoch, deposited, paid_out, name) = raw  # fmt: skip
        return SeriesInfo(
            series_id=bytes(series),
            n_days=int(n_days),
            floor=int(floor),
            cap=int(cap),
            expiry=int(expiry),
            created_at=int(created_at),
            collateral=to_checksum_address(collateral),
            long_token=to_checksum_address(long_token),
            short_token=to_checksum_address(short_token),
            state=int(state),
            settlement_value=int(value),
            settlement_epoch=int(epoch),
            deposited=int(deposited),
            paid_out=int(paid_out),
            name=str(name),
        )

    async def series_count(self) -> int:
        return int(await self._call("seriesCount"))

    async def list_series(self) -> list[SeriesInfo]:
        """Every series, in creation order."""
        ids = [bytes(await self._call("seriesIdAt", i)) for i in range(await self.series_count())]
        return [await self.series_info(i) for i in ids]

    async def token_balances(self, series: bytes, account: str) -> TokenBalances:
        """``account``'s long, short and collateral balances for ``series``."""
        info = await self.series_info(series)
        holder = to_checksum_address(account)
        return TokenBalances(
            long=await erc20_balance(self.w3, info.long_token, holder),
            short=await erc20_balance(self.w3, info.short_token, holder),
            collateral=await erc20_balance(self.w3, info.collateral, holder),
        )

    # ------------------------------------------------------------------ transactions

    async def create_series(
        self,
        *,
        n_days: int,
        floor: int,
        cap: int,
        expiry: int,
        collateral: str,
        sender: KeystoreAccount,
    ) -> bytes:
        """Create the series and its two tokens; returns its id."""
        receipt = await self._transact(
            sender, "createSeries", n_days, floor, cap, expiry, to_checksum_address(collateral)
        )
        return bytes(self._event(receipt, "SeriesCreated")["id"])

    async def mint(self, series: bytes, amount: int, *, sender: KeystoreAccount) -> int:
        """Approve the market for the collateral (if needed), mint ``amount`` pairs (10^18
        units = one long + one short token); returns the collateral the market received."""
        _check_amount(amount)
        info = await self.series_info(series)
        required = await self.collateral_for(series, amount)
        token = erc20(self.w3, info.collateral)
        allowance = int(await token.functions.allowance(sender.address, self.address).call())
        if allowance < required:
            await self._send(
                sender, token.address, token.encode_abi("approve", args=[self.address, required])
            )
        receipt = await self._transact(sender, "mint", series, amount)
        return int(self._event(receipt, "Minted")["collateralIn"])

    async def redeem(self, series: bytes, amount: int, *, sender: KeystoreAccount) -> int:
        """Burn ``amount`` long and short tokens before settlement; returns the collateral paid."""
        _check_amount(amount)
        receipt = await self._transact(sender, "redeem", series, amount)
        return int(self._event(receipt, "Redeemed")["collateralOut"])

    async def settle(self, series: bytes, *, sender: KeystoreAccount) -> tuple[int, int, str]:
        """Settle at expiry (or in fallback); returns (value, epoch, kind name)."""
        receipt = await self._transact(sender, "settle", series)
        return self._settled(receipt)

    async def settle_early(
        self, series: bytes, epoch: int, *, sender: KeystoreAccount
    ) -> tuple[int, int, str]:
        """Settle at a barrier epoch before expiry; returns (value, epoch, kind name)."""
        receipt = await self._transact(sender, "settleEarly", series, epoch)
        return self._settled(receipt)

    def _settled(self, receipt: dict[str, Any]) -> tuple[int, int, str]:
        event = self._event(receipt, "Settled")
        kind = int(event["kind"])
        return int(event["value"]), int(event["epoch"]), SETTLEMENT_KINDS.get(kind, str(kind))

    async def claim(
        self, series: bytes, long_amount: int, short_amount: int, *, sender: KeystoreAccount
    ) -> int:
        """After settlement: burn the tokens, return the collateral paid."""
        if long_amount < 0 or short_amount < 0 or long_amount + short_amount == 0:
            raise InputError(
                f"claim amounts must be >= 0 and not both 0, got long {long_amount}, "
                f"short {short_amount}"
            )
        receipt = await self._transact(sender, "claim", series, long_amount, short_amount)
        return int(self._event(receipt, "Claimed")["paid"])


def _check_amount(amount: int) -> None:
    if amount <= 0:
        raise InputError(f"amount must be a positive number of 10^-18 token units, got {amount}")


def _translated(exc: BaseException, what: str) -> PublishError:
    reverted = revert_from_exception(exc)
    if reverted is None:
        return PublishError(f"{what} failed: {exc}")
    return reverted


async def _fees(
    w3: AsyncWeb3[Any], max_fee_wei: int | None, priority_fee_wei: int
) -> tuple[int, int]:
    if max_fee_wei is not None:
        return max_fee_wei, priority_fee_wei
    block = await w3.eth.get_block("pending")
    base = int(block.get("baseFeePerGas", 0))
    return 2 * base + priority_fee_wei, priority_fee_wei


def erc20(w3: AsyncWeb3[Any], address: str) -> Any:
    """Any ERC-20 (the position tokens' ABI is OpenZeppelin's ERC20 plus mint/burn)."""
    return w3.eth.contract(
        address=to_checksum_address(address), abi=load_artifact(POSITION_TOKEN)["abi"]
    )


async def erc20_balance(w3: AsyncWeb3[Any], token: str, account: str) -> int:
    try:
        return int(await erc20(w3, token).functions.balanceOf(account).call())
    except (ContractLogicError, Web3RPCError) as exc:
        raise _translated(exc, f"balanceOf on {token}") from exc


async def deploy_market(
    w3: AsyncWeb3[Any],
    owner: KeystoreAccount,
    oracle_address: str,
    collaterals: list[str],
    *,
    max_fee_wei: int | None = None,
    priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI,
) -> str:
    """Deploy a BmeMarket settling against ``oracle_address`` with this collateral allowlist
    (fixed forever). ``owner`` only pays for the deployment: the market has no owner."""
    if not collaterals:
        raise InputError("a market needs at least one collateral token")
    data = deployment_data(
        MARKET, to_checksum_address(oracle_address), [to_checksum_address(c) for c in collaterals]
    )
    return await _deploy(w3, owner, data, max_fee_wei, priority_fee_wei)


async def deploy_test_wbtc(
    w3: AsyncWeb3[Any],
    owner: KeystoreAccount,
    *,
    max_fee_wei: int | None = None,
    priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI,
) -> str:
    """Deploy TestWBTC (8 decimals, PUBLIC mint: dev and tests only)."""
    return await _deploy(w3, owner, deployment_data(TEST_WBTC), max_fee_wei, priority_fee_wei)


async def mint_test_wbtc(
    w3: AsyncWeb3[Any],
    sender: KeystoreAccount,
    token: str,
    to: str,
    amount_sat: int,
    *,
    max_fee_wei: int | None = None,
    priority_fee_wei: int = DEFAULT_PRIORITY_FEE_WEI,
) -> None:
    """TestWBTC's public ``mint`` (dev and tests only)."""
    contract = w3.eth.contract(
        address=to_checksum_address(token), abi=load_artifact(TEST_WBTC)["abi"]
    )
    max_fee, priority = await _fees(w3, max_fee_wei, priority_fee_wei)
    data = contract.encode_abi("mint", args=[to_checksum_address(to), amount_sat])
    await send_and_wait(
        w3,
        sender,
        {"to": contract.address, "data": data},
        max_fee_wei=max_fee,
        priority_fee_wei=priority,
    )


async def _deploy(
    w3: AsyncWeb3[Any],
    owner: KeystoreAccount,
    data: str,
    max_fee_wei: int | None,
    priority_fee_wei: int,
) -> str:
    max_fee, priority = await _fees(w3, max_fee_wei, priority_fee_wei)
    receipt = await send_and_wait(
        w3, owner, {"data": data}, max_fee_wei=max_fee, priority_fee_wei=priority
    )
    return str(receipt["contractAddress"])


__all__ = [
    "ContractReverted",
    "MarketContract",
    "SeriesInfo",
    "TokenBalances",
    "deploy_market",
    "deploy_test_wbtc",
    "mint_test_wbtc",
    "parse_series_id",
    "series_id",
]
