"""Service commands: ``run`` (the daemon), ``replay`` (history) and ``dev`` (local stack)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from oracle.commands.output import add_json_flag, emit
from oracle.config import Config, load
from oracle.errors import InputError, SourceUnavailable
from oracle.logs import setup_logging


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="run the oracle daemon")
    p.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: built-in defaults)"
    )
    p.add_argument("--db", metavar="URL", help="database URL (wins over config and environment)")
    add_json_flag(p)
    p.set_defaults(handler=cmd_run)

    p = subparsers.add_parser("replay", help="run the pipeline over historical epochs")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--db", metavar="URL")
    p.add_argument("--from-epoch", type=int, required=True)
    p.add_argument("--to-epoch", type=int, required=True)
    p.add_argument("--publish", action="store_true", help="also publish agreed epochs on chain")
    p.add_argument(
        "--checkpoints",
        action="store_true",
        help="replay offline from the bundled mainnet checkpoints (quorum 1)",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_replay)

    p = subparsers.add_parser(
        "dev", help="local regtest bitcoind + anvil + daemon, through a retarget"
    )
    p.add_argument("--api-port", type=int, default=8080)
    p.add_argument(
        "--workdir", default="var/dev", help="where the dev chain, keys and database live"
    )
    p.add_argument("--retargets", type=int, default=1, help="retargets to mine through at start")
    p.add_argument(
        "--exit-after-publish",
        action="store_true",
        help="stop once the mined retargets are published (for scripts and tests)",
    )
    add_json_flag(p)
    p.set_defaults(handler=cmd_dev)
    steps = p.add_subparsers(dest="dev_command", metavar="STEP")
    step = steps.add_parser(
        "advance",
        help="move the running dev stack's regtest and anvil clocks forward (settlement)",
        description="Set the regtest clock to --to, mine through the next retarget, wait "
        "until the dev daemon published it and move anvil past its challenge window, so "
        "an expiry before --to can be settled (oracle.devstack.advance).",
    )
    step.add_argument(
        "--to",
        required=True,
        metavar="WHEN",
        help="+Nd/+Nh/+Nm/+Ns after the dev chains' time, a unix time, or an ISO date/time "
        "(UTC unless an offset is given), e.g. +9d or 2026-12-17T02:00Z",
    )
    step.add_argument(
        "--config",
        metavar="FILE",
        default="var/dev/oracle.toml",
        help="the dev stack's configuration (default: var/dev/oracle.toml, written by dev)",
    )
    step.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long to wait for the daemon to publish the new epoch (default 120)",
    )
    add_json_flag(step)
    step.set_defaults(handler=cmd_dev_advance)


def _config(args: argparse.Namespace, *, publishing: bool) -> Config:
    import dataclasses

    config = load(args.config, publishing=publishing)
    if getattr(args, "db", None):
        config = dataclasses.replace(
            config, database=dataclasses.replace(config.database, url=args.db)
        )
    return config


def cmd_run(args: argparse.Namespace) -> int:
    from oracle.service import run_service

    config = _config(args, publishing=True)
    setup_logging(fmt="json" if args.json else config.logging.format, level=config.logging.level)
    return asyncio.run(run_service(config))


def cmd_replay(args: argparse.Namespace) -> int:
    from oracle.replay import run_replay

    if args.to_epoch < args.from_epoch or args.from_epoch < 0:
        raise InputError(f"--from-epoch {args.from_epoch} .. --to-epoch {args.to_epoch} is empty")
    config = _config(args, publishing=args.publish)
    setup_logging(fmt=config.logging.format, level="warning")
    summary = asyncio.run(
        run_replay(
            config,
            range(args.from_epoch, args.to_epoch + 1),
            publish=args.publish,
            checkpoints=args.checkpoints,
            progress=sys.stderr.isatty(),
        )
    )
    emit(args, summary.as_dict(), summary.text())
    if summary.unobserved:
        raise SourceUnavailable(
            f"nothing could be observed: no source answered for epochs "
            f"{summary.unobserved[0]}..{summary.unobserved[-1]}"
        )
    return 0 if not summary.disputed else 1


def cmd_dev_advance(args: argparse.Namespace) -> int:
    from oracle.devstack.advance import advance

    config = load(args.config)
    setup_logging(fmt=config.logging.format, level="warning")
    if args.wait <= 0:
        raise InputError(f"--wait must be > 0 seconds, got {args.wait}")
    moved = asyncio.run(advance(config, args.to, wait_s=args.wait))
    emit(args, moved.as_dict(), moved.text())
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from oracle.devstack.stack import run_dev

    setup_logging(fmt="json" if args.json else "console", level="info")
    return asyncio.run(
        run_dev(
            api_port=args.api_port,
            workdir=args.workdir,
            retargets=args.retargets,
            as_json=args.json,
            exit_after_publish=args.exit_after_publish,
        )
    )
