"""EIP-712 report signing and keystore handling.

The digest eth-account signs is checked against an EIP-712 encoding written out
here by hand from the spec (keccak of the type strings and ABI-encoded fields),
so the typed-data definition in oracle/publish/signing.py is tested, not
assumed. Keys are only ever loaded from encrypted keystores and never appear
in reprs or error messages.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak

from oracle.bitcoin.difficulty import bits_to_target
from oracle.bitcoin.header import parse_header
from oracle.config import Secret, read_secret
from oracle.errors import ConfigError, InputError
from oracle.publish.signing import (
    Report,
    ReportSignature,
    load_keystore,
    pack_signatures,
    recover_signer,
    typed_data,
    write_keystore,
)

PASSWORD = "a keystore password"  # test keystores only
CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def _mainnet_row(epoch: int) -> dict[str, str]:
    import csv

    path = Path(__file__).resolve().parents[1] / "data" / "epoch_boundary_headers_0_832608.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["role"] == "first" and int(row["epoch"]) == epoch:
                return row
    raise LookupError(epoch)


def _mainnet_header(epoch: int) -> bytes:
    return bytes.fromhex(_mainnet_row(epoch)["header_hex"])


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    key = bytes(Account.create().key)
    path = tmp_path_factory.mktemp("keys") / "signer.json"
    write_keystore(path, key, PASSWORD, kdf_iterations=2**10)
    return path, key


def _manual_digest(report: Report, chain_id: int, contract: str) -> bytes:
    domain_type = (
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    report_type = (
        b"Report(uint32 epoch,bytes32 blockHash,uint32 bits,uint32 time,uint32 configVersion)"
    )
    domain = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [keccak(domain_type), keccak(b"BmeDifficultyOracle"), keccak(b"2"), chain_id, contract],
        )
    )
    struct = keccak(
        abi_encode(
            ["bytes32", "uint32", "bytes32", "uint32", "uint32", "uint32"],
            [
                keccak(report_type),
                report.epoch,
                bytes.fromhex(report.block_hash_hex),
                report.bits,
                report.time,
                report.config_version,
            ],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


def test_report_hash_is_display_order_the_number_compared_with_the_target() -> None:
    header = parse_header(_mainnet_header(400))
    report = Report.for_epoch(400, header, 3)
    # The recorded block hash (RPC display order) from the data file, not from our parser.
    assert report.block_hash_hex == _mainnet_row(400)["hash"]
    assert int.from_bytes(report.block_hash, "big") <= bits_to_target(report.bits)
    assert report.as_tuple() == (400, report.block_hash, header.bits, header.time, 3)
    assert Report.from_dict(report.as_dict()) == report


def test_eip712_digest_matches_the_spec_encoding() -> None:
    digests = set()
    for version in (1, 2):
        report = Report.for_epoch(400, parse_header(_mainnet_header(400)), version)
        for chain_id in (1, 31337):
            signable = encode_typed_data(
                full_message=typed_data(report, chain_id=chain_id, contract_address=CONTRACT)
            )
            digest = _hash_eip191_message(signable)
            assert digest == _manual_digest(report, chain_id, CONTRACT)
            digests.add(digest)
    assert len(digests) == 4  # the configuration version is signed: no digest is shared


def test_sign_and_recover(keystore: tuple[Path, bytes]) -> None:
    path, key = keystore
    account = load_keystore(path, Secret(PASSWORD))
    assert account.address == Account.from_key(key).address
    report = Report.for_epoch(400, parse_header(_mainnet_header(400)), 1)
    signed = account.sign_report(report, chain_id=31337, contract_address=CONTRACT)
    assert len(signed.signature) == 65
    assert (
        recover_signer(report, signed.signature, chain_id=31337, contract_address=CONTRACT)
        == account.address
    )
    # The same signature is worthless for another chain or contract.
    assert (
        recover_signer(report, signed.signature, chain_id=1, contract_address=CONTRACT)
        != account.address
    )
    # ...or for another signer-configuration version.
    newer = Report.for_epoch(400, parse_header(_mainnet_header(400)), 2)
    assert (
        recover_signer(newer, signed.signature, chain_id=31337, contract_address=CONTRACT)
        != account.address
    )
    other = "0x" + "11" * 20
    assert (
        recover_signer(report, signed.signature, chain_id=31337, contract_address=other)
        != account.address
    )


def test_keys_never_show(keystore: tuple[Path, bytes]) -> None:
    path, key = keystore
    account = load_keystore(path, PASSWORD)
    for text in (repr(account), str(account), f"{account}"):
        assert key.hex() not in text and account.address in text
    assert not any(
        key.hex() in repr(getattr(account, name, ""))
        for name in dir(account)
        if not name.startswith("_")
    )
    with pytest.raises(TypeError):
        pickle.dumps(account)


def test_wrong_or_missing_password_is_a_config_error_without_secrets(
    keystore: tuple[Path, bytes],
) -> None:
    path, key = keystore
    with pytest.raises(ConfigError) as caught:
        load_keystore(path, "not the password")
    message = str(caught.value)
    assert (
        "wrong password" in message
        and "not the password" not in message
        and key.hex() not in message
    )
    with pytest.raises(ConfigError, match="no password"):
        load_keystore(path, Secret(""))
    with pytest.raises(ConfigError, match="cannot read"):
        load_keystore(path.with_name("missing.json"), PASSWORD)
    broken = path.with_name("broken.json")
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a JSON keystore"):
        load_keystore(broken, PASSWORD)


def test_password_from_a_file(keystore: tuple[Path, bytes], tmp_path: Path) -> None:
    path, _ = keystore
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    secret = read_secret(Secret(""), str(password_file), "publisher.keystore_password")
    assert repr(secret) == "Secret('***')"
    keyfile_address = json.loads(path.read_text(encoding="utf-8"))["address"].lower()
    assert load_keystore(path, secret).address.lower() == "0x" + keyfile_address


def test_pack_signatures_sorts_by_signer_and_refuses_duplicates() -> None:
    a = ReportSignature(signer="0x" + "0a" * 20, signature=b"\x01" * 65)
    b = ReportSignature(signer="0x" + "0B" * 20, signature=b"\x02" * 65)
    c = ReportSignature(signer="0x" + "ff" * 20, signature=b"\x03" * 65)
    assert pack_signatures([c, a, b]) == b"\x01" * 65 + b"\x02" * 65 + b"\x03" * 65
    with pytest.raises(InputError, match="twice"):
        pack_signatures([a, b, ReportSignature(signer="0x" + "0A" * 20, signature=b"\x04" * 65)])
    with pytest.raises(InputError):
        ReportSignature(signer=a.signer, signature=b"\x01" * 64)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epoch", -1),
        ("epoch", 2**32),
        ("bits", True),
        ("time", 1.5),
        ("config_version", -1),
        ("config_version", 2**32),
        ("block_hash_hex", "AB" * 32),
        ("block_hash_hex", "ab"),
    ],
)
def test_report_refuses_malformed_fields(field: str, value: object) -> None:
    fields = {
        "epoch": 1,
        "block_hash_hex": "ab" * 32,
        "bits": 0x1D00FFFF,
        "time": 1,
        "config_version": 1,
    }
    fields[field] = value
    with pytest.raises(InputError):
        Report(**fields)  # type: ignore[arg-type]
