"""What the contract is anchored at and what each report must prove, built off chain.

Where it sits: between the stored, agreed epochs and the publish stage. The
DifficultyOracle accepts an epoch only with a chain-bound proof (the raw header
at 2016e-1 followed by the one at 2016e) and only on top of a genesis
checkpoint fixed at deployment (or by a timelocked re-anchor). This module
builds both from headers the oracle holds, checking them the way the contract
will, so a publisher never pays gas for a refusal it could have seen.
Pure: no I/O beyond the bundled checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.bitcoin.header import HEADER_SIZE, parse_header
from oracle.errors import InputError

#: The contract's network modes (``DifficultyOracle.NETWORK_*``); signet and testnet3 are
#: refused by design (proof of work proves nothing on signet; testnet3 has 20-minute blocks).
NETWORK_MODES: dict[str, int] = {"mainnet": 0, "testnet4": 1, "regtest": 2}
NETWORK_NAMES = {mode: name for name, mode in NETWORK_MODES.items()}
#: Default challenge window: see docs/contract.md "Challenge window".
DEFAULT_CHALLENGE_WINDOW_S = 12 * 3600
MAX_CHALLENGE_WINDOW_S = 3 * 86400
#: Default delay between announcing and executing a governance change (3 days).
DEFAULT_GOVERNANCE_DELAY_S = 3 * 86400
SEED_EPOCHS = 5


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A genesis checkpoint: the retarget block of ``epoch`` and the bits of the epochs before."""

    epoch: int
    block_hash_hex: str  # display order
    bits: int
    time: int
    seed_bits: tuple[int, ...]  # bits of epochs epoch-len .. epoch-1, oldest first

    def __post_init__(self) -> None:
        expected = min(SEED_EPOCHS, self.epoch)
        if len(self.seed_bits) != expected:
            raise InputError(
                f"genesis epoch {self.epoch} needs the bits of {expected} earlier epochs, "
                f"got {len(self.seed_bits)}"
            )

    def as_tuple(self) -> tuple[int, bytes, int, int]:
        return (self.epoch, bytes.fromhex(self.block_hash_hex), self.bits, self.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "block_hash_hex": self.block_hash_hex,
            "bits": f"{self.bits:08x}",
            "time": self.time,
            "seed_bits": [f"{b:08x}" for b in self.seed_bits],
        }


PROOF_SIZE = 2 * HEADER_SIZE


def build_proof(epoch: int, last_header: bytes, retarget_header: bytes) -> bytes:
    """The 160-byte proof of ``epoch``: the header at 2016e-1, then the one at 2016e.

    Raises ``InputError`` if the two do not link (the contract would refuse with
    ``HeaderNotLinked``); the rest (bits, work, retarget rule) the contract checks.
    """
    if len(last_header) != HEADER_SIZE or len(retarget_header) != HEADER_SIZE:
        raise InputError(
            f"epoch {epoch}: a proof needs two 80-byte headers, "
            f"got {len(last_header)} and {len(retarget_header)} bytes"
        )
    last = parse_header(bytes(last_header))
    retarget = parse_header(bytes(retarget_header))
    if retarget.prev_hash_hex != last.block_hash_hex:
        raise InputError(
            f"epoch {epoch}: the retarget header's previous block {retarget.prev_hash_hex} "
            f"is not the header given for height {epoch * EPOCH_BLOCKS - 1} "
            f"({last.block_hash_hex})"
        )
    return bytes(last_header) + bytes(retarget_header)


def mainnet_genesis(epoch: int | None = None) -> Checkpoint:
    """A genesis checkpoint from the bundled mainnet data (default: the latest bundled
    epoch whose retarget header is bundled), seeded with the bits of the 5 epochs before."""
    from oracle.sources.checkpoints import mainnet_checkpoints

    headers = mainnet_checkpoints()
    retargets = sorted(h // EPOCH_BLOCKS for h in headers if h % EPOCH_BLOCKS == 0)
    chosen = retargets[-1] if epoch is None else epoch
    header = headers.get(chosen * EPOCH_BLOCKS)
    if header is None:
        raise InputError(
            f"no bundled mainnet retarget header for epoch {chosen} "
            f"(bundled: {retargets[0]}..{retargets[-1]})"
        )
    seeds = []
    for previous in range(max(0, chosen - SEED_EPOCHS), chosen):
        seed = headers.get(previous * EPOCH_BLOCKS)
        if seed is None:
            raise InputError(f"no bundled bits for epoch {previous} to seed genesis {chosen}")
        seeds.append(seed.bits)
    return Checkpoint(
        epoch=chosen,
        block_hash_hex=header.block_hash_hex,
        bits=header.bits,
        time=header.time,
        seed_bits=tuple(seeds),
    )


def checkpoint_from_json(data: Any) -> Checkpoint:
    """A checkpoint from its ``as_dict`` form (``contract deploy --genesis FILE``)."""
    try:
        return Checkpoint(
            epoch=int(data["epoch"]),
            block_hash_hex=str(data["block_hash_hex"]).lower(),
            bits=int(str(data["bits"]), 16),
            time=int(data["time"]),
            seed_bits=tuple(int(str(b), 16) for b in data["seed_bits"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"genesis checkpoint: {type(exc).__name__}: {exc}") from None
