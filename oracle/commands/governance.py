"""The contract's timelocked governance from the command line (``bme-oracle contract ...``).

Signer, threshold and re-anchor changes are announced by the owner, become
executable ``governanceDelay`` seconds later (anyone may execute), and can be
cancelled by the owner until then (DESIGN.md "On-chain contract"):

* ``schedule-signers --signers A,B,C --threshold N`` / ``execute-signers`` (same
  arguments, same order: the change's id is the hash of both);
* ``schedule-reanchor --genesis FILE|EPOCH`` / ``execute-reanchor`` (same genesis);
* ``cancel ID``; ``pause`` / ``unpause`` (immediate, owner only).

``contract status`` lists the changes still pending (from the contract's
``*Scheduled`` events, each checked against ``scheduledAt``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from typing import Any

from web3.exceptions import Web3Exception

from oracle.commands.chain import (
    add_common,
    add_contract,
    chain_config,
    contract_address,
    evm,
    fees,
    load_sender,
    resolve_genesis,
    signer_set,
    when,
)
from oracle.commands.output import emit
from oracle.config import Config
from oracle.errors import InputError, PublishError
from oracle.publish.anchor import NETWORK_NAMES, Checkpoint

#: Clearer words for the contract's governance refusals.
_REFUSALS = {
    "NotScheduled": "no such pending change (never announced, already executed or cancelled)",
    "AlreadyScheduled": "this change is already announced",
    "NotOwner": "the sender is not the contract's owner",
    "EnforcedPause": "the contract is already paused",
    "ExpectedPause": "the contract is not paused",
}


def register(commands: Any) -> None:
    """Add the governance subcommands to ``contract``."""
    for name, handler, what in (
        ("schedule-signers", cmd_schedule_signers, "announce a new signer set and threshold"),
        ("execute-signers", cmd_execute_signers, "apply an announced signer set after the delay"),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument("--signers", required=True, help="comma-separated signer addresses")
        p.add_argument("--threshold", type=int, required=True, help="signatures per report")
        add_contract(p)
        add_common(p, sender=True)
        p.set_defaults(handler=handler)
    for name, handler, what in (
        ("schedule-reanchor", cmd_schedule_reanchor, "announce a re-anchor at a new genesis"),
        ("execute-reanchor", cmd_execute_reanchor, "apply an announced re-anchor after the delay"),
    ):
        p = commands.add_parser(name, help=what)
        p.add_argument(
            "--genesis",
            required=True,
            metavar="FILE|EPOCH",
            help="the new genesis checkpoint: a JSON file or an epoch number (as for deploy)",
        )
        add_contract(p)
        add_common(p, sender=True)
        p.set_defaults(handler=handler)
    p = commands.add_parser("cancel", help="withdraw an announced change (owner)")
    p.add_argument("id", metavar="ID", help="the change's id (0x + 64 hex digits)")
    add_contract(p)
    add_common(p, sender=True)
    p.set_defaults(handler=cmd_cancel)
    for name, handler, what in (
        ("pause", cmd_pause, "stop submissions, final reads and the adapter (owner)"),
        ("unpause", cmd_unpause, "resume after a pause (owner)"),
    ):
        p = commands.add_parser(name, help=what)
        add_contract(p)
        add_common(p, sender=True)
        p.set_defaults(handler=handler)


async def _transact(
    config: Config, function: str, *args: Any, owner_only: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Send ``function(*args)`` from the sender; returns (the contract, the receipt)."""
    from oracle.publish.contract import ContractReverted, OracleContract, send_and_wait

    sender = load_sender(config)
    async with evm(config) as w3:
        oracle = OracleContract(w3, contract_address(config))
        if not await w3.eth.get_code(oracle.address):
            raise PublishError(f"no contract deployed at {oracle.address}")
        if owner_only:
            owner = str(await oracle.contract.functions.owner().call())
            if owner != sender.address:
                raise InputError(
                    f"the sender {sender.address} is not the contract's owner {owner} "
                    "(--sender-keystore)"
                )
        data = oracle.contract.encode_abi(function, args=list(args))
        try:
            receipt = await send_and_wait(
                w3, sender, {"to": oracle.address, "data": data}, **fees(config)
            )
        except ContractReverted as exc:
            reason = _REFUSALS.get(exc.name)
            if exc.name == "TooEarly":
                reason = f"not executable before {when(int(exc.args_by_name['executableAt']))}"
            raise PublishError(f"{function}: {reason or exc}") from None
        return oracle, receipt


def _tx(receipt: dict[str, Any]) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def cmd_schedule_signers(args: argparse.Namespace) -> int:
    config = chain_config(args)
    signers = signer_set(args.signers, args.threshold)

    async def run() -> dict[str, Any]:
        oracle, receipt = await _transact(config, "scheduleSignerConfig", signers, args.threshold)
        change_id = await oracle.contract.functions.signerConfigId(signers, args.threshold).call()
        at = int(await oracle.contract.functions.scheduledAt(change_id).call())
        return {
            "id": "0x" + bytes(change_id).hex(),
            "kind": "signers",
            "signers": signers,
            "threshold": args.threshold,
            "executable_at": at,
            "tx_hash": _tx(receipt),
        }

    payload = asyncio.run(run())
    emit(
        args,
        payload,
        f"scheduled {payload['id']}: {describe(payload)}\nthen: bme-oracle contract "
        f"execute-signers --signers {','.join(signers)} --threshold {args.threshold}",
    )
    return 0


def cmd_execute_signers(args: argparse.Namespace) -> int:
    config = chain_config(args)
    signers = signer_set(args.signers, args.threshold)

    async def run() -> dict[str, Any]:
        oracle, receipt = await _transact(
            config, "executeSignerConfig", signers, args.threshold, owner_only=False
        )
        version = int(await oracle.contract.functions.configVersion().call())
        return {
            "signers": signers,
            "threshold": args.threshold,
            "config_version": version,
            "tx_hash": _tx(receipt),
        }

    payload = asyncio.run(run())
    emit(
        args,
        payload,
        f"signer configuration version {payload['config_version']}: threshold "
        f"{args.threshold} of {len(signers)} (signatures under older versions are void)",
    )
    return 0


async def _reanchor_genesis(config: Config, spec: str) -> Checkpoint:
    from oracle.publish.contract import OracleContract

    async with evm(config) as w3:
        oracle = OracleContract(w3, contract_address(config))
        if not await w3.eth.get_code(oracle.address):
            raise PublishError(f"no contract deployed at {oracle.address}")
        mode = int(await oracle.contract.functions.network().call())
    return await resolve_genesis(spec, NETWORK_NAMES[mode], config)


def _reanchor(args: argparse.Namespace, function: str, *, owner_only: bool) -> dict[str, Any]:
    config = chain_config(args)

    async def run() -> dict[str, Any]:
        genesis = await _reanchor_genesis(config, args.genesis)
        seeds = list(genesis.seed_bits)
        oracle, receipt = await _transact(
            config, function, genesis.as_tuple(), seeds, owner_only=owner_only
        )
        change_id = await oracle.contract.functions.reanchorId(genesis.as_tuple(), seeds).call()
        at = int(await oracle.contract.functions.scheduledAt(change_id).call())
        return {
            "id": "0x" + bytes(change_id).hex(),
            "kind": "reanchor",
            "genesis": genesis.as_dict(),
            "executable_at": at or None,
            "tx_hash": _tx(receipt),
        }

    return asyncio.run(run())


def cmd_schedule_reanchor(args: argparse.Namespace) -> int:
    payload = _reanchor(args, "scheduleReanchor", owner_only=True)
    emit(
        args,
        payload,
        f"scheduled {payload['id']}: {describe(payload)}\nthen: bme-oracle contract "
        f"execute-reanchor --genesis {args.genesis}",
    )
    return 0


def cmd_execute_reanchor(args: argparse.Namespace) -> int:
    payload = _reanchor(args, "executeReanchor", owner_only=False)
    emit(args, payload, f"re-anchored at epoch {payload['genesis']['epoch']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    text = args.id.strip().lower().removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InputError(f"ID: not a change id (0x + 64 hex digits): {args.id!r}")
    config = chain_config(args)

    async def run() -> dict[str, Any]:
        _oracle, receipt = await _transact(config, "cancel", bytes.fromhex(text))
        return {"id": "0x" + text, "cancelled": True, "tx_hash": _tx(receipt)}

    payload = asyncio.run(run())
    emit(args, payload, f"cancelled {payload['id']}")
    return 0


def _pause(args: argparse.Namespace, function: str) -> int:
    config = chain_config(args)

    async def run() -> dict[str, Any]:
        _oracle, receipt = await _transact(config, function)
        return {"paused": function == "pause", "tx_hash": _tx(receipt)}

    payload = asyncio.run(run())
    emit(args, payload, "paused" if payload["paused"] else "unpaused")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    return _pause(args, "pause")


def cmd_unpause(args: argparse.Namespace) -> int:
    return _pause(args, "unpause")


def _field(value: Any, name: str, index: int) -> Any:
    """A struct field of a decoded event argument (web3 gives a mapping or a tuple)."""
    return value[name] if isinstance(value, Mapping) else value[index]


async def pending_changes(oracle: Any, now: int) -> list[dict[str, Any]] | None:
    """Announced changes not yet executed or cancelled, oldest first; None if the node
    refuses the log query (some providers cap ``eth_getLogs`` ranges)."""
    events = oracle.contract.events
    announced: dict[bytes, dict[str, Any]] = {}
    try:
        for log in await events.SignerConfigScheduled().get_logs(from_block=0):
            announced[bytes(log["args"]["id"])] = {
                "kind": "signers",
                "signers": [str(a) for a in log["args"]["signers"]],
                "threshold": int(log["args"]["threshold"]),
            }
        for log in await events.ReanchorScheduled().get_logs(from_block=0):
            genesis = log["args"]["genesis"]
            announced[bytes(log["args"]["id"])] = {
                "kind": "reanchor",
                "genesis": {
                    "epoch": int(_field(genesis, "epoch", 0)),
                    "block_hash_hex": bytes(_field(genesis, "blockHash", 1)).hex(),
                    "bits": f"{int(_field(genesis, 'bits', 2)):08x}",
                    "time": int(_field(genesis, "time", 3)),
                    "seed_bits": [f"{int(b):08x}" for b in log["args"]["seedBits"]],
                },
            }
    except (Web3Exception, ValueError):
        return None
    pending = []
    for change_id, change in announced.items():
        at = int(await oracle.contract.functions.scheduledAt(change_id).call())
        if at:
            pending.append(
                {"id": "0x" + change_id.hex(), **change, "executable_at": at, "ready": at <= now}
            )
    return sorted(pending, key=lambda change: change["executable_at"])


def describe(change: dict[str, Any]) -> str:
    """One line for a pending (or just announced) change."""
    if change["kind"] == "signers":
        what = f"signers {','.join(change['signers'])} threshold {change['threshold']}"
    else:
        genesis = change["genesis"]
        what = f"re-anchor at epoch {genesis['epoch']} {genesis['block_hash_hex']}"
    at = change.get("executable_at")
    if not at:
        return what
    ready = " (executable now)" if change.get("ready") else ""
    return f"{what}, executable after {when(at)}{ready}, id {change['id']}"
