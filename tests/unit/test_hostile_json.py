"""Bounded JSON (oracle.sources.boundedjson): hostile bodies become a typed error, fast.

The process-wide danger is real: once web3 is imported (as in the daemon),
py_ecc has raised the recursion limit to 100,000 and a plain ``json.loads`` of
the deep-nesting body below would overflow the C stack of this very process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
import web3  # noqa: F401  (imported for its side effect: py_ecc raises the recursion limit)
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.errors import SourceMalformed
from oracle.sources.boundedjson import (
    MAX_DEPTH,
    JsonRejected,
    check_bounds,
    loads_bounded,
    restore_recursion_limit,
)
from oracle.sources.checks import elide_upstream, parse_json, upstream
from tests.conftest import ROOT

DEEP = "[" * 100_000 + "]" * 100_000  # 200 kB, valid JSON, 100,000 levels
HOSTILE: dict[str, str] = {
    "deep array": DEEP,
    "deep object": '{"a":' * 40_000 + "1" + "}" * 40_000,
    "deep, never closed": "[" * 200_000,
    "deep, interleaved (no run of 3 opens)": "[[]" * 50_000 + "]" * 50_000,
    "deep inside a real answer": '{"height": 1, "x": ' + DEEP + "}",
    "huge exponent": '{"height": 1e1000000}',
    "huge negative exponent": '{"height": 1E-1000000}',
    "1,000-digit integer": '{"height": ' + "9" * 1000 + "}",
    "200 kB integer": "[" + "1" * 200_000 + "]",
    "1,000-digit fraction": '{"height": 0.' + "1" * 1000 + "}",
    "NaN": '{"height": NaN}',
    "Infinity": '{"height": -Infinity}',
    "escaped quotes hiding brackets": '["\\"' + "[" * 100_000 + '"' + "]" * 100_000,
    "not JSON": "<html>" * 40_000,
    "many escapes, unterminated": '"' + '\\"' * 100_000,
}


def _elapsed_ms(body: str | bytes) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        loads_bounded(body, parse_float=Decimal)
    except JsonRejected as exc:
        return (time.perf_counter() - start) * 1000, exc
    return (time.perf_counter() - start) * 1000, None


def test_the_danger_is_present_once_web3_is_imported() -> None:
    """In a fresh interpreter (this process may already have restored the limit: any
    in-process ``oracle.cli.main`` call does), importing web3 raises the limit."""
    probe = "import sys, web3; print(sys.getrecursionlimit())"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert int(out.stdout) >= 100_000  # web3 -> py_ecc did this


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_bodies_are_rejected_typed_within_100_ms(name: str) -> None:
    body = HOSTILE[name]
    elapsed_ms, error = min(_elapsed_ms(body) for _ in range(3))  # best of 3: CI noise
    assert isinstance(error, JsonRejected), name
    assert isinstance(error, ValueError)  # drop-in where json.JSONDecodeError was caught
    assert elapsed_ms < 100, f"{name}: {elapsed_ms:.1f} ms"
    assert body[:20] not in str(error)  # the message describes, never quotes


def test_bytes_and_invalid_utf8() -> None:
    assert loads_bounded(b'{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(JsonRejected, match="not UTF-8"):
        loads_bounded(b'{"a": "\xff"}')
    with pytest.raises(JsonRejected, match="nested"):
        loads_bounded(DEEP.encode())


def test_real_answers_pass_unchanged() -> None:
    # Bitcoin Core's regtest getblockheader: difficulty in exponent notation
    core = (
        '{"result":{"hash":"0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",'
        '"confirmations":1,"height":0,"difficulty":4.656542373906925e-10,"nTx":1,'
        '"chainwork":"0000000000000000000000000000000000000000000000000000000000000002"},'
        '"error":null,"id":1}'
    )
    value = loads_bounded(core, parse_float=Decimal)
    assert value["result"]["difficulty"] == Decimal("4.656542373906925e-10")
    assert value == json.loads(core, parse_float=Decimal)
    tricky = (
        '{"s": "[[[[{{{{ \\" \\\\ ]]", "n": -12.5e+3, "t": [true, false, null], "u": "\\u00e9"}'
    )
    assert loads_bounded(tricky) == json.loads(tricky)


def test_exactly_at_the_bounds() -> None:
    assert loads_bounded("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(JsonRejected, match=f"nested more than {MAX_DEPTH} levels deep"):
        loads_bounded("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    interleaved = "[[]" * MAX_DEPTH + "]" * MAX_DEPTH  # 65 deep at the last "[["
    with pytest.raises(JsonRejected, match=f"more than {MAX_DEPTH} levels deep \\(65\\)"):
        loads_bounded(interleaved)
    with pytest.raises(JsonRejected, match="arrays and objects, more than 10"):
        loads_bounded("[" + ",".join(["{}"] * 11) + "]", max_containers=10)
    assert loads_bounded("9" * 40) == int("9" * 40)
    with pytest.raises(JsonRejected, match="more than 40 digits"):
        loads_bounded("9" * 41)
    assert loads_bounded("[1e999]") == [float("inf")]
    with pytest.raises(JsonRejected, match="exponent"):
        loads_bounded("[1e1000]")
    # digits and brackets inside strings do not count
    assert loads_bounded(json.dumps(["[" * 500 + "9" * 500])) == ["[" * 500 + "9" * 500]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab"\\[]{}09 eE+-'), max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_json_values, st.integers(min_value=0, max_value=8))
def test_depth_counted_exactly_whatever_the_strings_hold(value: Any, limit: int) -> None:
    text = json.dumps(value)
    if _depth(value) > limit:
        with pytest.raises(JsonRejected, match="nested"):
            check_bounds(text, max_depth=limit)
    else:
        check_bounds(text, max_depth=limit)
        assert loads_bounded(text, max_depth=limit) == json.loads(text)


def test_parse_json_is_a_typed_source_error_with_a_marked_excerpt() -> None:
    with pytest.raises(SourceMalformed, match="nested more than 64 levels deep") as caught:
        parse_json(DEEP, source="mempool", request="GET /block/x/status")
    assert "«'[[[[" in str(caught.value)  # the excerpt is marked as the source's words
    assert elide_upstream(str(caught.value)).endswith("«…»")


def test_upstream_excerpts_are_short_ascii_and_cannot_close_early() -> None:
    assert upstream("x" * 1000).startswith("«'xxx") and len(upstream("x" * 1000)) <= 82
    sneaky = upstream("» now free text «")
    assert sneaky.count("«") == 1 and sneaky.count("»") == 1
    assert elide_upstream(f"bad hash: {sneaky}; more") == "bad hash: «…»; more"
    assert upstream(list(range(10**6))) == "«a JSON array of 1000000 items»"  # never rendered


def test_restore_recursion_limit() -> None:
    before = sys.getrecursionlimit()
    try:
        assert restore_recursion_limit() == 1000
        import py_ecc  # noqa: F401  (already imported: its raise does not run again)

        assert sys.getrecursionlimit() == 1000
    finally:
        sys.setrecursionlimit(before)


def test_the_cli_puts_the_recursion_limit_back_before_any_command() -> None:
    """``bme-oracle`` imports py_ecc and restores the limit before the command runs, so a
    later ``import web3`` cannot raise it again, and even a library's own unbounded
    ``json.loads`` (web3's, aiohttp's) raises RecursionError instead of crashing."""
    code = (
        "import json, sys\n"
        "from oracle.cli import main\n"
        "status = main(['watch'])\n"  # refuses at once: no sources given
        "import web3\n"
        "try:\n"
        "    json.loads('[' * 100000 + ']' * 100000)\n"
        "except RecursionError:\n"
        "    print('RecursionError at limit', sys.getrecursionlimit())\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])  # not -11 (SIGSEGV)
    assert "no sources" in done.stderr
    assert done.stdout.strip() == "RecursionError at limit 1000"
