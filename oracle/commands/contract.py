"""``bme-oracle contract deploy|status`` and ``bme-oracle publish --epoch E``.

Operator commands for the on-chain side. Settings come from ``--config FILE``
(``[publisher]``, ``[network]``, ``[database]``) and ``ORACLE_*`` variables;
``--rpc-url``, ``--contract`` and ``--db`` override them. Keys are only ever
read from the keystore files named in the configuration (``--sender-keystore``
overrides the sender), decrypted with the password from
``ORACLE_PUBLISHER__KEYSTORE_PASSWORD`` or ``publisher.keystore_password_file``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from oracle.bitcoin.difficulty import NETWORKS
from oracle.commands.output import add_json_flag, emit
from oracle.config import Config, database_url, load, read_secret
from oracle.errors import ConfigError, InputError, PublishError
from oracle.logs import setup_logging
from oracle.publish.contract import (
    OracleContract,
    connect,
    deploy_aggregator,
    deploy_oracle,
)
from oracle.publish.fees import GWEI
from oracle.publish.signing import load_keystore
from oracle.store.states import RetargetStatus


def register(subparsers: Any) -> None:
    contract = subparsers.add_parser(
        "contract", help="deploy and inspect the DifficultyOracle contract"
    )
    commands = contract.add_subparsers(dest="contract_command", metavar="SUBCOMMAND")
    commands.required = True

    p = commands.add_parser("deploy", help="deploy a DifficultyOracle; prints its address")
    p.add_argument("--signers", required=True, help="comma-separated signer addresses")
    p.add_argument("--threshold", type=int, required=True, help="signatures required per report")
    p.add_argument("--owner", required=True, help="owner address (signers, threshold, pause)")
    p.add_argument("--network", help="Bitcoin network whose powLimit applies (default: config)")
    p.add_argument(
        "--aggregator-days",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="also deploy a Chainlink-style BME_N adapter (repeatable)",
    )
    p.add_argument("--sender-keystore", metavar="FILE", help="keystore that pays (default: config)")
    _add_common(p)
    p.set_defaults(handler=cmd_deploy)

    p = commands.add_parser("status", help="latest epoch, signers, threshold, paused")
    p.add_argument("--contract", metavar="ADDRESS", help="contract address (default: config)")
    _add_common(p)
    p.set_defaults(handler=cmd_status)

    p = subparsers.add_parser("publish", help="sign and submit one agreed epoch from the database")
    p.add_argument("--epoch", type=int, required=True, help="the epoch to publish")
    p.add_argument("--contract", metavar="ADDRESS", help="contract address (default: config)")
    _add_common(p)
    p.set_defaults(handler=cmd_publish)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (wins over config and environment)"
    )
    parser.add_argument("--rpc-url", metavar="URL", help="EVM JSON-RPC URL (default: config)")
    add_json_flag(parser)


def _config(args: argparse.Namespace) -> Config:
    config = load(args.config)
    setup_logging(fmt=config.logging.format, level=config.logging.level)  # logs go to stderr
    publisher = config.publisher
    changes: dict[str, Any] = {}
    if getattr(args, "rpc_url", None):
        changes["rpc_url"] = args.rpc_url
    if getattr(args, "contract", None):
        changes["contract_address"] = _address(args.contract, "--contract")
    if getattr(args, "sender_keystore", None):
        changes["sender_keystore_file"] = args.sender_keystore
    if changes:
        config = dataclasses.replace(config, publisher=dataclasses.replace(publisher, **changes))
    return config


def _address(text: str, what: str) -> str:
    if not is_address(text.strip()):
        raise InputError(f"{what}: not an address: {text!r}")
    return str(to_checksum_address(text.strip()))


def cmd_deploy(args: argparse.Namespace) -> int:
    config = _config(args)
    signers = [_address(s, "--signers") for s in args.signers.split(",") if s.strip()]
    owner = _address(args.owner, "--owner")
    network = NETWORKS.get(args.network or config.network.name)
    if network is None:
        raise InputError(
            f"--network: unknown network {args.network!r} (known: {', '.join(NETWORKS)})"
        )
    if not 1 <= args.threshold <= len(signers):
        raise InputError(f"--threshold must be 1..{len(signers)}, got {args.threshold}")
    if len(set(signers)) != len(signers):
        raise InputError("--signers lists an address twice")
    section = config.publisher
    password = read_secret(
        section.keystore_password, section.keystore_password_file, "keystore password"
    )
    if not section.sender_keystore_file:
        raise ConfigError(
            "a sender keystore is needed: --sender-keystore or publisher.sender_keystore_file"
        )
    sender = load_keystore(section.sender_keystore_file, password)
    fees = {
        "max_fee_wei": int(section.max_fee_gwei * GWEI),
        "priority_fee_wei": int(section.priority_fee_gwei * GWEI),
    }

    async def run() -> dict[str, Any]:
        w3 = connect(section.rpc_url)
        try:
            if await w3.eth.chain_id != section.chain_id:
                raise PublishError(f"node at the RPC URL is not chain {section.chain_id}")
            address = await deploy_oracle(
                w3,
                sender,
                owner=owner,
                signers=signers,
                threshold=args.threshold,
                pow_limit=network.pow_limit,
                **fees,
            )
            adapters = {
                str(n): await deploy_aggregator(
                    w3, sender, oracle_address=address, n_days=n, **fees
                )
                for n in args.aggregator_days
            }
        finally:
            await w3.provider.disconnect()
        return {
            "address": address,
            "chain_id": section.chain_id,
            "network": network.name,
            "owner": owner,
            "signers": signers,
            "threshold": args.threshold,
            "aggregators": adapters,
        }

    payload = asyncio.run(run())
    lines = [payload["address"]] + [
        f"BME{n} adapter: {a}" for n, a in payload["aggregators"].items()
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config = _config(args)
    if not config.publisher.contract_address:
        raise ConfigError("no contract: --contract or publisher.contract_address")

    async def run() -> dict[str, Any]:
        w3 = connect(config.publisher.rpc_url)
        try:
            return (await OracleContract(w3, config.publisher.contract_address).status()).as_dict()
        finally:
            await w3.provider.disconnect()

    status = asyncio.run(run())
    text = "\n".join(
        [
            f"contract      {status['address']}",
            f"owner         {status['owner']}"
            + (f" (pending: {status['pending_owner']})" if status["pending_owner"] else ""),
            f"paused        {'yes' if status['paused'] else 'no'}",
            f"threshold     {status['threshold']} of {len(status['signers'])}",
            *(f"signer        {s}" for s in status["signers"]),
            f"epochs        {status['first_epoch']}..{status['latest_epoch']}"
            if status["latest_epoch"] is not None
            else "epochs        none yet",
        ]
    )
    emit(args, status, text)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from oracle.publish.publisher import build_publisher
    from oracle.store.repository import open_repository

    config = _config(args)
    url = database_url(config, args.db)
    network = config.network.name

    async def run() -> dict[str, Any]:
        repository = await open_repository(url, config.database)
        try:
            record = await repository.get_retarget(network, args.epoch)
            if (
                record is None
                or record.status not in (RetargetStatus.AGREED, RetargetStatus.PUBLISHED)
                or not record.raw_header
            ):
                state = "missing" if record is None else record.status
                raise InputError(
                    f"{network} epoch {args.epoch} is not agreed in the database ({state})"
                )
            publisher = await build_publisher(config, repository)
            try:
                await publisher.reconcile()
                outcome = await publisher.publish(args.epoch, record.raw_header)
                tx_hash = outcome.tx_hash or await publisher.accepted_tx_hash(args.epoch)
                if tx_hash is not None:
                    await repository.mark_published(
                        network,
                        args.epoch,
                        tx_hash=tx_hash,
                        chain_id=config.publisher.chain_id,
                        contract=publisher.contract_address,
                        block_hash_hex=record.block_hash_hex,
                    )
            finally:
                await publisher.close()
        finally:
            await repository.close()
        return {
            "epoch": args.epoch,
            "status": outcome.status,
            "tx_hash": tx_hash,
            "block_number": outcome.block_number,
            "gas_used": outcome.gas_used,
            "contract": publisher.contract_address,
        }

    payload = asyncio.run(run())
    emit(
        args,
        payload,
        f"epoch {payload['epoch']}: {payload['status']} {payload['tx_hash'] or ''}".rstrip(),
    )
    return 0
