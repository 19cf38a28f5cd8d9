"""What every command shares: the ``--json`` flag and printing its answer either way.

Here rather than in ``oracle.cli`` so command modules never import the CLI that
imports them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Every command takes ``--json`` for machine-readable output."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON with ``--json``, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=None, sort_keys=False))
    else:
        print(text)
