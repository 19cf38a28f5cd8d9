"""JSON from outside the process, parsed within bounds: a typed error, never a crash or a stall.

Why this exists: web3 imports py_ecc, which raises Python's recursion limit to
100,000 for the whole process; the C JSON decoder recurses once per nesting
level up to that limit, so ~200 kB of ``[[[[...`` overflows the C stack and
the process dies with SIGSEGV (no log line, no traceback). A number such as
``1e1000000`` parses in microseconds as a ``Decimal``, then costs seconds of
CPU in the ``int()`` a check does on it.

``loads_bounded`` refuses such input before ``json.loads`` sees it, with
linear passes that run in C (no recursion, no per-character Python loop):

1. the text outside strings is found by splitting at ``"``: parts alternate
   outside/inside, except that a part ending in an odd number of backslashes
   escaped its quote (a Python loop over the parts only when the text has a
   backslash). On any prefix ``json.loads`` accepts, this lexes exactly as the
   decoder does, so the depth counted is never below what it would reach;
2. the nesting depth is the maximum running sum of +1 per ``[``/``{`` and -1
   per ``]``/``}`` outside strings (``bytes.translate`` +
   ``itertools.accumulate`` + ``max``); the number of arrays and objects is
   bounded too (``max_containers``: ``{}`` is 2 bytes of text but ~64 bytes of
   memory, so a body of empty objects would multiply its size in memory 30-fold);
3. outside strings, a run of more than ``max_number_digits`` digits, or an
   exponent of more than ``max_exponent_digits`` digits, is refused (found by
   substring search after mapping digits to one byte). Bitcoin Core writes
   regtest difficulty as ``4.656542373906925e-10``, so exponents as such are
   allowed;
4. ``json.loads`` then parses, refusing ``NaN`` and ``Infinity``.

Every refusal is a ``JsonRejected`` (a ``ValueError``, so code that caught the
``json.JSONDecodeError`` of ``json.loads`` keeps working). A 200 kB hostile body
is refused in a few ms and a 4 MB whole block from blockchain.com checked in
~40 ms (``benchmarks/bench_hostile_json.py``).

``restore_recursion_limit`` undoes py_ecc's raise; ``oracle.cli.main`` calls it
before any command runs, as a second line of defence for JSON that other
libraries parse (web3's RPC replies, aiohttp's ``.json()``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from collections.abc import Callable
from itertools import accumulate, count
from operator import sub
from typing import Any

from oracle.errors import OracleError

#: Deepest nesting accepted. Every API the oracle reads nests at most ~6 levels.
MAX_DEPTH = 64
#: Longest run of digits accepted in a number (integer part or fraction).
MAX_NUMBER_DIGITS = 40
#: Longest exponent accepted, in digits: up to 1e999.
MAX_EXPONENT_DIGITS = 3
#: Most arrays + objects accepted in one body (a 4 MB whole block from blockchain.com
#: has ~32,000; a 32 MB one, the shipped cap, would have ~250,000).
MAX_CONTAINERS = 1_000_000
#: The interpreter's default limit, restored after py_ecc raised it to 100,000.
SAFE_RECURSION_LIMIT = 1000

_BRACKETS = b"[]{}"
_NON_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_OPEN = 2  # "[" and "{" become 2, "]" and "}" 0: depth after i brackets = sum - i
_DEPTH_TABLE = bytes.maketrans(_BRACKETS, bytes((_OPEN, 0, _OPEN, 0)))
#: Digits -> "1", e/E -> "e", signs -> "s", anything else -> "0" (numbers as shapes).
_NUMBER_TABLE = bytes(
    ord("1")
    if chr(b).isdigit() and b < 128
    else ord("e")
    if b in b"eE"
    else ord("s")
    if b in b"+-"
    else ord("0")
    for b in range(256)
)


class JsonRejected(OracleError, ValueError):
    """Not JSON, or JSON beyond the bounds (too deep, numbers too long, NaN/Infinity).

    A ``ValueError`` too, so code that caught ``json.loads``'s errors catches it unchanged.
    """


def _no_constants(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def check_bounds(
    text: str,
    *,
    max_depth: int = MAX_DEPTH,
    max_number_digits: int = MAX_NUMBER_DIGITS,
    max_exponent_digits: int = MAX_EXPONENT_DIGITS,
    max_containers: int = MAX_CONTAINERS,
) -> None:
    """Raise ``JsonRejected`` if ``text`` is beyond the bounds (nesting, containers, numbers)."""
    outside = _outside_strings(text).encode("utf-8", "surrogatepass")
    brackets = outside.translate(_DEPTH_TABLE, _NON_BRACKETS)
    containers = brackets.count(_OPEN)
    if containers > max_containers:
        raise JsonRejected(f"{containers} arrays and objects, more than {max_containers}")
    if containers > max_depth:  # else the depth cannot exceed it
        if bytes((_OPEN,)) * (max_depth + 1) in brackets:  # the usual attack, found at once
            raise JsonRejected(f"nested more than {max_depth} levels deep")
        depth = max(map(sub, accumulate(brackets), count(1)))
        if depth > max_depth:
            raise JsonRejected(f"nested more than {max_depth} levels deep ({depth})")
    shapes = outside.translate(_NUMBER_TABLE)
    if b"1" * (max_number_digits + 1) in shapes:
        raise JsonRejected(f"a number has more than {max_number_digits} digits")
    long_exponent = b"1" * (max_exponent_digits + 1)
    if b"e" + long_exponent in shapes or b"es" + long_exponent in shapes:
        raise JsonRejected(f"a number has an exponent of more than {max_exponent_digits} digits")


def _outside_strings(text: str) -> str:
    """The text outside JSON strings, each string replaced by ``""`` (see the module doc)."""
    parts = text.split('"')
    if "\\" not in text:  # no escapes: parts alternate outside, inside, outside, ...
        return '""'.join(parts[0::2])
    outside: list[str] = []
    inside = False
    for part in parts:
        if not inside:
            outside.append(part)
            inside = True
        elif (len(part) - len(part.rstrip("\\"))) % 2 == 0:  # this quote was not escaped
            inside = False
    return '""'.join(outside)


def loads_bounded(
    text: str | bytes | bytearray,
    *,
    max_depth: int = MAX_DEPTH,
    max_number_digits: int = MAX_NUMBER_DIGITS,
    max_exponent_digits: int = MAX_EXPONENT_DIGITS,
    max_containers: int = MAX_CONTAINERS,
    parse_float: Callable[[str], Any] = float,
) -> Any:
    """``json.loads`` for untrusted input: the value, or ``JsonRejected`` (never a crash).

    Bytes must be UTF-8. The message names what was wrong and where, never
    quotes the input (callers that want an excerpt add one, marked as such).
    """
    if not isinstance(text, str):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRejected(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    check_bounds(
        text,
        max_depth=max_depth,
        max_number_digits=max_number_digits,
        max_exponent_digits=max_exponent_digits,
        max_containers=max_containers,
    )
    try:
        return json.loads(text, parse_float=parse_float, parse_constant=_no_constants)
    except JsonRejected:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRejected(f"not JSON ({exc.msg} at {exc.pos})") from None
    except (ValueError, RecursionError) as exc:  # belt and braces: bounds should prevent these
        raise JsonRejected(f"not acceptable JSON ({type(exc).__name__})") from None


def restore_recursion_limit(limit: int = SAFE_RECURSION_LIMIT, *, preload: bool = True) -> int:
    """Lower the recursion limit to ``limit`` if something raised it; returns the limit now.

    With ``preload``, py_ecc (web3's dependency that raises the limit to
    100,000 when first imported) is imported first, so its one-time raise has
    happened and a later ``import web3`` cannot undo this.
    """
    if preload:
        with contextlib.suppress(ImportError):
            importlib.import_module("py_ecc")
    if sys.getrecursionlimit() > limit:
        sys.setrecursionlimit(limit)
    return sys.getrecursionlimit()
