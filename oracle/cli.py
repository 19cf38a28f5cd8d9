"""The ``bme-oracle`` command line.

Each command group lives in ``oracle/commands/<group>.py`` and exposes
``register(subparsers)``; this module only assembles them, maps deliberate
errors to exit status 2 with a one-line message on stderr, and never shows a
traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from oracle.errors import OracleError
from oracle.sources.boundedjson import restore_recursion_limit

#: Modules in ``oracle.commands`` that contribute subcommands (order = help order).
COMMAND_MODULES = ("mathcmds", "db", "watch", "contract", "daemon")
#: Which module owns each command, so a command imports only its own module: ``db`` pulls in
#: SQLAlchemy and Alembic, ``contract`` web3 (seconds of imports the math commands never need).
COMMAND_OWNERS = {
    "index": "mathcmds",
    "retarget": "mathcmds",
    "token": "mathcmds",
    "price": "mathcmds",
    "hedge": "mathcmds",
    "db": "db",
    "watch": "watch",
    "contract": "contract",
    "publish": "contract",
    "run": "daemon",
    "replay": "daemon",
    "dev": "daemon",
}

EXIT_BAD_INPUT = 2


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 with usage; keep that
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"bme-oracle: error: {message}\n")


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="bme-oracle",
        description="Bitcoin difficulty oracle: retargets, BME indices, on-chain publication.",
    )
    from oracle import __version__

    parser.add_argument("--version", action="version", version=f"bme-oracle {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_ArgumentParser
    )
    subparsers.required = True
    for name in modules:
        try:
            module = importlib.import_module(f"oracle.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"oracle.commands.{name}":
                continue  # command group not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    owner = COMMAND_OWNERS.get(argv[0]) if argv else None
    parser = build_parser((owner,) if owner else COMMAND_MODULES)
    args = parser.parse_args(argv)
    # web3's dependency py_ecc raises the recursion limit to 100,000 when first imported,
    # and the C JSON decoder then overflows the C stack (SIGSEGV) on deeply nested input
    # from any library that parses JSON. Every entry point (the ``bme-oracle`` script,
    # ``python -m oracle``, the Docker image) runs this function before any command, so
    # import py_ecc here, once, and put the limit back. The math commands never import
    # web3 (nor read JSON from outside) and skip the ~30 ms import.
    restore_recursion_limit(preload=owner != "mathcmds")
    try:
        result = args.handler(args)
    except OracleError as exc:
        print(f"bme-oracle: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
