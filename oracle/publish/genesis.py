"""Genesis checkpoints for a deployment: from a JSON file, the bundled data, or a node.

Where it sits: beside ``anchor.py`` (which defines ``Checkpoint`` and the bundled
mainnet checkpoints). ``bme-oracle contract deploy --genesis`` and ``bme-oracle
dev`` take their genesis from here. A node is asked through the ``HeaderSource``
interface (in practice the configured bitcoind): first its block 0, which must be
the expected network's genesis block (so a testnet4 deployment cannot be anchored
on a regtest node by mistake), then the retarget headers of the genesis epoch and
of the epochs before it, whose bits seed the contract.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from oracle.bitcoin.difficulty import EPOCH_BLOCKS, bits_to_target
from oracle.errors import InputError, InvalidBits
from oracle.publish.anchor import SEED_EPOCHS, Checkpoint, checkpoint_from_json, mainnet_genesis
from oracle.sources.types import HeaderSource

#: Block 0 of each network the contract supports (RPC display order).
GENESIS_BLOCK_HASHES = {
    "mainnet": "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    "testnet4": "00000000da84f2bafbbc53dee25a72ae507ff4914b867c565be350b0da8bf043",
    "regtest": "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
}
#: Epoch 0 of every regtest chain (its genesis block is fixed): the dev stack's genesis.
REGTEST_GENESIS = Checkpoint(
    epoch=0,
    block_hash_hex=GENESIS_BLOCK_HASHES["regtest"],
    bits=0x207FFFFF,
    time=1296688602,
    seed_bits=(),
)
#: A node-chosen default genesis (testnet4) is the latest retarget with this many confirmations.
DEFAULT_GENESIS_CONFIRMATIONS = 6
_HASH_HEX = re.compile(r"[0-9a-f]{64}")
_UINT32 = 2**32


def checkpoint_from_file(path: Path) -> Checkpoint:
    """A checkpoint from a JSON file in ``Checkpoint.as_dict`` form, checked field by field."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            f"--genesis: no such file {str(path)!r} (give a JSON checkpoint file or an epoch)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--genesis: cannot read {str(path)!r}: {exc}") from None
    except ValueError as exc:
        raise InputError(f"--genesis: {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"--genesis: {str(path)!r} must hold a JSON object")
    try:
        checkpoint = checkpoint_from_json(data)
    except InputError as exc:
        raise InputError(f"--genesis: {str(path)!r}: {exc}") from None
    problem = checkpoint_problem(checkpoint)
    if problem:
        raise InputError(f"--genesis: {str(path)!r}: {problem}")
    return checkpoint


def checkpoint_problem(checkpoint: Checkpoint) -> str | None:
    """What makes ``checkpoint`` impossible to deploy (before any gas is spent), or None."""
    if not 0 <= checkpoint.epoch < _UINT32:
        return f"epoch {checkpoint.epoch} is outside 0..{_UINT32 - 1}"
    if not _HASH_HEX.fullmatch(checkpoint.block_hash_hex):
        return "block_hash_hex must be 64 hex digits"
    if not 0 <= checkpoint.time < _UINT32:
        return f"time {checkpoint.time} is outside 0..{_UINT32 - 1}"
    for name, bits in [("bits", checkpoint.bits)] + [
        (f"seed_bits[{i}]", b) for i, b in enumerate(checkpoint.seed_bits)
    ]:
        if not 0 <= bits < _UINT32:
            return f"{name} {bits:#x} is not a 32-bit value"
        try:
            bits_to_target(bits)
        except InvalidBits as exc:  # negative, overflowing or zero target
            return f"{name} {bits:08x}: {exc}"
    return None


def bundled_genesis(epoch: int | None) -> Checkpoint:
    """A mainnet genesis from the bundled checkpoints (default: the latest with a header)."""
    try:
        return mainnet_genesis(epoch)
    except InputError as exc:
        raise InputError(f"--genesis: {exc}; for another epoch give a checkpoint file") from None


async def genesis_from_node(
    source: HeaderSource, network: str, epoch: int | None = None
) -> Checkpoint:
    """The genesis of ``epoch`` from ``source``'s chain, seeded with the bits before it.

    Default epoch: 0 on regtest (the dev chain's first epoch), else the latest retarget
    with ``DEFAULT_GENESIS_CONFIRMATIONS`` confirmations. Raises ``InputError`` if the
    node is on another network or has not reached the epoch, a ``SourceError`` if it
    cannot be read.
    """
    expected = GENESIS_BLOCK_HASHES.get(network)
    if expected is None:
        raise InputError(f"no genesis block known for network {network!r}")
    tip = await source.tip()
    (block0,) = await source.headers_at([0])
    if block0.block_hash_hex != expected:
        raise InputError(
            f"the node {source.name} is not on {network}: its block 0 is "
            f"{block0.block_hash_hex}, {network}'s is {expected}"
        )
    if epoch is None:
        deepest = tip.height - DEFAULT_GENESIS_CONFIRMATIONS + 1
        epoch = 0 if network == "regtest" else max(0, deepest // EPOCH_BLOCKS)
    if epoch * EPOCH_BLOCKS > tip.height:
        raise InputError(
            f"--genesis: epoch {epoch} (height {epoch * EPOCH_BLOCKS}) is past the tip of "
            f"{source.name} (height {tip.height})"
        )
    first = max(0, epoch - SEED_EPOCHS)
    observations = await source.headers_at([e * EPOCH_BLOCKS for e in range(first, epoch + 1)])
    *seeds, retarget = observations
    return Checkpoint(
        epoch=epoch,
        block_hash_hex=retarget.block_hash_hex,
        bits=retarget.header.bits,
        time=retarget.header.time,
        seed_bits=tuple(seed.header.bits for seed in seeds),
    )
