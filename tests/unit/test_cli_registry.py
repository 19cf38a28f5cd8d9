"""The CLI imports only the module that owns the command being run; the table must be complete."""

from __future__ import annotations

import argparse
import importlib

import pytest

from oracle.cli import COMMAND_MODULES, COMMAND_OWNERS, build_parser


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_registered_command_has_its_owner(module: str) -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(f"oracle.commands.{module}").register(subparsers)
    assert subparsers.choices, module
    for name in subparsers.choices:
        assert COMMAND_OWNERS.get(name) == module, f"{name} (registered by {module})"


def test_full_parser_lists_every_owned_command() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_OWNERS)


def test_contract_subcommands_include_the_timelocked_governance() -> None:
    parser = build_parser(("contract",))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    contract = sub.choices["contract"]
    commands = next(a for a in contract._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {
        "deploy", "status", "schedule-signers", "execute-signers", "schedule-reanchor",
        "execute-reanchor", "cancel", "pause", "unpause",
    }  # fmt: skip
    deploy = parser.parse_args(["contract", "deploy", "--signers", "x", "--threshold", "1",
                                "--owner", "y"])  # fmt: skip
    assert (deploy.network, deploy.genesis) == (None, None)
    assert (deploy.challenge_window, deploy.governance_delay) == ("43200", "259200")
