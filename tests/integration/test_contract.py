"""DifficultyOracle on a real anvil node: every refusal with its custom error, and owner actions.

Mainnet refusals use real retarget headers (mainnet powLimit); refusals that need
headers with chosen bits use a second deployment under an easy powLimit where
tests mine real headers in Python. Each test runs between evm_snapshot and
evm_revert, so the module deploys once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from oracle.bitcoin.difficulty import NETWORKS, bits_to_target, encode_compact
from oracle.bitcoin.header import parse_header
from oracle.publish.contract import ContractReverted, OracleContract
from oracle.publish.signing import Report, recover_signer
from tests.fixtures.anvil import (
    CHAIN_ID,
    OnChain,
    failing_header,
    mainnet_retarget_headers,
    regtest_header,
)

pytestmark = pytest.mark.anvil

MAINNET_POW_LIMIT = NETWORKS["mainnet"].pow_limit
#: An easy powLimit for mined test headers: 2^252 - 1 (targets above it are refused).
EASY_POW_LIMIT = (1 << 252) - 1
HEADERS = mainnet_retarget_headers()
EPOCH = 400


def report_for(epoch: int, raw: bytes) -> Report:
    return Report.for_epoch(epoch, parse_header(raw))


@dataclass
class Deployed:
    mainnet: OracleContract
    easy: OracleContract


@pytest.fixture(scope="module")
async def deployed(onchain: OnChain) -> Deployed:
    return Deployed(
        mainnet=await onchain.deploy(pow_limit=MAINNET_POW_LIMIT),
        easy=await onchain.deploy(pow_limit=EASY_POW_LIMIT),
    )


@pytest.fixture(autouse=True)
def isolated(onchain: OnChain, deployed: Deployed) -> Iterator[None]:
    snapshot = onchain.snapshot()
    try:
        yield
    finally:
        onchain.revert(snapshot)


async def refused(
    oracle: OracleContract, report: Report, signatures: bytes, header: bytes, sender: str
) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await oracle.simulate_submit(report, signatures, header, sender=sender)
    return caught.value


@pytest.fixture
def me(onchain: OnChain) -> str:
    return str(onchain.accounts.deployer.address)


# ------------------------------------------------------------------ acceptance


async def test_a_real_mainnet_retarget_is_accepted_and_stored(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.mainnet
    report = report_for(EPOCH, HEADERS[EPOCH])
    receipt = await onchain.submit(oracle, report, HEADERS[EPOCH])
    assert receipt["status"] == 1
    stored = await oracle.retarget(EPOCH)
    assert stored is not None
    assert (stored.block_hash_hex, stored.bits, stored.time) == (
        parse_header(HEADERS[EPOCH]).block_hash_hex,
        parse_header(HEADERS[EPOCH]).bits,
        parse_header(HEADERS[EPOCH]).time,
    )
    assert await oracle.latest_epoch() == EPOCH
    logs = oracle.contract.events.ReportAccepted().process_receipt(receipt)
    assert [(log["args"]["epoch"], log["args"]["blockHash"].hex()) for log in logs] == [
        (EPOCH, report.block_hash_hex)
    ]


async def test_the_contract_digest_is_the_eip712_digest_eth_account_signs(
    deployed: Deployed,
) -> None:
    from eth_account.messages import _hash_eip191_message, encode_typed_data

    from oracle.publish.signing import typed_data

    report = report_for(EPOCH, HEADERS[EPOCH])
    message = typed_data(report, chain_id=CHAIN_ID, contract_address=deployed.mainnet.address)
    expected = _hash_eip191_message(encode_typed_data(full_message=message))
    assert await deployed.mainnet.report_digest(report) == expected


async def test_early_block_hash_above_2_192_is_stored_in_full(
    onchain: OnChain, deployed: Deployed
) -> None:
    # Epoch 1's retarget block (difficulty 1) has a hash above 2^192: the second word is used.
    report = report_for(1, HEADERS[1])
    assert int(report.block_hash_hex, 16) >> 192 != 0
    await onchain.submit(deployed.mainnet, report, HEADERS[1])
    stored = await deployed.mainnet.retarget(1)
    assert stored is not None and stored.block_hash_hex == report.block_hash_hex


async def test_backfill_below_the_stored_run_is_accepted(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.mainnet
    for epoch in (EPOCH, EPOCH - 1, EPOCH + 1):
        await onchain.submit(oracle, report_for(epoch, HEADERS[epoch]), HEADERS[epoch])
    assert (await oracle.first_epoch(), await oracle.latest_epoch()) == (EPOCH - 1, EPOCH + 1)


# ------------------------------------------------------------------ signature refusals


async def test_too_few_signatures(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    signatures = onchain.sign(report, onchain.accounts.signers[:2], deployed.mainnet.address)
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name) == ("TooFewSignatures", {"count": 2, "threshold": 3})


async def test_unknown_signer(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    outsider = onchain.accounts.outsider
    signatures = onchain.sign(
        report, [*onchain.accounts.signers[:2], outsider], deployed.mainnet.address
    )
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert error.name == "UnknownSigner"
    assert error.args_by_name["signer"] == outsider.address


async def test_duplicate_signer(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    first, second = onchain.accounts.signers[:2]
    signatures = onchain.sign(report, [first, second, second], deployed.mainnet.address, sort=False)
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name) == ("DuplicateSigner", {"signer": second.address})


async def test_unsorted_signers(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    descending = list(reversed(onchain.accounts.signers[:3]))
    signatures = onchain.sign(report, descending, deployed.mainnet.address, sort=False)
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert error.name == "SignersNotAscending"
    assert error.args_by_name == {
        "previous": descending[0].address,
        "signer": descending[1].address,
    }


async def test_wrong_chain_id_recovers_to_an_unauthorised_address(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    """chainId is in the EIP-712 domain: a signature for chain 1 recovers, under this chain's
    domain, to some other address, which the contract refuses as UnknownSigner."""
    report = report_for(EPOCH, HEADERS[EPOCH])
    signers = onchain.accounts.signers[:3]
    wrong = [
        s.sign_report(report, chain_id=1, contract_address=deployed.mainnet.address)
        for s in signers
    ]
    recovered = sorted(
        (
            recover_signer(
                report, w.signature, chain_id=CHAIN_ID, contract_address=deployed.mainnet.address
            ),
            w,
        )
        for w in wrong
    )
    signatures = b"".join(w.signature for _, w in recovered)
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert error.name == "UnknownSigner"
    assert error.args_by_name["signer"] == recovered[0][0]
    assert recovered[0][0] not in {s.address for s in onchain.accounts.signers}


async def test_wrong_contract_recovers_to_an_unauthorised_address(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    """A report signed for another deployment (verifyingContract) is refused here."""
    report = report_for(EPOCH, HEADERS[EPOCH])
    other = deployed.easy.address
    wrong = [
        s.sign_report(report, chain_id=CHAIN_ID, contract_address=other)
        for s in onchain.accounts.signers[:3]
    ]
    recovered = sorted(
        (
            recover_signer(
                report, w.signature, chain_id=CHAIN_ID, contract_address=deployed.mainnet.address
            ),
            w,
        )
        for w in wrong
    )
    signatures = b"".join(w.signature for _, w in recovered)
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name["signer"]) == ("UnknownSigner", recovered[0][0])
    # ...while the same signatures are good on the deployment they were made for.
    in_order = sorted(wrong, key=lambda w: int(w.signer, 16))
    await deployed.easy.simulate_submit(
        report, b"".join(w.signature for w in in_order), HEADERS[EPOCH], sender=me
    )


async def test_malleated_high_s_signature_is_invalid(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    report = report_for(EPOCH, HEADERS[EPOCH])
    signatures = bytearray(
        onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)
    )
    s_value = int.from_bytes(signatures[32:64], "big")
    signatures[32:64] = (secp256k1_n - s_value).to_bytes(32, "big")
    signatures[64] = 55 - signatures[64]  # 27 <-> 28
    error = await refused(deployed.mainnet, report, bytes(signatures), HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name) == ("InvalidSignature", {"index": 0})


async def test_signatures_not_a_multiple_of_65_bytes(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    signatures = onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)[:-1]
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name) == ("MalformedSignatures", {"length": 194})


# ------------------------------------------------------------------ replay and storage refusals


async def test_replayed_report_is_refused(onchain: OnChain, deployed: Deployed, me: str) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    signatures = onchain.sign(report, onchain.accounts.signers[:3], deployed.mainnet.address)
    await onchain.transact(
        deployed.mainnet, "submit", report.as_tuple(), signatures, HEADERS[EPOCH]
    )
    error = await refused(deployed.mainnet, report, signatures, HEADERS[EPOCH], me)
    assert (error.name, error.args_by_name) == ("ReportAlreadyAccepted", {"epoch": EPOCH})


async def test_a_different_block_for_a_stored_epoch_is_refused(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    oracle = deployed.easy
    first = regtest_header(bits=0x2000FFFF, time=1_700_000_000, salt=1)
    await onchain.submit(oracle, report_for(7, first), first)
    rival = regtest_header(bits=0x2000FFFF, time=1_700_000_000, salt=2)
    report = report_for(7, rival)
    signatures = onchain.sign(report, onchain.accounts.signers[:3], oracle.address)
    error = await refused(oracle, report, signatures, rival, me)
    assert error.name == "EpochAlreadyStored"
    assert error.args_by_name == {
        "epoch": 7,
        "storedBlockHash": bytes.fromhex(parse_header(first).block_hash_hex),
    }


async def test_an_epoch_that_leaves_a_gap_is_refused(
    onchain: OnChain, deployed: Deployed, me: str
) -> None:
    oracle = deployed.mainnet
    await onchain.submit(oracle, report_for(EPOCH, HEADERS[EPOCH]), HEADERS[EPOCH])
    report = report_for(EPOCH + 2, HEADERS[EPOCH + 2])
    signatures = onchain.sign(report, onchain.accounts.signers[:3], oracle.address)
    error = await refused(oracle, report, signatures, HEADERS[EPOCH + 2], me)
    assert (error.name, error.args_by_name) == (
        "EpochNotContiguous",
        {"epoch": EPOCH + 2, "firstEpoch": EPOCH, "latestEpoch": EPOCH},
    )


# ------------------------------------------------------------------ header refusals


async def signed_refusal(
    onchain: OnChain, oracle: OracleContract, report: Report, header: bytes
) -> ContractReverted:
    """Submit correctly signed ``report`` with ``header``; the refusal must come from the header."""
    signatures = onchain.sign(report, onchain.accounts.signers[:3], oracle.address)
    return await refused(oracle, report, signatures, header, onchain.accounts.deployer.address)


async def test_header_with_the_wrong_hash(onchain: OnChain, deployed: Deployed) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    lying = replace(report, block_hash_hex=parse_header(HEADERS[EPOCH + 1]).block_hash_hex)
    error = await signed_refusal(onchain, deployed.mainnet, lying, HEADERS[EPOCH])
    assert error.name == "HeaderHashMismatch"
    assert error.args_by_name == {
        "reported": bytes.fromhex(lying.block_hash_hex),
        "computed": bytes.fromhex(report.block_hash_hex),
    }


async def test_header_of_the_wrong_length(onchain: OnChain, deployed: Deployed) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    error = await signed_refusal(onchain, deployed.mainnet, report, HEADERS[EPOCH] + b"\x00")
    assert (error.name, error.args_by_name) == ("BadHeaderLength", {"length": 81})


async def test_proof_of_work_not_met(onchain: OnChain, deployed: Deployed) -> None:
    # A real mainnet header with another nonce: it no longer meets its bits.
    raw = HEADERS[EPOCH][:76] + struct.pack("<I", (parse_header(HEADERS[EPOCH]).nonce + 1) % 2**32)
    header = parse_header(raw)
    assert header.block_hash_int > bits_to_target(header.bits)
    error = await signed_refusal(onchain, deployed.mainnet, Report.for_epoch(EPOCH, header), raw)
    assert error.name == "InsufficientProofOfWork"
    assert error.args_by_name == {
        "blockHash": bytes.fromhex(header.block_hash_hex),
        "target": bits_to_target(header.bits),
    }


async def test_mined_header_just_failing_its_bits(onchain: OnChain, deployed: Deployed) -> None:
    raw = failing_header(bits=0x1F00FFFF, time=1_700_000_000)
    error = await signed_refusal(onchain, deployed.easy, report_for(9, raw), raw)
    assert error.name == "InsufficientProofOfWork"


async def test_bits_not_matching_the_header(onchain: OnChain, deployed: Deployed) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    error = await signed_refusal(
        onchain, deployed.mainnet, replace(report, bits=report.bits + 1), HEADERS[EPOCH]
    )
    assert (error.name, error.args_by_name) == (
        "BitsMismatch",
        {"reported": report.bits + 1, "header": report.bits},
    )


async def test_time_not_matching_the_header(onchain: OnChain, deployed: Deployed) -> None:
    report = report_for(EPOCH, HEADERS[EPOCH])
    error = await signed_refusal(
        onchain, deployed.mainnet, replace(report, time=report.time - 1), HEADERS[EPOCH]
    )
    assert (error.name, error.args_by_name) == (
        "TimeMismatch",
        {"reported": report.time - 1, "header": report.time},
    )


@pytest.mark.parametrize("bits", [0x04923456, 0x23000001, 0x01003456, 0x00000000])
async def test_invalid_bits_in_the_header(onchain: OnChain, deployed: Deployed, bits: int) -> None:
    """Negative, overflowing and zero targets, rejected like oracle.bitcoin.difficulty."""
    raw = struct.pack("<i32s32sIII", 1, b"\x00" * 32, b"\x01" * 32, 1_700_000_000, bits, 0)
    error = await signed_refusal(onchain, deployed.easy, report_for(3, raw), raw)
    assert (error.name, error.args_by_name) == ("InvalidBits", {"bits": bits})


async def test_target_above_pow_limit(onchain: OnChain, deployed: Deployed) -> None:
    raw = regtest_header(bits=0x2010FFFF, time=1_700_000_000)  # target ~2^252.1 > 2^252 - 1
    error = await signed_refusal(onchain, deployed.easy, report_for(3, raw), raw)
    assert error.name == "TargetAbovePowLimit"
    assert error.args_by_name == {"target": bits_to_target(0x2010FFFF), "powLimit": EASY_POW_LIMIT}


@pytest.mark.parametrize(
    ("old_bits", "new_bits"),
    [
        (0x1F40FFFF, encode_compact(bits_to_target(0x1F40FFFF) * 4 + (1 << 232))),  # easier than 4x
        (
            0x1F40FFFF,
            encode_compact(bits_to_target(0x1F40FFFF) // 4 - (1 << 232)),
        ),  # harder than 1/4
    ],
)
async def test_difficulty_transition_beyond_the_quarter_to_four_bound(
    onchain: OnChain, deployed: Deployed, old_bits: int, new_bits: int
) -> None:
    oracle = deployed.easy
    old = regtest_header(bits=old_bits, time=1_700_000_000, salt=1)
    await onchain.submit(oracle, report_for(20, old), old)
    new = regtest_header(bits=new_bits, time=1_701_000_000, salt=2)
    error = await signed_refusal(onchain, oracle, report_for(21, new), new)
    assert (error.name, error.args_by_name) == (
        "DifficultyTransitionOutOfBounds",
        {"previousBits": old_bits, "nextBits": new_bits},
    )
    # Backfilling below the run checks the same bound in chain order.
    before = regtest_header(bits=new_bits, time=1_699_000_000, salt=3)
    error = await signed_refusal(onchain, oracle, report_for(19, before), before)
    assert (error.name, error.args_by_name) == (
        "DifficultyTransitionOutOfBounds",
        {"previousBits": new_bits, "nextBits": old_bits},
    )


async def test_exactly_four_times_easier_is_still_permitted(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.easy
    old = regtest_header(bits=0x1F40FFFF, time=1_700_000_000, salt=1)
    await onchain.submit(oracle, report_for(20, old), old)
    new_bits = encode_compact(bits_to_target(0x1F40FFFF) * 4)
    new = regtest_header(bits=new_bits, time=1_701_000_000, salt=2)
    await onchain.submit(oracle, report_for(21, new), new)
    assert await oracle.latest_epoch() == 21


async def test_header_time_must_increase_along_the_run(
    onchain: OnChain, deployed: Deployed
) -> None:
    oracle = deployed.easy
    old = regtest_header(bits=0x2000FFFF, time=1_700_000_000, salt=1)
    await onchain.submit(oracle, report_for(20, old), old)
    new = regtest_header(bits=0x2000FFFF, time=1_700_000_000, salt=2)
    error = await signed_refusal(onchain, oracle, report_for(21, new), new)
    assert (error.name, error.args_by_name) == (
        "TimeNotIncreasing",
        {"time": 1_700_000_000, "neighbourTime": 1_700_000_000},
    )


async def test_paused_oracle_refuses_reports(onchain: OnChain, deployed: Deployed) -> None:
    await onchain.transact(deployed.mainnet, "pause")
    assert (await deployed.mainnet.status()).paused
    error = await signed_refusal(
        onchain, deployed.mainnet, report_for(EPOCH, HEADERS[EPOCH]), HEADERS[EPOCH]
    )
    assert error.name == "EnforcedPause"
    await onchain.transact(deployed.mainnet, "unpause")
    await onchain.submit(deployed.mainnet, report_for(EPOCH, HEADERS[EPOCH]), HEADERS[EPOCH])
    assert await deployed.mainnet.latest_epoch() == EPOCH


# ------------------------------------------------------------------ owner


async def owner_refusal(
    onchain: OnChain, oracle: OracleContract, function: str, *args: Any, sender: Any
) -> ContractReverted:
    with pytest.raises(ContractReverted) as caught:
        await onchain.transact(oracle, function, *args, sender=sender)
    return caught.value


async def test_signer_rotation(onchain: OnChain, deployed: Deployed) -> None:
    oracle = deployed.mainnet
    accounts = onchain.accounts
    leaving = accounts.signers[0]
    joining = accounts.outsider
    await onchain.transact(oracle, "addSigner", joining.address)
    await onchain.transact(oracle, "removeSigner", leaving.address)
    status = await oracle.status()
    assert joining.address in status.signers and leaving.address not in status.signers
    report = report_for(EPOCH, HEADERS[EPOCH])
    old_set = onchain.sign(report, accounts.signers[:3], oracle.address)
    error = await refused(oracle, report, old_set, HEADERS[EPOCH], accounts.deployer.address)
    assert (error.name, error.args_by_name) == ("UnknownSigner", {"signer": leaving.address})
    await onchain.submit(oracle, report, HEADERS[EPOCH], [joining, *accounts.signers[1:3]])
    assert await oracle.latest_epoch() == EPOCH
    error = await owner_refusal(
        onchain, oracle, "addSigner", joining.address, sender=accounts.deployer
    )
    assert error.name == "SignerAlreadyAuthorised"
    error = await owner_refusal(
        onchain, oracle, "removeSigner", leaving.address, sender=accounts.deployer
    )
    assert error.name == "SignerNotAuthorised"


async def test_threshold_change(onchain: OnChain, deployed: Deployed) -> None:
    oracle = deployed.mainnet
    accounts = onchain.accounts
    await onchain.transact(oracle, "setThreshold", 2)
    assert (await oracle.status()).threshold == 2
    await onchain.submit(
        oracle, report_for(EPOCH, HEADERS[EPOCH]), HEADERS[EPOCH], accounts.signers[3:5]
    )
    await onchain.transact(oracle, "setThreshold", 5)
    report = report_for(EPOCH + 1, HEADERS[EPOCH + 1])
    signatures = onchain.sign(report, accounts.signers[:4], oracle.address)
    error = await refused(oracle, report, signatures, HEADERS[EPOCH + 1], accounts.deployer.address)
    assert (error.name, error.args_by_name) == ("TooFewSignatures", {"count": 4, "threshold": 5})
    for bad in (0, 6):
        error = await owner_refusal(onchain, oracle, "setThreshold", bad, sender=accounts.deployer)
        assert (error.name, error.args_by_name) == (
            "InvalidThreshold",
            {"threshold": bad, "signerCount": 5},
        )
    # Removing a signer may not leave fewer signers than the threshold.
    error = await owner_refusal(
        onchain, oracle, "removeSigner", accounts.signers[0].address, sender=accounts.deployer
    )
    assert (error.name, error.args_by_name) == (
        "InvalidThreshold",
        {"threshold": 5, "signerCount": 4},
    )


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
        ("addSigner", ("0x" + "11" * 20,)),
        ("removeSigner", None),
        ("setThreshold", (1,)),
        ("pause", ()),
        ("transferOwnership", ("0x" + "22" * 20,)),
    ],
)
async def test_owner_functions_refuse_others(
    onchain: OnChain, deployed: Deployed, function: str, args: tuple[Any, ...] | None
) -> None:
    if args is None:
        args = (onchain.accounts.signers[0].address,)
    error = await owner_refusal(
        onchain, deployed.mainnet, function, *args, sender=onchain.accounts.outsider
    )
    assert (error.name, error.args_by_name) == (
        "NotOwner",
        {"caller": onchain.accounts.outsider.address},
    )
