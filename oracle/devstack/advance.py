"""``bme-oracle dev advance --to WHEN``: move the dev stack's two clocks forward together.

Why: a position token expires at 02:00 UTC on its date and settles one day later from
``bmeAtFinal(N, expiry)``, which answers only once an epoch whose retarget time is
after the expiry is stored on the oracle contract and final. On a dev stack that is
days or weeks away; this command gets a README user there in seconds, from a second
terminal, while ``bme-oracle dev`` runs:

1. the regtest node's clock (``setmocktime``) to WHEN, then mine through the next
   retarget (plus ``crosscheck.confirmations`` blocks): every block mined gets a header
   time >= WHEN, so the new epoch's retarget time is after WHEN;
2. anvil's clock up to the regtest tip (what the dev stack's clock follower,
   ``oracle.devstack.clock``, does within a second anyway: the contract refuses headers
   more than 2 hours after its clock);
3. wait until the running daemon has published that epoch on the oracle contract;
4. move anvil's clock to the end of the epoch's challenge window (600 s on the dev
   stack), so the epoch is final and ``bmeAtFinal`` answers for any time before it.

It talks to the nodes named in the configuration ``bme-oracle dev`` writes
(``<workdir>/oracle.toml``: ``[bitcoind]``, ``[publisher]``). Dev chains only: any chain
id but 31337 is refused, and production clocks are never touched.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.config import Config, read_secret
from oracle.devstack.clock import evm_pending_time, follow_bitcoin_time
from oracle.devstack.nodes import DevnetError, json_rpc
from oracle.errors import ChainUnavailable, ConfigError, InputError, OracleError

#: The dev chain id (``DifficultyOracle.DEV_CHAIN_ID``): the only chain whose clock we move.
DEV_CHAIN_ID = 31337
MINE_BATCH = 500
_RELATIVE = re.compile(r"\+(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Advanced:
    """Where the clocks and the oracle stand after ``advance``."""

    target: int
    epoch: int
    height: int
    retarget_time: int
    bitcoin_time: int
    evm_time: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_iso": iso(self.target),
            "epoch": self.epoch,
            "height": self.height,
            "retarget_time": self.retarget_time,
            "bitcoin_time": self.bitcoin_time,
            "evm_time": self.evm_time,
            "evm_time_iso": iso(self.evm_time),
        }

    def text(self) -> str:
        return (
            f"clocks moved to {iso(self.target)}: epoch {self.epoch} (height {self.height}, "
            f"retarget time {iso(self.retarget_time)}) is published and final; "
            f"EVM time {iso(self.evm_time)}"
        )


def iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_when(text: str, now: int) -> int:
    """``--to``: ``+N[s|m|h|d]`` after ``now``, a unix time, or an ISO date or time (UTC
    unless it carries an offset): ``2026-12-16``, ``2026-12-16T02:00Z``."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return now + int(relative.group(1)) * _UNITS[relative.group(2)]
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InputError(
            f"--to: not a time: {text!r} (use +9d, +12h, a unix time or an ISO date/time "
            "such as 2026-12-16T02:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


class _Nodes:
    """The dev stack's regtest node and anvil, as the configuration names them."""

    def __init__(self, config: Config) -> None:
        section = config.bitcoind
        password = read_secret(
            section.rpc_password, section.rpc_password_file, "bitcoind.rpc_password"
        ).reveal()
        if section.cookie_file:
            try:
                with open(section.cookie_file, encoding="utf-8") as handle:
                    self.auth = handle.read().strip()
            except OSError as exc:
                raise ConfigError(f"bitcoind.cookie_file: cannot read it: {exc.strerror}") from exc
        else:
            self.auth = f"{section.rpc_user}:{password}"
        self.bitcoind_url = section.url
        self.evm_url = config.publisher.rpc_url

    def bitcoin(self, method: str, *params: Any, timeout_s: float = 30.0) -> Any:
        return json_rpc(
            self.bitcoind_url, method, list(params), auth=self.auth, timeout_s=timeout_s
        )

    def evm(self, method: str, *params: Any) -> Any:
        return json_rpc(self.evm_url, method, list(params), version="2.0")

    def tip_time(self) -> tuple[int, int]:
        header = self.bitcoin("getblockheader", self.bitcoin("getbestblockhash"))
        return int(header["height"]), int(header["time"])


def _mine(nodes: _Nodes, blocks: int, address: str) -> None:
    done = 0
    while done < blocks:
        batch = min(MINE_BATCH, blocks - done)
        nodes.bitcoin("generatetoaddress", batch, address, timeout_s=300)
        done += batch
        follow_bitcoin_time(nodes.evm_url, nodes.tip_time()[1])


async def advance(config: Config, when: str, *, wait_s: float = 120.0) -> Advanced:
    """Move both dev clocks to ``when`` and make an epoch after it published and final."""
    from oracle.devstack.nodes import REGTEST_MINING_ADDRESS
    from oracle.publish.contract import OracleContract, connect

    if config.network.name != "regtest" or config.publisher.chain_id != DEV_CHAIN_ID:
        raise InputError(
            "dev advance moves the clocks of the dev stack only (network regtest, chain id "
            f"{DEV_CHAIN_ID}); this configuration is {config.network.name}, chain id "
            f"{config.publisher.chain_id}"
        )
    if not config.publisher.contract_address:
        raise ConfigError("dev advance needs publisher.contract_address (the oracle contract)")
    parse_when(when, 0)  # the form, before anything is asked of the nodes
    nodes = _Nodes(config)
    try:
        chain_id = int(await asyncio.to_thread(nodes.evm, "eth_chainId"), 16)
        height, tip_time = await asyncio.to_thread(nodes.tip_time)
        evm_time = await asyncio.to_thread(evm_pending_time, nodes.evm_url)
    except (OSError, DevnetError) as exc:
        raise ChainUnavailable(
            f"cannot reach the dev stack's nodes ({type(exc).__name__}: {exc}); is "
            "`bme-oracle dev` running with this configuration?"
        ) from None
    if chain_id != DEV_CHAIN_ID:
        raise InputError(f"the EVM node is chain {chain_id}, not the dev chain {DEV_CHAIN_ID}")
    now = max(tip_time, evm_time)
    target = parse_when(when, now)
    if target <= now:
        raise InputError(
            f"--to {when}: {iso(target)} is not after the dev chains' time {iso(now)} "
            "(clocks only move forward)"
        )
    boundary = (height // EPOCH_BLOCKS + 1) * EPOCH_BLOCKS
    blocks = boundary - height + config.crosscheck.confirmations
    await asyncio.to_thread(nodes.bitcoin, "setmocktime", target)
    await asyncio.to_thread(_mine, nodes, blocks, REGTEST_MINING_ADDRESS)
    header = await asyncio.to_thread(
        nodes.bitcoin,
        "getblockheader",
        await asyncio.to_thread(nodes.bitcoin, "getblockhash", boundary),
    )
    epoch = boundary // EPOCH_BLOCKS
    w3 = connect(nodes.evm_url)
    try:
        w3.eth.default_block = "pending"
        oracle = OracleContract(w3, config.publisher.contract_address)
        deadline = asyncio.get_running_loop().time() + wait_s
        while await oracle.latest_epoch() < epoch:
            if asyncio.get_running_loop().time() > deadline:
                raise OracleError(
                    f"epoch {epoch} was not published on {oracle.address} within {wait_s:.0f} s: "
                    "is `bme-oracle dev` (its daemon) running with this configuration?"
                )
            await asyncio.sleep(0.25)
        final_at = await oracle.final_at(epoch)
        if final_at:
            await asyncio.to_thread(follow_bitcoin_time, nodes.evm_url, final_at + 1)
            await asyncio.to_thread(nodes.evm, "evm_mine")
        evm_time = await asyncio.to_thread(evm_pending_time, nodes.evm_url)
    finally:
        await w3.provider.disconnect()
    return Advanced(
        target=target,
        epoch=epoch,
        height=boundary,
        retarget_time=int(header["time"]),
        bitcoin_time=(await asyncio.to_thread(nodes.tip_time))[1],
        evm_time=evm_time,
    )
