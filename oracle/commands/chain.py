"""What the on-chain commands share: settings, keys, the EVM connection, input parsing.

Used by ``oracle.commands.contract`` (deploy, status, publish) and
``oracle.commands.governance`` (the timelocked owner actions). Keys are read only
from the keystore files named in the configuration (``--sender-keystore``
overrides the sender) and decrypted with ``ORACLE_PUBLISHER__KEYSTORE_PASSWORD``
or ``publisher.keystore_password_file``; nothing here prints a key, a password or
an RPC URL's credentials or path (provider keys often sit in the path).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from eth_utils.address import is_address, to_checksum_address

from oracle.commands.output import add_json_flag
from oracle.config import Config, check_url, load, read_secret
from oracle.errors import (
    ChainUnavailable,
    ConfigError,
    InputError,
    PublishError,
    SourceError,
    SourceUnavailable,
)
from oracle.logs import scrub_secrets, setup_logging
from oracle.publish.anchor import NETWORK_MODES, Checkpoint
from oracle.publish.fees import GWEI
from oracle.publish.signing import KeystoreAccount, load_keystore

#: Networks the contract refuses by design, with the reason shown to the operator.
REFUSED_NETWORKS = {
    "signet": "signet is refused by design: its blocks are signed, so proof of work "
    "proves nothing there",
    "testnet3": "testnet3 is refused by design: its 20-minute minimum-difficulty blocks "
    "make a retarget cheap to fake (use testnet4)",
}
#: The chain id the contract accepts regtest mode on (``DifficultyOracle.DEV_CHAIN_ID``).
DEV_CHAIN_ID = 31337
_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_common(parser: argparse.ArgumentParser, *, sender: bool = False) -> None:
    """``--config``, ``--db``, ``--rpc-url``, ``--json`` (and ``--sender-keystore``)."""
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument(
        "--db", metavar="URL", help="database URL (wins over config and environment)"
    )
    parser.add_argument("--rpc-url", metavar="URL", help="EVM JSON-RPC URL (default: config)")
    if sender:
        parser.add_argument(
            "--sender-keystore", metavar="FILE", help="keystore that pays (default: config)"
        )
    add_json_flag(parser)


def add_contract(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--contract", metavar="ADDRESS", help="contract address (default: config)")


def chain_config(args: argparse.Namespace) -> Config:
    """The configuration with the command line's overrides applied; logging to stderr."""
    config = load(args.config)
    setup_logging(fmt=config.logging.format, level=config.logging.level)
    changes: dict[str, Any] = {}
    if getattr(args, "rpc_url", None) is not None:
        changes["rpc_url"] = check_url(args.rpc_url, "--rpc-url")
    if getattr(args, "contract", None):
        changes["contract_address"] = address(args.contract, "--contract")
    if getattr(args, "sender_keystore", None):
        changes["sender_keystore_file"] = args.sender_keystore
    if changes:
        publisher = dataclasses.replace(config.publisher, **changes)
        config = dataclasses.replace(config, publisher=publisher)
    return config


def contract_address(config: Config) -> str:
    if not config.publisher.contract_address:
        raise ConfigError("no contract: --contract or publisher.contract_address")
    return config.publisher.contract_address


def address(text: str, what: str) -> str:
    if not is_address(text.strip()):
        raise InputError(f"{what}: not an address: {text!r}")
    return str(to_checksum_address(text.strip()))


def signer_set(signers: str, threshold: int) -> list[str]:
    """``--signers A,B,C`` and ``--threshold N`` checked as the contract will check them."""
    chosen = [address(s, "--signers") for s in signers.split(",") if s.strip()]
    if not chosen:
        raise InputError("--signers: no address given")
    if len(set(chosen)) != len(chosen):
        raise InputError("--signers lists an address twice")
    if not 1 <= threshold <= len(chosen):
        raise InputError(f"--threshold must be 1..{len(chosen)}, got {threshold}")
    return chosen


def network_mode(name: str) -> str:
    """A ``--network`` the contract supports; signet and testnet3 are refused with why."""
    chosen = name.strip().lower()
    if chosen in REFUSED_NETWORKS:
        raise InputError(f"--network: {REFUSED_NETWORKS[chosen]}")
    if chosen not in NETWORK_MODES:
        raise InputError(f"--network: unknown network {name!r} (choose {', '.join(NETWORK_MODES)})")
    return chosen


def duration_s(text: str, what: str, *, maximum: int | None = None) -> int:
    """Seconds from ``600``, ``600s``, ``10m``, ``12h`` or ``3d``, within 0..maximum."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"{what}: not a duration: {text!r} (seconds, or a number with s/m/h/d)")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if maximum is not None and seconds > maximum:
        raise InputError(f"{what}: {seconds} s is more than the maximum {maximum} s")
    return seconds


def load_sender(config: Config) -> KeystoreAccount:
    section = config.publisher
    if not section.sender_keystore_file:
        raise ConfigError(
            "a sender keystore is needed: --sender-keystore or publisher.sender_keystore_file"
        )
    password = read_secret(
        section.keystore_password, section.keystore_password_file, "keystore password"
    )
    return load_keystore(section.sender_keystore_file, password)


def fees(config: Config) -> dict[str, int]:
    return {
        "max_fee_wei": int(config.publisher.max_fee_gwei * GWEI),
        "priority_fee_wei": int(config.publisher.priority_fee_gwei * GWEI),
    }


def endpoint(url: str) -> str:
    """``scheme://host:port`` of a URL: no credentials, no path (where API keys live)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@asynccontextmanager
async def evm(config: Config) -> AsyncIterator[Any]:
    """An AsyncWeb3 on ``publisher.rpc_url``, checked to be ``publisher.chain_id``.

    Connection failures become one-line ``ChainUnavailable`` errors (exit 69), an HTTP 4xx
    answer a ``PublishError`` (exit 2: the URL or its key is wrong). On the dev chain, views
    are read at the pending block: anvil answers calls at an empty "latest" with
    ``block.timestamp`` 1, and after ``anvil_setTime`` only "pending" has the new time.
    """
    from oracle.publish.contract import connect

    section = config.publisher
    w3 = connect(section.rpc_url)
    try:
        try:
            chain_id = await w3.eth.chain_id
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _evm_failure(exc, section.rpc_url, "is unreachable") from None
        if chain_id != section.chain_id:
            raise PublishError(
                f"the EVM node at {endpoint(section.rpc_url)} is chain {chain_id}, "
                f"not publisher.chain_id {section.chain_id}"
            )
        if chain_id == DEV_CHAIN_ID:
            w3.eth.default_block = "pending"
        yield w3
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise _evm_failure(exc, section.rpc_url, "failed") from None
    finally:
        await w3.provider.disconnect()


def _evm_failure(exc: BaseException, url: str, what: str) -> PublishError:
    where = f"EVM node at {endpoint(url)}"
    if isinstance(exc, aiohttp.ClientResponseError) and exc.status < 500:
        return PublishError(f"{where} refused the request: HTTP {exc.status} {exc.message}")
    detail = f"{type(exc).__name__}: {scrub_secrets(str(exc))}" if str(exc) else type(exc).__name__
    return ChainUnavailable(f"{where} {what}: {detail}")


def when(timestamp: int) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SSZ``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


async def resolve_genesis(spec: str | None, network: str, config: Config) -> Checkpoint:
    """The ``--genesis`` checkpoint (file, epoch or the network's default)."""
    from oracle.publish.genesis import bundled_genesis, checkpoint_from_file, genesis_from_node

    text = (spec or "").strip()
    if text and not text.isdigit():
        return checkpoint_from_file(Path(text))
    epoch = int(text) if text else None
    if network == "mainnet":
        return bundled_genesis(epoch)
    from oracle.sources.bitcoind import BitcoindSource

    source = BitcoindSource.from_config(config.bitcoind)
    try:
        return await genesis_from_node(source, network, epoch)
    except SourceError as exc:
        raise (SourceUnavailable if isinstance(exc, SourceUnavailable) else SourceError)(
            f"reading the {network} genesis from bitcoind at {endpoint(config.bitcoind.url)} "
            f"failed ({exc}); check [bitcoind] or give --genesis FILE"
        ) from None
    finally:
        await source.close()
