"""web3 bindings for the DifficultyOracle and BmeAggregator contracts.

Where it sits: the publish stage (``txmanager.py``, ``publisher.py``) and the
read-back monitor talk to the chain only through this module. It loads the
committed artifacts (no compiler at run time), deploys, reads the contract's
views into typed values, builds ``submit`` calldata, and translates reverts
into ``ContractReverted`` carrying the custom error's name and arguments, so
web3 exceptions never leak upward.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import collapse_if_tuple, function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from oracle.errors import InputError, PublishError, TxRejected
from oracle.publish.anchor import (
    DEFAULT_CHALLENGE_WINDOW_S,
    DEFAULT_GOVERNANCE_DELAY_S,
    MAX_CHALLENGE_WINDOW_S,
    NETWORK_MODES,
    NETWORK_NAMES,
    Checkpoint,
)
from oracle.publish.signing import KeystoreAccount, Report
from oracle.sources.boundedweb3 import BoundedAsyncHTTPProvider

ORACLE = "DifficultyOracle"
AGGREGATOR = "BmeAggregator"
#: Every artifact whose custom errors ``decode_revert`` names: the oracle stack and the market
#: stack (oracle.market.chain), whose reverts can carry the oracle's.
ERROR_SOURCES = (ORACLE, AGGREGATOR, "BmeMarket", "BmePositionToken", "TestWBTC")
#: Selector of Solidity's ``Error(string)`` and ``Panic(uint256)``.
_ERROR_STRING = function_signature_to_4byte_selector("Error(string)")
_PANIC = function_signature_to_4byte_selector("Panic(uint256)")


class ContractReverted(TxRejected):
    """The contract refused a call or transaction with a decoded custom error."""

    def __init__(
        self,
        name: str,
        args: dict[str, Any],
        *,
        data: bytes = b"",
        inner: ContractReverted | None = None,
    ) -> None:
        self.name = name
        self.args_by_name = args
        self.data = data
        #: A revert carried inside this one (an argument ``reason``: the market's
        #: ``SettlementNotFinal`` holds the oracle's refusal), decoded.
        self.inner = inner
        super().__init__(f"contract reverted: {self.signature}")

    @property
    def signature(self) -> str:
        """``Name(arg=value, ...)``, a carried revert shown decoded."""
        shown = ", ".join(
            f"{key}={self.inner.signature if key == 'reason' and self.inner else _show(value)}"
            for key, value in self.args_by_name.items()
        )
        return f"{self.name}({shown})"


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The committed ``oracle/publish/artifacts/<name>.json`` (ABI, bytecode, compiler)."""
    path = resources.files("oracle.publish").joinpath("artifacts", f"{name}.json")
    try:
        artifact: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"contract artifact {name}.json is missing from the package") from None
    return artifact


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    """selector -> (name, arg names, arg types) for every custom error of ``ERROR_SOURCES``."""
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in ERROR_SOURCES:
        for item in load_artifact(name)["abi"]:
            if item["type"] != "error":
                continue
            types = [arg["type"] for arg in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], [arg["name"] for arg in item["inputs"]], types)
    return table


def decode_revert(data: bytes | str | None) -> ContractReverted:
    """Decode revert data (custom error, ``Error(string)``, ``Panic``) to ``ContractReverted``."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    data = data or b""
    selector, body = data[:4], data[4:]
    try:
        if selector in _error_table():
            name, names, types = _error_table()[selector]
            values = [
                to_checksum_address(value) if kind == "address" else value
                for kind, value in zip(types, abi_decode(types, body), strict=True)
            ]
            args = dict(zip(names, values, strict=True))
            reason = args.get("reason")
            inner = decode_revert(reason) if isinstance(reason, bytes) and reason else None
            return ContractReverted(name, args, data=data, inner=inner)
        if selector == _ERROR_STRING:
            return ContractReverted(
                "Error", {"message": abi_decode(["string"], body)[0]}, data=data
            )
        if selector == _PANIC:
            return ContractReverted("Panic", {"code": abi_decode(["uint256"], body)[0]}, data=data)
    except DecodingError:  # malformed revert data is reported raw below
        pass
    return ContractReverted("UnknownRevert", {"data": data}, data=data)


def revert_from_exception(exc: BaseException) -> ContractReverted | None:
    """The decoded revert inside a web3 exception, or None if it was not a revert."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, dict):
            data = data.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            return decode_revert(data)
        return ContractReverted("Reverted", {"message": exc.message or ""})
    if isinstance(exc, Web3RPCError) and exc.rpc_response:
        error = exc.rpc_response.get("error")
        if isinstance(error, dict) and isinstance(error.get("data"), str):
            return decode_revert(error["data"])
    return None


def connect(rpc_url: str, *, timeout_s: float = 10.0) -> AsyncWeb3[Any]:
    """An AsyncWeb3 on an HTTP JSON-RPC endpoint (the URL is never logged with credentials)."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    return AsyncWeb3(BoundedAsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


@dataclass(frozen=True, slots=True)
class OnChainRetarget:
    """One stored epoch as the contract reports it."""

    epoch: int
    block_hash_hex: str  # display order
    bits: int
    time: int


@dataclass(frozen=True, slots=True)
class OracleStatus:
    """What ``bme-oracle contract status`` shows."""

    address: str
    owner: str
    pending_owner: str | None
    signers: tuple[str, ...]
    threshold: int
    config_version: int
    paused: bool
    network: str
    genesis_epoch: int
    latest_epoch: int
    latest_stored_at: int
    latest_final_at: int  # 0: the latest epoch is final
    challenge_window_s: int
    governance_delay_s: int
    pow_limit: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "owner": self.owner,
            "pending_owner": self.pending_owner,
            "signers": list(self.signers),
            "threshold": self.threshold,
            "config_version": self.config_version,
            "paused": self.paused,
            "network": self.network,
            "genesis_epoch": self.genesis_epoch,
            "latest_epoch": self.latest_epoch,
            "latest_stored_at": self.latest_stored_at,
            "latest_final": self.latest_final_at == 0,
            "latest_final_at": self.latest_final_at or None,
            "challenge_window_s": self.challenge_window_s,
            "governance_delay_s": self.governance_delay_s,
            "pow_limit": hex(self.pow_limit),
        }


class OracleContract:
    """Reads and calldata for one deployed DifficultyOracle."""

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(ORACLE)["abi"])

    async def _call(self, function: str, *args: Any, block: str = "latest") -> Any:
        """Call a view; ``block="pending"`` for views that read ``block.timestamp`` (the
        time the next transaction sees; anvil answers "latest" calls with a stale time)."""
        try:
            return await getattr(self.contract.functions, function)(*args).call(
                block_identifier=block
            )
        except (ContractLogicError, Web3RPCError) as exc:
            reverted = revert_from_exception(exc)
            if reverted is None:
                raise PublishError(f"{function} call failed: {exc}") from exc
            raise reverted from exc

    async def _optional(self, function: str, *args: Any, missing: str) -> Any:
        try:
            return await self._call(function, *args)
        except ContractReverted as exc:
            if exc.name == missing:
                return None
            raise

    async def latest_epoch(self) -> int:
        """The newest stored epoch (the genesis until the first report)."""
        return int(await self._call("latestEpoch"))

    async def first_epoch(self) -> int:
        """The genesis epoch."""
        return int(await self._call("firstEpoch"))

    async def config_version(self) -> int:
        """The signer-configuration version reports must carry to be accepted."""
        return int(await self._call("configVersion"))

    async def latest_stored_at(self) -> int:
        """EVM block time at which the latest epoch was first stored (its window's start)."""
        return int(await self._call("latestStoredAt"))

    async def challenge_window(self) -> int:
        return int(await self._call("challengeWindow"))

    async def final_at(self, epoch: int) -> int:
        """0 if stored ``epoch`` is final, else when it becomes final (end of the window),
        as the next transaction will see it (the pending block's time)."""
        return int(await self._call("finalAt", epoch, block="pending"))

    async def bme_final(self, n_days: int, epoch: int) -> int:
        """BME_N(epoch) x 10^18, only once the epoch is final (else ``EpochNotFinal``)."""
        return int(await self._call("bmeFinal", n_days, epoch, block="pending"))

    async def bme_at_final(self, n_days: int, at_time: int) -> tuple[int, int]:
        """(BME_N x 10^18, epoch) final at ``at_time`` (else ``NoEpochAfter``/``EpochNotFinal``)."""
        value, epoch = await self._call("bmeAtFinal", n_days, at_time, block="pending")
        return int(value), int(epoch)

    async def retarget(self, epoch: int) -> OnChainRetarget | None:
        """The stored retarget of ``epoch``, or None if it is not stored."""
        value = await self._optional("retarget", epoch, missing="EpochMissing")
        if value is None:
            return None
        block_hash, bits, time = value
        return OnChainRetarget(
            epoch=epoch, block_hash_hex=bytes(block_hash).hex(), bits=bits, time=time
        )

    async def target(self, epoch: int) -> int:
        return int(await self._call("target", epoch))

    async def difficulty_fixed(self, epoch: int) -> int:
        """floor(DIFF1_TARGET x 10^18 / target) of a stored epoch."""
        return int(await self._call("difficulty", epoch))

    async def bme(self, n_days: int, epoch: int) -> int:
        """BME_N(epoch) x 10^18 computed on chain; ``ContractReverted(EpochMissing)`` on a gap."""
        return int(await self._call("bme", n_days, epoch))

    async def bme_at(self, n_days: int, at_time: int) -> int:
        return int(await self._call("bmeAt", n_days, at_time))

    async def epoch_at_time(self, at_time: int) -> int:
        return int(await self._call("epochAtTime", at_time))

    async def report_digest(self, report: Report) -> bytes:
        return bytes(await self._call("reportDigest", report.as_tuple()))

    async def status(self) -> OracleStatus:
        """Owner, signers, threshold, pause flag and stored range, in one value."""
        if not await self.w3.eth.get_code(self.address):
            raise PublishError(f"no contract deployed at {self.address}")
        pending = str(await self._call("pendingOwner"))
        latest = await self.latest_epoch()
        network = int(await self._call("network"))
        return OracleStatus(
            address=self.address,
            owner=str(await self._call("owner")),
            pending_owner=None if int(pending, 16) == 0 else pending,
            signers=tuple(str(a) for a in await self._call("signers")),
            threshold=int(await self._call("threshold")),
            config_version=await self.config_version(),
            paused=bool(await self._call("paused")),
            network=NETWORK_NAMES.get(network, f"unknown ({network})"),
            genesis_epoch=await self.first_epoch(),
            latest_epoch=latest,
            latest_stored_at=await self.latest_stored_at(),
            latest_final_at=await self.final_at(latest),
            challenge_window_s=await self.challenge_window(),
            governance_delay_s=int(await self._call("governanceDelay")),
            pow_limit=int(await self._call("powLimit")),
        )

    def submit_calldata(
        self, report: Report, signatures: bytes, proof: bytes, *, function: str = "submit"
    ) -> bytes:
        """ABI-encoded ``submit`` (or ``replace``) of ``report`` with its 160-byte proof."""
        if function not in ("submit", "replace"):
            raise PublishError(f"no report function {function!r}")
        encoded = self.contract.encode_abi(function, args=[report.as_tuple(), signatures, proof])
        return bytes.fromhex(encoded.removeprefix("0x"))

    async def simulate_submit(
        self,
        report: Report,
        signatures: bytes,
        proof: bytes,
        *,
        sender: str,
        function: str = "submit",
    ) -> None:
        """eth_call ``submit`` (or ``replace``) on the pending block (the time the
        transaction will see): raises ``ContractReverted`` with the refusal."""
        if function not in ("submit", "replace"):
            raise PublishError(f"no report function {function!r}")
        call = getattr(self.contract.functions, function)
        try:
            await call(report.as_tuple(), signatures, proof).call(
                {"from": to_checksum_address(sender)}, block_identifier="pending"
            )
        except (ContractLogicError, Web3RPCError) as exc:
            reverted = revert_from_exception(exc)
            if reverted is None:
                raise PublishError(f"{function} simulation failed: {exc}") from exc
            raise reverted from exc


class AggregatorContract:
    """Chainlink-shaped reads of a BmeAggregator."""

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(AGGREGATOR)["abi"])

    async def latest_round_data(self) -> tuple[int, int, int, int, int]:
        try:
            values = await self.contract.functions.latestRoundData().call()
            return (int(values[0]), int(values[1]), int(values[2]), int(values[3]), int(values[4]))
        except (ContractLogicError, Web3RPCError) as exc:
            raise (revert_from_exception(exc) or PublishError(str(exc))) from exc

    async def description(self) -> str:
        return str(await self.contract.functions.description().call())

    async def decimals(self) -> int:
        return int(await self.contract.functions.decimals().call())


async def send_and_wait(
    w3: AsyncWeb3[Any],
    sender: KeystoreAccount,
    transaction: dict[str, Any],
    *,
    max_fee_wei: int,
    priority_fee_wei: int,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """Sign and send one administrative transaction (deploy, owner calls) and await its receipt.

    Publishing goes through ``txmanager.TxManager``; this is for one-off operator actions.
    """
    tx = dict(transaction)
    tx.setdefault("chainId", await w3.eth.chain_id)
    tx.setdefault("nonce", await w3.eth.get_transaction_count(sender.address, "pending"))
    tx["from"] = sender.address
    tx.setdefault("maxPriorityFeePerGas", priority_fee_wei)
    tx.setdefault("maxFeePerGas", max_fee_wei)
    tx.setdefault("type", 2)
    try:
        if "gas" not in tx:
            tx["gas"] = int(await w3.eth.estimate_gas(cast(TxParams, tx), "pending") * 12 // 10)
        tx.pop("from")
        raw, _tx_hash = sender.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(raw)
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s)
    except (ContractLogicError, Web3RPCError) as exc:
        raise (revert_from_exception(exc) or TxRejected(f"transaction refused: {exc}")) from exc
    if receipt["status"] != 1:
        raise TxRejected(f"transaction {tx_hash.hex()} reverted")
    return dict(receipt)


def deployment_data(name: str, *args: Any) -> str:
    """Creation bytecode followed by the ABI-encoded constructor arguments."""
    artifact = load_artifact(name)
    constructor = next(item for item in artifact["abi"] if item["type"] == "constructor")
    types = [collapse_if_tuple(arg) for arg in constructor["inputs"]]
    return str(artifact["bytecode"]) + abi_encode(types, list(args)).hex()


async def deploy_oracle(
    w3: AsyncWeb3[Any],
    sender: KeystoreAccount,
    *,
    owner: str,
    signers: list[str],
    threshold: int,
    network: str,
    genesis: Checkpoint,
    max_fee_wei: int,
    priority_fee_wei: int,
    challenge_window_s: int = DEFAULT_CHALLENGE_WINDOW_S,
    governance_delay_s: int = DEFAULT_GOVERNANCE_DELAY_S,
) -> str:
    """Deploy a DifficultyOracle anchored at ``genesis``; returns its checksum address."""
    if network not in NETWORK_MODES:
        raise InputError(
            f"the contract does not support network {network!r} "
            f"(choose {', '.join(NETWORK_MODES)}; signet and testnet3 are refused by design)"
        )
    if not 0 <= challenge_window_s <= MAX_CHALLENGE_WINDOW_S:
        raise InputError(
            f"challenge window {challenge_window_s} s is outside 0..{MAX_CHALLENGE_WINDOW_S} s"
        )
    if governance_delay_s < 0:
        raise InputError(f"governance delay {governance_delay_s} s is negative")
    data = deployment_data(
        ORACLE,
        to_checksum_address(owner),
        [to_checksum_address(s) for s in signers],
        threshold,
        NETWORK_MODES[network],
        genesis.as_tuple(),
        list(genesis.seed_bits),
        challenge_window_s,
        governance_delay_s,
    )
    receipt = await send_and_wait(
        w3,
        sender,
        {"data": data},
        max_fee_wei=max_fee_wei,
        priority_fee_wei=priority_fee_wei,
    )
    return str(receipt["contractAddress"])


async def deploy_aggregator(
    w3: AsyncWeb3[Any],
    sender: KeystoreAccount,
    *,
    oracle_address: str,
    n_days: int,
    max_fee_wei: int,
    priority_fee_wei: int,
) -> str:
    """Deploy a BmeAggregator reading BME_N from ``oracle_address``."""
    data = deployment_data(AGGREGATOR, to_checksum_address(oracle_address), n_days)
    receipt = await send_and_wait(
        w3, sender, {"data": data}, max_fee_wei=max_fee_wei, priority_fee_wei=priority_fee_wei
    )
    return str(receipt["contractAddress"])
