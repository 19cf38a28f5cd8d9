"""DifficultyOracle v2 on a real anvil node: acceptance, signature, replay and header refusals,
pause and ownership, each refusal with its custom error and arguments.

Mainnet cases use real headers (tests/data) on an oracle anchored at epoch 399; cases that
need headers with chosen fields use a regtest-mode oracle (dev chain only), for which the
tests mine real headers in Python. Chain-binding attacks are in test_contract_proof.py,
governance and deployment in test_contract_governance.py, replacement and finality in
test_contract_finality.py. Each test runs between evm_snapshot and evm_revert, so the
module deploys once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from oracle.bitcoin.difficulty import NETWORKS, bits_to_target
from oracle.bitcoin.header import parse_header
from oracle.publish.anchor import mainnet_genesis
from oracle.publish.contract import ContractReverted, OracleContract
from oracle.publish.signing import Report, recover_signer
from tests.fixtures.anvil import (
    CHAIN_ID,
    REGTEST_BITS,
    OnChain,
    header_hash_le,
    mainnet_proof,
    mainnet_report,
    regtest_genesis,
    regtest_header,
    report_for,
)

pytestmark = pytest.mark.anvil

GENESIS = 399
EPOCH = 400
REGTEST_GENESIS = 20
#: Regtest-mode genesis time: far enough in the past for any header the tests mine.
T0 = 1_700_000_000


@dataclass
class Deployed:
    mainnet: OracleContract
    twin: OracleContract  # a second mainnet deployment (another verifyingContract)
    regtest: OracleContract


@pytest.fixture(scope="module")
async def deployed(onchain: OnChain) -> Deployed:
    return Deployed(
        mainnet=await onchain.deploy(genesis=mainnet_genesis(GENESIS)),
        twin=await onchain.deploy(genesis=mainnet_genesis(GENESIS)),
        regtest=await onchain.deploy(
            genesis=regtest_genesis(REGTEST_GENESIS, T0), network="regtest"
        ),
    )


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, deployed: Deployed) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


async def refused(
    oracle: OracleContract,
    report: Report,
    signatures: bytes,
    proof: bytes,
    sender: str,
    function: str = "submit",
) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await oracle.simulate_submit(report, signatures, proof, sender=sender, function=function)
    return caught.value


async def signed_refusal(
    onchain: OnChain, oracle: OracleContract, report: Report, proof: bytes
) -> ContractReverted:
    """Submit correctly signed ``report`` with ``proof``; the refusal must come from the proof."""
    signatures = onchain.sign(report, onchain.accounts.signers[:3], oracle.address)
    return await refused(oracle, report, signatures, proof, onchain.accounts.deployer.address)


@pytest.fixture
def me(onchain: OnChain) -> str:
    return str(onchain.accounts.deployer.address)


def regtest_pair(salt: int, *, bits: int = REGTEST_BITS) -> tuple[bytes, bytes]:
    """A regtest-mode proof for epoch REGTEST_GENESIS + 1 whose retarget header has ``bits``."""
    last = regtest_header(bits=REGTEST_BITS, time=T0 + 1_000_000, salt=salt)
    retarget = regtest_header(
        bits=bits, time=T0 + 1_209_600, prev_hash_le=header_hash_le(last), salt=salt + 1
    )
    return last, retarget


# ------------------------------------------------------------------ acceptance


async def test_a_real_mainnet_retarget_is_accepted_and_stored(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.mainnet
    report = mainnet_report(EPOCH)
    signers = onchain.accounts.signers
    chosen = [signers[1], signers[3], signers[4]]
    receipt = await onchain.submit(oracle, report, mainnet_proof(EPOCH), chosen)
    assert receipt["status"] == 1
    header = parse_header(mainnet_proof(EPOCH)[80:])
    stored = await oracle.retarget(EPOCH)
    assert stored is not None
    assert (stored.block_hash_hex, stored.bits, stored.time) == (
        header.block_hash_hex,
        header.bits,
        header.time,
    )
    assert await oracle.latest_epoch() == EPOCH
    assert await oracle.first_epoch() == GENESIS
    (log,) = oracle.contract.events.ReportAccepted().process_receipt(receipt)
    assert dict(log["args"]) == {
        "epoch": EPOCH,
        "blockHash": bytes.fromhex(header.block_hash_hex),
        "bits": header.bits,
        "time": header.time,
        "submitter": onchain.accounts.deployer.address,
        "signerBitmap": 0b11010,  # signers()[1], [3] and [4]
    }


async def test_the_contract_digest_is_the_eip712_digest_eth_account_signs(
    deployed: Deployed,
) -> None:
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    from oracle.publish.signing import typed_data

    for version in (1, 7):
        report = mainnet_report(EPOCH, version)
        message = typed_data(report, chain_id=CHAIN_ID, contract_address=deployed.mainnet.address)
        expected = _hash_eip191_message(encode_typed_data(full_message=message))
        assert await deployed.mainnet.report_digest(report) == expected


# ------------------------------------------------------------------ signature refusals


async def test_too_few_signatures(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = mainnet_report(EPOCH)
    signatures = onchain.sign(report, onchain.accounts.signers[:2], deployed.mainnet.address)
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("TooFewSignatures", {"count": 2, "threshold": 3})


async def test_unknown_signer(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = mainnet_report(EPOCH)
    outsider = onchain.accounts.outsider
    signatures = onchain.sign(
        report, [*onchain.accounts.signers[:2], outsider], deployed.mainnet.address
    )
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("UnknownSigner", {"signer": outsider.address})


async def test_duplicate_signer(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = mainnet_report(EPOCH)
    first, second = onchain.accounts.signers[:2]
    signatures = onchain.sign(report, [first, second, second], deployed.mainnet.address, sort=False)
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("DuplicateSigner", {"signer": second.address})


async def test_unsorted_signers(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = mainnet_report(EPOCH)
    descending = list(reversed(onchain.accounts.signers[:3]))
    signatures = onchain.sign(report, descending, deployed.mainnet.address, sort=False)
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert error.name == "SignersNotAscending"
    assert error.args_by_name == {
        "previous": descending[0].address,
        "signer": descending[1].address,
    }


def _recovered_under_this_domain(
    report: Report, wrong: list[Any], contract_address: str
) -> list[tuple[str, Any]]:
    return sorted(
        (
            recover_signer(
                report, w.signature, chain_id=CHAIN_ID, contract_address=contract_address
            ),
            w,
        )
        for w in wrong
    )


async def test_wrong_chain_id_recovers_to_an_unauthorised_address(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    """chainId is in the EIP-712 domain: a signature for chain 1 recovers, under this chain's
    domain, to some other address, which the contract refuses as UnknownSigner."""
    report = mainnet_report(EPOCH)
    address = deployed.mainnet.address
    wrong = [
        s.sign_report(report, chain_id=1, contract_address=address)
        for s in onchain.accounts.signers[:3]
    ]
    recovered = _recovered_under_this_domain(report, wrong, address)
    signatures = b"".join(w.signature for _, w in recovered)
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("UnknownSigner", {"signer": recovered[0][0]})
    assert recovered[0][0] not in {s.address for s in onchain.accounts.signers}


async def test_wrong_contract_recovers_to_an_unauthorised_address(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    """A report signed for another deployment (verifyingContract) is refused here."""
    report = mainnet_report(EPOCH)
    other = deployed.twin.address
    wrong = [
        s.sign_report(report, chain_id=CHAIN_ID, contract_address=other)
        for s in onchain.accounts.signers[:3]
    ]
    recovered = _recovered_under_this_domain(report, wrong, deployed.mainnet.address)
    signatures = b"".join(w.signature for _, w in recovered)
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("UnknownSigner", {"signer": recovered[0][0]})
    # ...while the same signatures are good on the deployment they were made for.
    in_order = sorted(wrong, key=lambda w: int(w.signer, 16))
    await deployed.twin.simulate_submit(
        report, b"".join(w.signature for w in in_order), mainnet_proof(EPOCH), sender=me
    )


async def test_malleated_high_s_signature_is_invalid(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    report = mainnet_report(EPOCH)
    signatures = bytearray(
        onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)
    )
    s_value = int.from_bytes(signatures[32:64], "big")
    signatures[32:64] = (secp256k1_n - s_value).to_bytes(32, "big")
    signatures[64] = 55 - signatures[64]  # 27 <-> 28
    error = await refused(deployed.mainnet, report, bytes(signatures), mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("InvalidSignature", {"index": 0})


async def test_signatures_not_a_multiple_of_65_bytes(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    report = mainnet_report(EPOCH)
    signatures = onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)[:-1]
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("MalformedSignatures", {"length": 194})


async def test_signatures_under_another_config_version_are_stale(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    """The report carries the signer-configuration version: a report (and its signatures)
    for any other version is refused before a signature is even recovered."""
    report = mainnet_report(EPOCH, config_version=2)
    error = await signed_refusal(onchain, deployed.mainnet, report, mainnet_proof(EPOCH))
    assert (error.name, error.args_by_name) == (
        "StaleSignerConfig",
        {"signedVersion": 2, "currentVersion": 1},
    )
    # Signatures over version 1 do not carry over to a report claiming version 2.
    good = onchain.sign(
        mainnet_report(EPOCH), onchain.accounts.signers[:3], deployed.mainnet.address
    )
    error = await refused(deployed.mainnet, report, good, mainnet_proof(EPOCH), me)
    assert error.name == "StaleSignerConfig"


# ------------------------------------------------------------------ replay and order refusals


async def test_replayed_report_is_refused(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = mainnet_report(EPOCH)
    signatures = onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)
    await onchain.transact(
        deployed.mainnet, "submit", report.as_tuple(), signatures, mainnet_proof(EPOCH)
    )
    error = await refused(deployed.mainnet, report, signatures, mainnet_proof(EPOCH), me)
    assert (error.name, error.args_by_name) == ("ReportAlreadyAccepted", {"epoch": EPOCH})
    genesis = mainnet_report(GENESIS)
    error = await signed_refusal(onchain, deployed.mainnet, genesis, mainnet_proof(GENESIS))
    assert (error.name, error.args_by_name) == ("ReportAlreadyAccepted", {"epoch": GENESIS})


async def test_a_different_block_for_a_stored_epoch_is_refused(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.mainnet
    await onchain.submit(oracle, mainnet_report(EPOCH), mainnet_proof(EPOCH))
    for epoch in (EPOCH, GENESIS):
        rival = replace(mainnet_report(epoch), block_hash_hex="00" * 31 + "01")
        error = await signed_refusal(onchain, oracle, rival, mainnet_proof(epoch))
        assert (error.name, error.args_by_name) == (
            "EpochAlreadyStored",
            {
                "epoch": epoch,
                "storedBlockHash": bytes.fromhex(mainnet_report(epoch).block_hash_hex),
            },
        )


@pytest.mark.parametrize("epoch", [EPOCH + 1, GENESIS - 1, 1])
async def test_only_the_next_epoch_can_be_submitted(
    onchain: OnChain, deployed: Deployed, epoch: int
) -> None:
    error = await signed_refusal(
        onchain, deployed.mainnet, mainnet_report(epoch), mainnet_proof(epoch)
    )
    assert (error.name, error.args_by_name) == (
        "EpochNotNext",
        {"epoch": epoch, "latestEpoch": GENESIS},
    )


# ------------------------------------------------------------------ header refusals


async def test_reported_hash_not_the_retarget_header(onchain: OnChain, deployed: Deployed) -> None:
    report = mainnet_report(EPOCH)
    lying = replace(report, block_hash_hex=mainnet_report(EPOCH + 1).block_hash_hex)
    error = await signed_refusal(onchain, deployed.mainnet, lying, mainnet_proof(EPOCH))
    assert error.name == "HeaderHashMismatch"
    assert error.args_by_name == {
        "reported": bytes.fromhex(lying.block_hash_hex),
        "computed": bytes.fromhex(report.block_hash_hex),
    }


@pytest.mark.parametrize("length", [80, 159, 161, 0])
async def test_proof_of_the_wrong_length(onchain: OnChain, deployed: Deployed, length: int) -> None:
    proof = (mainnet_proof(EPOCH) + b"\x00")[:length]
    error = await signed_refusal(onchain, deployed.mainnet, mainnet_report(EPOCH), proof)
    assert (error.name, error.args_by_name) == ("BadProofLength", {"length": length})


async def test_retarget_header_not_meeting_its_bits(onchain: OnChain, deployed: Deployed) -> None:
    # The real retarget header with another nonce: it still links, but no longer meets its bits.
    proof = mainnet_proof(EPOCH)
    nonce = parse_header(proof[80:]).nonce
    raw = proof[80:156] + struct.pack("<I", (nonce + 1) % 2**32)
    header = parse_header(raw)
    assert header.block_hash_int > bits_to_target(header.bits)
    error = await signed_refusal(
        onchain, deployed.mainnet, Report.for_epoch(EPOCH, header, 1), proof[:80] + raw
    )
    assert (error.name, error.args_by_name) == (
        "InsufficientProofOfWork",
        {"blockHash": bytes.fromhex(header.block_hash_hex), "target": bits_to_target(header.bits)},
    )


async def test_bits_not_matching_the_header(onchain: OnChain, deployed: Deployed) -> None:
    report = mainnet_report(EPOCH)
    error = await signed_refusal(
        onchain, deployed.mainnet, replace(report, bits=report.bits + 1), mainnet_proof(EPOCH)
    )
    assert (error.name, error.args_by_name) == (
        "BitsMismatch",
        {"reported": report.bits + 1, "header": report.bits},
    )


async def test_time_not_matching_the_header(onchain: OnChain, deployed: Deployed) -> None:
    report = mainnet_report(EPOCH)
    error = await signed_refusal(
        onchain, deployed.mainnet, replace(report, time=report.time - 1), mainnet_proof(EPOCH)
    )
    assert (error.name, error.args_by_name) == (
        "TimeMismatch",
        {"reported": report.time - 1, "header": report.time},
    )


@pytest.mark.parametrize("bits", [0x04923456, 0x23000001, 0x01003456, 0x00000000])
async def test_invalid_bits_in_the_retarget_header(
    onchain: OnChain, deployed: Deployed, bits: int
) -> None:
    """Negative, overflowing and zero targets, rejected like oracle.bitcoin.difficulty."""
    last, _ = regtest_pair(1)
    raw = struct.pack("<i32s32sIII", 1, header_hash_le(last), b"\x01" * 32, T0 + 1_209_600, bits, 0)
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, raw), last + raw
    )
    assert (error.name, error.args_by_name) == ("InvalidBits", {"bits": bits})


async def test_target_above_pow_limit(onchain: OnChain, deployed: Deployed) -> None:
    last, raw = regtest_pair(1, bits=0x2100FFFF)  # target ~2^256 > regtest's powLimit
    error = await signed_refusal(
        onchain, deployed.regtest, report_for(REGTEST_GENESIS + 1, raw), last + raw
    )
    assert (error.name, error.args_by_name) == (
        "TargetAbovePowLimit",
        {"target": bits_to_target(0x2100FFFF), "powLimit": NETWORKS["regtest"].pow_limit},
    )


async def test_a_regtest_mode_proof_is_accepted(onchain: OnChain, deployed: Deployed) -> None:
    last, raw = regtest_pair(1)
    await onchain.submit(deployed.regtest, report_for(REGTEST_GENESIS + 1, raw), last + raw)
    stored = await deployed.regtest.retarget(REGTEST_GENESIS + 1)
    assert stored is not None
    assert (stored.block_hash_hex, stored.bits, stored.time) == (
        parse_header(raw).block_hash_hex,
        REGTEST_BITS,
        T0 + 1_209_600,
    )


# ------------------------------------------------------------------ pause and owner


async def owner_refusal(
    onchain: OnChain, oracle: OracleContract, function: str, *args: Any, sender: Any
) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await onchain.transact(oracle, function, *args, sender=sender)
    return caught.value


async def test_paused_oracle_refuses_reports(onchain: OnChain, deployed: Deployed) -> None:
    oracle = deployed.mainnet
    receipt = await onchain.transact(oracle, "pause")
    (log,) = oracle.contract.events.Paused().process_receipt(receipt)
    assert log["args"]["account"] == onchain.accounts.deployer.address
    assert (await oracle.status()).paused
    error = await signed_refusal(onchain, oracle, mainnet_report(EPOCH), mainnet_proof(EPOCH))
    assert (error.name, error.args_by_name) == ("EnforcedPause", {})
    error = await owner_refusal(onchain, oracle, "pause", sender=onchain.accounts.deployer)
    assert error.name == "EnforcedPause"
    await onchain.transact(oracle, "unpause")
    error = await owner_refusal(onchain, oracle, "unpause", sender=onchain.accounts.deployer)
    assert error.name == "ExpectedPause"
    await onchain.submit(oracle, mainnet_report(EPOCH), mainnet_proof(EPOCH))
    assert await oracle.latest_epoch() == EPOCH


async def test_two_step_ownership_transfer(onchain: OnChain, deployed: Deployed) -> None:
    oracle = deployed.mainnet
    accounts = onchain.accounts
    await onchain.transact(oracle, "transferOwnership", accounts.new_owner.address)
    status = await oracle.status()
    assert (status.owner, status.pending_owner) == (
        accounts.deployer.address,
        accounts.new_owner.address,
    )
    error = await owner_refusal(onchain, oracle, "acceptOwnership", sender=accounts.outsider)
    assert (error.name, error.args_by_name) == (
        "NotPendingOwner",
        {"caller": accounts.outsider.address},
    )
    await onchain.transact(oracle, "acceptOwnership", sender=accounts.new_owner)
    status = await oracle.status()
    assert (status.owner, status.pending_owner) == (accounts.new_owner.address, None)
    error = await owner_refusal(onchain, oracle, "pause", sender=accounts.deployer)
    assert (error.name, error.args_by_name) == ("NotOwner", {"caller": accounts.deployer.address})
    await onchain.transact(oracle, "pause", sender=accounts.new_owner)
    assert (await oracle.status()).paused


@pytest.mark.parametrize(
    ("function", "args"),
    [
        ("scheduleSignerConfig", (["0x" + "11" * 20], 1)),
        ("scheduleReanchor", None),
        ("cancel", (b"\x01" * 32,)),
        ("pause", ()),
        ("unpause", ()),
        ("transferOwnership", ("0x" + "22" * 20,)),
    ],
)
async def test_owner_functions_refuse_others(
    onchain: OnChain, deployed: Deployed, function: str, args: tuple[Any, ...] | None
) -> None:
    if args is None:
        genesis = mainnet_genesis(GENESIS)
        args = (genesis.as_tuple(), list(genesis.seed_bits))
    error = await owner_refusal(
        onchain, deployed.mainnet, function, *args, sender=onchain.accounts.outsider
    )
    assert (error.name, error.args_by_name) == (
        "NotOwner",
        {"caller": onchain.accounts.outsider.address},
    )
