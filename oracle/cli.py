"""The ``bme-oracle`` command line.

Each command group lives in ``oracle/commands/<group>.py`` and exposes
``register(subparsers)``; this module only assembles them and, in one place
(``main``), turns what a command raises into an exit status and one line on stderr:

* 0 done; 1 ``replay`` found disputed epochs;
* 2 (as argparse) bad usage or input, an invalid configuration, a refusal: every
  deliberate ``OracleError`` that is not about reaching something;
* 69 (EX_UNAVAILABLE) a database, block source or EVM node that cannot be reached
  (``exit_status``: ``StoreUnavailable``, ``SourceUnavailable``, ``ChainUnavailable``,
  ``DaemonAlreadyRunning``, ``FeedFailed``);
* 70 (EX_SOFTWARE) anything else: a bug. Its traceback goes to the log as one JSON
  record (``"event": "internal_error"``, secrets scrubbed), never as a dump;
* 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NoReturn

from oracle.errors import (
    ChainUnavailable,
    DaemonAlreadyRunning,
    FeedFailed,
    OracleError,
    PublishError,
    SourceAuthFailed,
    SourceUnavailable,
    StoreUnavailable,
)
from oracle.sources.boundedjson import restore_recursion_limit

#: Modules in ``oracle.commands`` that contribute subcommands (order = help order).
COMMAND_MODULES = ("mathcmds", "db", "watch", "contract", "market", "daemon")
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
    "market": "market",
    "run": "daemon",
    "replay": "daemon",
    "dev": "daemon",
}

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE
EXIT_SOFTWARE = 70  # sysexits.h EX_SOFTWARE
EXIT_BROKEN_PIPE = 141  # what a shell reports for a writer killed by SIGPIPE
#: Errors that mean "could not reach it" (a wrong password is not one: fix the input).
UNREACHABLE: tuple[type[OracleError], ...] = (
    StoreUnavailable,
    SourceUnavailable,
    ChainUnavailable,
    DaemonAlreadyRunning,  # another daemon holds the database or the sender key: EX_UNAVAILABLE
    FeedFailed,  # every restart of a block feed failed: its source cannot be followed
)


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
        return exit_status(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``bme-oracle index | head``): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: logged with its traceback, and exit 70 says so
        log_internal_error(exc, argv[:1])
        print(
            f"bme-oracle: internal error (a bug; traceback in the log): "
            f"{type(exc).__name__}: {_first_line(exc)}",
            file=sys.stderr,
        )
        return EXIT_SOFTWARE
    return int(result or 0)


def exit_status(exc: OracleError) -> int:
    """69 for what could not be reached, 2 for every other deliberate error."""
    if isinstance(exc, UNREACHABLE) and not isinstance(exc, SourceAuthFailed):
        return EXIT_UNAVAILABLE
    if isinstance(exc, PublishError) and _connection_failure(exc):
        return EXIT_UNAVAILABLE  # raised ``from`` a refused, reset or timed-out connection
    return EXIT_BAD_INPUT


def _connection_failure(exc: BaseException) -> bool:
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, ConnectionError | TimeoutError):
            return True
        aiohttp = sys.modules.get("aiohttp")
        if aiohttp is not None and isinstance(cause, aiohttp.ClientConnectionError):
            return True
        cause = cause.__cause__
    return False


def log_internal_error(exc: BaseException, command: Sequence[str]) -> None:
    """The traceback as one JSON log record on stderr (no frame locals, secrets scrubbed)."""
    from oracle.logs import scrub_secrets

    record = {
        "event": "internal_error",
        "level": "critical",
        "logger": "oracle.cli",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "command": " ".join(command),
        "exception": "".join(traceback.format_exception(exc)),
    }
    print(scrub_secrets(json.dumps(record)), file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    from oracle.logs import scrub_secrets

    lines = str(exc).strip().splitlines()
    return scrub_secrets(lines[0]) if lines else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
