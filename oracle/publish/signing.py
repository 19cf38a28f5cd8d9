"""EIP-712 report signing and keystore loading for the publish stage.

Where it sits: ``publisher.py`` turns an agreed, stored retarget into a
``Report``, every oracle operator signs it here, and the contract checks the
signatures (``DifficultyOracle.submit``). The typed data is built as a plain
EIP-712 message and encoded by eth-account (``encode_typed_data``); nothing
here hand-rolls the encoding.

The exact typed-data definition, which the contract mirrors
(``REPORT_TYPEHASH``, ``domainSeparator``)::

    EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
        name = "BmeDifficultyOracle", version = "2",
        chainId = the EVM chain id, verifyingContract = the DifficultyOracle address
    Report(uint32 epoch,bytes32 blockHash,uint32 bits,uint32 time,uint32 configVersion)
        epoch     = height // 2016 of the retarget block
        blockHash = the block hash in RPC display order, i.e. the 32 bytes of the
                    big-endian hash *number* (the byte-reverse of the header's
                    sha256d output); ``block_hash_hex`` from oracle.bitcoin.header
        bits      = the header's compact nBits
        time      = the header's timestamp
        configVersion = the contract's signer-configuration version when signing; every
                    signer or threshold change bumps it on chain, which voids older signatures

Keys come only from encrypted keystore JSON files (``Account.encrypt``) with the
password from the environment or a file (``config.read_secret``). A
``KeystoreAccount`` keeps its key private: its repr, str and errors show only
the address, and no function returns the key.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_typing import ChecksumAddress
from eth_utils.address import to_checksum_address

from oracle.bitcoin.difficulty import EPOCH_BLOCKS
from oracle.bitcoin.header import Header
from oracle.config import Secret
from oracle.errors import ConfigError, InputError

DOMAIN_NAME = "BmeDifficultyOracle"
DOMAIN_VERSION = "2"
SIGNATURE_SIZE = 65
REPORT_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Report": [
        {"name": "epoch", "type": "uint32"},
        {"name": "blockHash", "type": "bytes32"},
        {"name": "bits", "type": "uint32"},
        {"name": "time", "type": "uint32"},
        {"name": "configVersion", "type": "uint32"},
    ],
}


@dataclass(frozen=True, slots=True)
class Report:
    """What the operators sign for one epoch: the retarget block's hash, bits and time, under
    one signer configuration of the contract."""

    epoch: int
    block_hash_hex: str  # RPC display order, 64 hex digits
    bits: int
    time: int
    config_version: int

    def __post_init__(self) -> None:
        for name, value in (
            ("epoch", self.epoch),
            ("bits", self.bits),
            ("time", self.time),
            ("config_version", self.config_version),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 0 <= value <= 0xFFFFFFFF
            ):
                raise InputError(f"report {name} should be a uint32, got {value!r}")
        text = self.block_hash_hex
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise InputError(
                f"report block_hash_hex should be 64 lowercase hex digits, got {text!r}"
            )

    @classmethod
    def for_epoch(cls, epoch: int, header: Header, config_version: int) -> Report:
        """The report of ``epoch`` carried by its retarget block's ``header``."""
        return cls(
            epoch=epoch,
            block_hash_hex=header.block_hash_hex,
            bits=header.bits,
            time=header.time,
            config_version=config_version,
        )

    @property
    def height(self) -> int:
        return self.epoch * EPOCH_BLOCKS

    @property
    def block_hash(self) -> bytes:
        """bytes32 as the contract stores it (display order = big-endian hash number)."""
        return bytes.fromhex(self.block_hash_hex)

    def message(self) -> dict[str, Any]:
        """The EIP-712 ``message`` part."""
        return {
            "epoch": self.epoch,
            "blockHash": self.block_hash,
            "bits": self.bits,
            "time": self.time,
            "configVersion": self.config_version,
        }

    def as_tuple(self) -> tuple[int, bytes, int, int, int]:
        """The ABI tuple for ``submit(Report, ...)`` and ``replace(Report, ...)``."""
        return (self.epoch, self.block_hash, self.bits, self.time, self.config_version)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (stored with a submission)."""
        return {
            "epoch": self.epoch,
            "block_hash_hex": self.block_hash_hex,
            "bits": self.bits,
            "time": self.time,
            "config_version": self.config_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            epoch=int(data["epoch"]),
            block_hash_hex=str(data["block_hash_hex"]),
            bits=int(data["bits"]),
            time=int(data["time"]),
            config_version=int(data["config_version"]),
        )


def typed_data(report: Report, *, chain_id: int, contract_address: str) -> dict[str, Any]:
    """The full EIP-712 message (types, primaryType, domain, message) for eth-account."""
    return {
        "types": REPORT_TYPES,
        "primaryType": "Report",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(contract_address),
        },
        "message": report.message(),
    }


@dataclass(frozen=True, slots=True)
class ReportSignature:
    """One operator's 65-byte (r, s, v) signature over a report."""

    signer: str  # checksum address
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.signature) != SIGNATURE_SIZE:
            raise InputError(f"a signature is {SIGNATURE_SIZE} bytes, got {len(self.signature)}")


def recover_signer(
    report: Report, signature: bytes, *, chain_id: int, contract_address: str
) -> str:
    """The address that produced ``signature`` over ``report`` in this domain."""
    message = typed_data(report, chain_id=chain_id, contract_address=contract_address)
    signable = encode_typed_data(full_message=message)
    return str(Account.recover_message(signable, signature=signature))


def pack_signatures(signatures: Iterable[ReportSignature]) -> bytes:
    """Concatenate signatures in strictly ascending signer order, as ``submit`` requires."""
    ordered = sorted(signatures, key=lambda item: int(item.signer, 16))
    for before, after in itertools.pairwise(ordered):
        if int(before.signer, 16) == int(after.signer, 16):
            raise InputError(f"signer {after.signer} signed twice")
    return b"".join(item.signature for item in ordered)


class KeystoreAccount:
    """An operator or sender key loaded from an encrypted keystore; the key never leaves.

    ``sign_report`` signs EIP-712 reports, ``sign_transaction`` signs EVM
    transactions. ``repr`` and every error mention the address only.
    """

    __slots__ = ("__account", "address")

    def __init__(self, private_key: bytes) -> None:
        account = Account.from_key(private_key)
        self.__account = account
        self.address: ChecksumAddress = to_checksum_address(account.address)

    def __repr__(self) -> str:
        return f"KeystoreAccount({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickled (pickling would copy the key out)
        raise TypeError("KeystoreAccount cannot be pickled")

    def sign_report(
        self, report: Report, *, chain_id: int, contract_address: str
    ) -> ReportSignature:
        signable = encode_typed_data(
            full_message=typed_data(report, chain_id=chain_id, contract_address=contract_address)
        )
        signed = self.__account.sign_message(signable)
        return ReportSignature(signer=self.address, signature=bytes(signed.signature))

    def sign_transaction(self, transaction: Mapping[str, Any]) -> tuple[bytes, str]:
        """Sign an EIP-1559 transaction dict; return (raw bytes, tx hash hex with 0x)."""
        signed = self.__account.sign_transaction(dict(transaction))
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()


def load_keystore(path: str | Path, password: Secret | str) -> KeystoreAccount:
    """Decrypt one keystore JSON file; errors name the file, never the password or key."""
    path = Path(path)
    try:
        keyfile = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"keystore {path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError:
        raise ConfigError(f"keystore {path}: not a JSON keystore") from None
    secret = password.reveal() if isinstance(password, Secret) else password
    if not secret:
        raise ConfigError(f"keystore {path}: no password given (environment or password file)")
    try:
        private_key = Account.decrypt(keyfile, secret)
    except (ValueError, KeyError, TypeError):
        # eth-keyfile raises ValueError("MAC mismatch") etc.; its text carries no secret,
        # but we replace it anyway so no library message can leak into logs.
        raise ConfigError(f"keystore {path}: wrong password or corrupt keystore") from None
    return KeystoreAccount(bytes(private_key))


def load_keystores(paths: Iterable[str | Path], password: Secret | str) -> list[KeystoreAccount]:
    """Decrypt several keystores with one password (the operator's signer set on this host)."""
    return [load_keystore(path, password) for path in paths]


def write_keystore(
    path: str | Path, private_key: bytes, password: str, *, kdf_iterations: int | None = None
) -> str:
    """Encrypt ``private_key`` into a scrypt keystore file; returns the address.

    ``kdf_iterations`` (scrypt n, a power of two) lowers the KDF cost for tests only.
    """
    kwargs: dict[str, Any] = {"iterations": kdf_iterations} if kdf_iterations else {}
    keyfile = Account.encrypt(private_key, password, kdf="scrypt", **kwargs)
    Path(path).write_text(json.dumps(keyfile), encoding="utf-8")
    return str(to_checksum_address("0x" + str(keyfile["address"])))
