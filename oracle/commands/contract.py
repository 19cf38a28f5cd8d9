"""``bme-oracle contract deploy|status|...`` and ``bme-oracle publish --epoch E``.

Operator commands for the on-chain side. Settings come from ``--config FILE``
(``[publisher]``, ``[network]``, ``[bitcoind]``, ``[database]``) and ``ORACLE_*``
variables; ``--rpc-url``, ``--contract`` and ``--db`` override them. Keys and
connections: ``oracle.commands.chain``. The timelocked governance subcommands
(``schedule-signers`` ...) live in ``oracle.commands.governance`` and are
registered here, under ``contract``.

``contract deploy`` anchors the contract at a genesis checkpoint (``--genesis``):
a JSON file in ``Checkpoint.as_dict`` form, or an epoch number. Without it, a
mainnet deployment takes the latest bundled mainnet checkpoint with a full
header; regtest and testnet4 read it from the configured bitcoind (regtest:
epoch 0, the dev chain's first epoch; testnet4: the latest retarget with 6
confirmations), after checking that the node's block 0 is that network's.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from oracle.commands import governance
from oracle.commands.chain import (
    DEV_CHAIN_ID,
    add_common,
    add_contract,
    address,
    chain_config,
    contract_address,
    duration_s,
    evm,
    fees,
    load_sender,
    network_mode,
    resolve_genesis,
    signer_set,
    when,
)
from oracle.commands.output import emit
from oracle.config import database_url
from oracle.errors import InputError
from oracle.publish.anchor import (
    DEFAULT_CHALLENGE_WINDOW_S,
    DEFAULT_GOVERNANCE_DELAY_S,
    MAX_CHALLENGE_WINDOW_S,
)
from oracle.store.states import RetargetStatus

#: The longest BME window the contract's views serve (``MAX_WINDOW_EPOCHS`` x 14 days).
MAX_WINDOW_DAYS = 256 * 14


def register(subparsers: Any) -> None:
    contract = subparsers.add_parser(
        "contract", help="deploy, inspect and govern the DifficultyOracle contract"
    )
    commands = contract.add_subparsers(dest="contract_command", metavar="SUBCOMMAND")
    commands.required = True

    p = commands.add_parser("deploy", help="deploy a DifficultyOracle; prints its address")
    p.add_argument("--signers", required=True, help="comma-separated signer addresses")
    p.add_argument("--threshold", type=int, required=True, help="signatures required per report")
    p.add_argument("--owner", required=True, help="owner address (governance, pause)")
    p.add_argument(
        "--network",
        help="contract mode: mainnet, testnet4 or regtest (default: network.name); "
        "signet and testnet3 are refused",
    )
    p.add_argument(
        "--genesis",
        metavar="FILE|EPOCH",
        help="genesis checkpoint: a JSON file (Checkpoint form) or an epoch number "
        "(mainnet: bundled data; regtest/testnet4: the configured bitcoind). Default: "
        "mainnet the latest bundled checkpoint, regtest epoch 0, testnet4 the latest "
        "retarget with 6 confirmations",
    )
    p.add_argument(
        "--challenge-window",
        default=str(DEFAULT_CHALLENGE_WINDOW_S),
        metavar="SECONDS",
        help=f"how long the latest epoch stays replaceable (default {DEFAULT_CHALLENGE_WINDOW_S}"
        f", at most {MAX_CHALLENGE_WINDOW_S}; 600, 10m, 12h, 3d)",
    )
    p.add_argument(
        "--governance-delay",
        default=str(DEFAULT_GOVERNANCE_DELAY_S),
        metavar="SECONDS",
        help=f"delay between announcing and executing a signer or re-anchor change "
        f"(default {DEFAULT_GOVERNANCE_DELAY_S})",
    )
    p.add_argument(
        "--aggregator-days",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="also deploy a Chainlink-style BME_N adapter (repeatable)",
    )
    add_common(p, sender=True)
    p.set_defaults(handler=cmd_deploy)

    p = commands.add_parser(
        "status",
        help="genesis, latest epoch and its finality, window, delay, signers, pending changes",
    )
    add_contract(p)
    add_common(p)
    p.set_defaults(handler=cmd_status)

    governance.register(commands)

    p = subparsers.add_parser("publish", help="sign and submit one agreed epoch from the database")
    p.add_argument("--epoch", type=int, required=True, help="the epoch to publish")
    add_contract(p)
    add_common(p)
    p.set_defaults(handler=cmd_publish)


def cmd_deploy(args: argparse.Namespace) -> int:
    from oracle.publish.contract import deploy_aggregator, deploy_oracle

    config = chain_config(args)
    signers = signer_set(args.signers, args.threshold)
    owner = address(args.owner, "--owner")
    network = network_mode(args.network or config.network.name)
    window = duration_s(args.challenge_window, "--challenge-window", maximum=MAX_CHALLENGE_WINDOW_S)
    delay = duration_s(args.governance_delay, "--governance-delay")
    for n in args.aggregator_days:
        if not 0 < n <= MAX_WINDOW_DAYS or n % 14:
            raise InputError(
                f"--aggregator-days: {n} is not a multiple of 14 in 14..{MAX_WINDOW_DAYS}"
            )
    section = config.publisher
    if network == "regtest" and section.chain_id != DEV_CHAIN_ID:
        raise InputError(
            f"--network regtest deploys only on the dev chain {DEV_CHAIN_ID} "
            f"(publisher.chain_id is {section.chain_id})"
        )
    sender = load_sender(config)

    async def run() -> dict[str, Any]:
        genesis = await resolve_genesis(args.genesis, network, config)
        async with evm(config) as w3:
            address_ = await deploy_oracle(
                w3,
                sender,
                owner=owner,
                signers=signers,
                threshold=args.threshold,
                network=network,
                genesis=genesis,
                challenge_window_s=window,
                governance_delay_s=delay,
                **fees(config),
            )
            adapters = {
                str(n): await deploy_aggregator(
                    w3, sender, oracle_address=address_, n_days=n, **fees(config)
                )
                for n in args.aggregator_days
            }
        return {
            "address": address_,
            "chain_id": section.chain_id,
            "network": network,
            "owner": owner,
            "signers": signers,
            "threshold": args.threshold,
            "genesis": genesis.as_dict(),
            "challenge_window_s": window,
            "governance_delay_s": delay,
            "aggregators": adapters,
        }

    payload = asyncio.run(run())
    genesis = payload["genesis"]
    lines = [
        payload["address"],
        *(f"BME{n} adapter: {a}" for n, a in payload["aggregators"].items()),
        f"{network} genesis: epoch {genesis['epoch']} {genesis['block_hash_hex']} "
        f"bits {genesis['bits']} time {genesis['time']}",
        f"challenge window {window} s, governance delay {delay} s",
    ]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from oracle.publish.contract import OracleContract

    config = chain_config(args)
    where = contract_address(config)

    async def run() -> dict[str, Any]:
        async with evm(config) as w3:
            oracle = OracleContract(w3, where)
            status = (await oracle.status()).as_dict()
            now = int((await w3.eth.get_block(w3.eth.default_block))["timestamp"])
            status["chain_time"] = now
            status["pending_governance"] = await governance.pending_changes(oracle, now)
            return status

    status = asyncio.run(run())
    emit(args, status, status_text(status))
    return 0


def status_text(status: dict[str, Any]) -> str:
    finality = (
        "final"
        if status["latest_final"]
        else f"not final until {when(status['latest_final_at'])} (challenge window)"
    )
    changes = status["pending_governance"]
    pending = (
        ["unknown (the node refused the log query)"]
        if changes is None
        else [governance.describe(change) for change in changes] or ["none"]
    )
    return "\n".join(
        [
            f"contract          {status['address']}",
            f"network           {status['network']}",
            f"owner             {status['owner']}"
            + (f" (pending: {status['pending_owner']})" if status["pending_owner"] else ""),
            f"paused            {'yes' if status['paused'] else 'no'}",
            f"threshold         {status['threshold']} of {len(status['signers'])} "
            f"(configuration version {status['config_version']})",
            *(f"signer            {s}" for s in status["signers"]),
            f"epochs            {status['genesis_epoch']}..{status['latest_epoch']} "
            f"(genesis {status['genesis_epoch']})",
            f"latest epoch      {status['latest_epoch']}, stored "
            f"{when(status['latest_stored_at'])}, {finality}",
            f"challenge window  {status['challenge_window_s']} s",
            f"governance delay  {status['governance_delay_s']} s",
            *(f"pending           {line}" for line in pending),
        ]
    )


def cmd_publish(args: argparse.Namespace) -> int:
    from oracle.publish.publisher import build_publisher
    from oracle.store.repository import open_repository

    config = chain_config(args)
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
                # ProofUnavailable (no 2016e-1 header stored), PublishDeferred (an earlier
                # epoch is missing on chain) and ReanchorRequired are one-line errors
                outcome = await publisher.publish_epoch(
                    args.epoch, record.raw_header, record.last_header
                )
                if outcome.status in ("confirmed", "already_on_chain"):
                    await repository.mark_published(
                        network,
                        args.epoch,
                        tx_hash=outcome.tx_hash,
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
            "function": outcome.function,
            "tx_hash": outcome.tx_hash,
            "block_number": outcome.block_number,
            "gas_used": outcome.gas_used,
            "contract": publisher.contract_address,
        }

    payload = asyncio.run(run())
    text = f"epoch {payload['epoch']}: {payload['status']} {payload['tx_hash'] or ''}".rstrip()
    if payload["status"] == "before_genesis":
        text += " (the contract's genesis is a later epoch: nothing to publish)"
    elif payload["function"] == "replace":
        text += " (replaced the latest epoch inside its challenge window)"
    emit(args, payload, text)
    return 0
