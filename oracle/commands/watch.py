"""``bme-oracle watch``: print each retarget as soon as the sources agree on it.

A thin shell around ``oracle.agreement.watcher.RetargetWatcher`` for operators: sources
come from ``--config`` (its ``[bitcoind]`` and ``[[sources]]``) and/or quick
flags (``--bitcoind-url``, ``--esplora URL``, ``--blockchain-com URL``). Agreed
retargets go to stdout (one line, or one JSON object per line with
``--json``); disputes, reorgs and failures go to the log on stderr, and to
stdout too with ``--all``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any

from oracle import config as config_mod
from oracle.agreement.crosscheck import Agreed, Disputed, Insufficient
from oracle.agreement.reorg import RetargetOrphaned, TipRegressed
from oracle.agreement.watcher import EpochObserved, RetargetWatcher, WatchEvent
from oracle.bitcoin.difficulty import core_get_difficulty, get_network
from oracle.commands.output import add_json_flag
from oracle.errors import InputError
from oracle.sources.bitcoind import BitcoindSource
from oracle.sources.blockchain_com import BlockchainComSource
from oracle.sources.esplora import EsploraSource
from oracle.sources.factory import build_sources
from oracle.sources.rest import HttpPolicy
from oracle.sources.rpc import RpcCredentials
from oracle.sources.types import HeaderSource


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("watch", help="watch sources and print each agreed retarget")
    p.add_argument("--config", metavar="FILE", help="TOML configuration ([bitcoind], [[sources]])")
    p.add_argument("--network", help="mainnet|testnet3|testnet4|signet|regtest (default: config)")
    p.add_argument("--quorum", type=int, help="sources that must agree (default: config, 2)")
    p.add_argument(
        "--bitcoind-url", metavar="URL", help="bitcoind RPC URL (user:password@ allowed)"
    )
    p.add_argument("--rpc-user", default="", help="bitcoind RPC user")
    p.add_argument("--rpc-password-file", default="", metavar="FILE", help="file with the password")
    p.add_argument("--cookie-file", default="", metavar="FILE", help="bitcoind .cookie file")
    p.add_argument("--zmq", default="", metavar="URL", help="bitcoind zmqpubhashblock endpoint")
    p.add_argument("--esplora", action="append", default=[], metavar="[NAME=]URL")
    p.add_argument("--blockchain-com", action="append", default=[], metavar="[NAME=]URL")
    p.add_argument("--poll-interval-s", type=float, default=None, help="tip polling interval")
    p.add_argument("--start-epoch", type=int, default=None, help="first epoch to observe")
    p.add_argument("--max-agreed", type=int, default=None, help="exit after N agreed retargets")
    p.add_argument("--all", action="store_true", help="print every event, not only agreements")
    add_json_flag(p)
    p.set_defaults(handler=cmd_watch)


def _named(spec: str, default: str) -> tuple[str, str]:
    name, sep, url = spec.partition("=")
    if sep and not name.startswith(("http://", "https://")):
        return name, url
    return default, spec


def check_flags(args: argparse.Namespace) -> None:
    """Refuse bad numbers and URLs on the command line before anything starts."""
    for flag, value, least in (
        ("--quorum", args.quorum, 1),
        ("--start-epoch", args.start_epoch, 0),
        ("--max-agreed", args.max_agreed, 1),
    ):
        if value is not None and value < least:
            raise InputError(f"{flag} must be >= {least}, got {value}")
    if args.poll_interval_s is not None and not args.poll_interval_s > 0:
        raise InputError(f"--poll-interval-s must be > 0, got {args.poll_interval_s}")
    if args.bitcoind_url:
        config_mod.check_url(args.bitcoind_url, "--bitcoind-url")
    if args.zmq:
        config_mod.check_url(args.zmq, "--zmq", ("tcp",))
    for flag, specs in (("--esplora", args.esplora), ("--blockchain-com", args.blockchain_com)):
        for spec in specs:
            config_mod.check_url(_named(spec, "")[1], flag)


def flag_sources(args: argparse.Namespace, cfg: config_mod.Config) -> list[HeaderSource]:
    """Sources given on the command line (checked by ``check_flags``)."""
    poll = args.poll_interval_s
    sources: list[HeaderSource] = []
    if args.bitcoind_url:
        password = config_mod.read_secret(
            cfg.bitcoind.rpc_password, args.rpc_password_file, "--rpc-password-file"
        )
        sources.append(
            BitcoindSource(
                name="bitcoind",
                url=args.bitcoind_url,
                credentials=RpcCredentials(
                    user=args.rpc_user, password=password.reveal(), cookie_file=args.cookie_file
                ),
                zmq_hashblock=args.zmq,
                poll_interval_s=poll if poll is not None else 5.0,
            )
        )
    for i, spec in enumerate(args.esplora, 1):
        name, url = _named(spec, f"esplora-{i}")
        sources.append(
            EsploraSource(
                name=name,
                base_url=url,
                policy=HttpPolicy(),
                poll_interval_s=poll if poll is not None else 60.0,
            )
        )
    for i, spec in enumerate(args.blockchain_com, 1):
        name, url = _named(spec, f"blockchain_com-{i}")
        sources.append(
            BlockchainComSource(
                name=name,
                base_url=url,
                policy=HttpPolicy(max_response_bytes=16 << 20),
                poll_interval_s=poll if poll is not None else 120.0,
            )
        )
    return sources


def agreed_payload(outcome: Agreed) -> dict[str, Any]:
    return {
        "event": "agreed",
        "epoch": outcome.epoch,
        "height": outcome.height,
        "block_hash": outcome.block_hash_hex,
        "bits": f"{outcome.bits:08x}",
        "difficulty": core_get_difficulty(outcome.bits),
        "time": outcome.time,
        "time_utc": datetime.fromtimestamp(outcome.time, UTC).isoformat().replace("+00:00", "Z"),
        "sources": list(outcome.sources),
        "header_hex": outcome.header.hex(),
    }


def event_payload(event: WatchEvent) -> dict[str, Any]:
    """A JSON-able description of any watcher event."""
    if isinstance(event, EpochObserved):
        outcome = event.outcome
        if isinstance(outcome, Agreed):
            return agreed_payload(outcome)
        if isinstance(outcome, Disputed):
            claims = {
                c.source: {
                    "block_hash": c.block_hash_hex,
                    "bits": f"{c.bits:08x}",
                    "time": c.time,
                    "verified": c.verified,
                }
                for c in outcome.claims
            }
            return {
                "event": "disputed",
                "epoch": event.epoch,
                "fields": list(outcome.fields_in_dispute),
                "claims": claims,
            }
        assert isinstance(outcome, Insufficient)
        return {"event": "insufficient", "epoch": event.epoch, "reasons": list(outcome.reasons)}
    if isinstance(event, TipRegressed):
        return {
            "event": "tip_regressed",
            "source": event.source,
            "kind": event.kind,
            "previous_height": event.previous.height,
            "height": event.current.height,
            "block_hash": event.current.block_hash_hex,
        }
    assert isinstance(event, RetargetOrphaned)
    return {
        "event": "orphaned",
        "epoch": event.epoch,
        "source": event.source,
        "stored_hash": event.stored_hash_hex,
        "current_hash": event.current_hash_hex,
    }


def event_text(payload: dict[str, Any]) -> str:
    if payload["event"] == "agreed":
        return (
            f"epoch {payload['epoch']} height {payload['height']} block {payload['block_hash']} "
            f"bits {payload['bits']} difficulty {payload['difficulty']:.6g} "
            f"time {payload['time_utc']} sources {','.join(payload['sources'])}"
        )
    rest = " ".join(f"{k}={v}" for k, v in payload.items() if k != "event")
    return f"{payload['event']} {rest}"


async def watch(args: argparse.Namespace) -> int:
    check_flags(args)
    cfg = config_mod.load(args.config)
    sources = build_sources(cfg) if args.config else []
    sources += flag_sources(args, cfg)
    if not sources:
        raise InputError("no sources: give --config, --bitcoind-url, --esplora or --blockchain-com")
    network = get_network(args.network or cfg.network.name)
    quorum = args.quorum if args.quorum is not None else cfg.crosscheck.quorum
    if quorum > len(sources):
        raise InputError(f"quorum {quorum} needs at least {quorum} sources, got {len(sources)}")
    watcher = RetargetWatcher(sources, network, quorum=quorum, start_epoch=args.start_epoch)
    agreed = 0
    events = watcher.run()
    try:
        async for event in events:
            payload = event_payload(event)
            is_agreed = payload["event"] == "agreed"
            if is_agreed or args.all:
                print(json.dumps(payload) if args.json else event_text(payload), flush=True)
            agreed += is_agreed
            if args.max_agreed is not None and agreed >= args.max_agreed:
                break
    finally:
        await events.aclose()
        for source in sources:
            await source.close()
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from oracle.logs import setup_logging

    setup_logging(level="warning")
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:  # Ctrl-C is the normal way to stop watching
        print("stopped", file=sys.stderr)
        return 0
