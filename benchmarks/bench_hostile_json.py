"""Hostile JSON benchmark: how fast a body built to crash or stall the parser is refused.

Run:  .venv/bin/python benchmarks/bench_hostile_json.py            # 20 runs per case
      .venv/bin/python benchmarks/bench_hostile_json.py --check    # exit 1 if a bar is missed

Issue 12 bar: a 200 kB hostile body becomes a typed error in < 100 ms, and the
process lives. Measured, in a process where web3 is imported (py_ecc raised the
recursion limit to 100,000, as in the daemon):

* ``loads_bounded`` alone on each hostile body (deep nesting, huge exponent,
  long numbers, escapes hiding brackets, NaN);
* the whole request through the real adapters against a local aiohttp server
  answering in the real format (Esplora status, blockchain.com block, bitcoind
  JSON-RPC batch, EVM JSON-RPC through ``BoundedAsyncHTTPProvider``);
* the cost on honest bodies: the bounds check against ``json.loads`` on a ~4 MB
  whole block in blockchain.com's format and on a small Esplora status;
* for reference, what a plain ``json.loads`` of the deep body does once web3 is
  imported (run in a child process: it is expected to die).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import web3  # noqa: E402  (py_ecc raises the recursion limit, as in the daemon)
from aiohttp import web  # noqa: E402

from oracle.sources.blockchain_com import BlockchainComSource  # noqa: E402
from oracle.sources.boundedjson import JsonRejected, check_bounds, loads_bounded  # noqa: E402
from oracle.sources.boundedweb3 import BoundedAsyncHTTPProvider  # noqa: E402
from oracle.sources.esplora import EsploraSource  # noqa: E402
from oracle.sources.rest import HttpPolicy  # noqa: E402
from oracle.sources.rpc import RpcClient, RpcCredentials  # noqa: E402
from tests.fixtures.restreplay import ReplayServer, whole_block_body  # noqa: E402

BAR_MS = 100.0
DEEP = "[" * 100_000 + "]" * 100_000
BODIES = {
    "deep array, 100,000 levels (200 kB)": DEEP,
    "deep object, 40,000 levels (200 kB)": '{"a":' * 40_000 + "1" + "}" * 40_000,
    "open brackets only (200 kB)": "[" * 200_000,
    "deep, interleaved [[] x 50,000 (200 kB)": "[[]" * 50_000 + "]" * 50_000,
    "escaped quotes hiding brackets (200 kB)": '["\\"' + "[" * 100_000 + '"' + "]" * 100_000,
    "200,000-digit integer": "[" + "1" * 200_000 + "]",
    '{"height": 1e1000000}': '{"height": 1e1000000}',
    "1,000-digit integer": '{"height": ' + "9" * 1000 + "}",
    "NaN": '{"height": NaN}',
}
FAST = HttpPolicy(connect_timeout_s=2, read_timeout_s=2, max_retries=0, rate_limit_per_s=0)


def timed(call: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(JsonRejected):
            call()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def atimed(call: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(Exception):  # each adapter's typed error (see the tests)
            await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(what: str, ms: list[float]) -> tuple[str, float, float]:
    return what, statistics.median(ms), max(ms)


async def serve(body: Callable[[web.Request], str]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=body(request), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def through_adapters(runs: int) -> list[tuple[str, float, float]]:
    def answer(request: web.Request) -> str:
        if request.path == "/blocks/tip/hash":
            return "00" * 32
        if request.method == "POST":  # bitcoind / EVM JSON-RPC
            return '[{"result": ' + DEEP + ', "error": null, "id": 1}]'
        return DEEP

    runner, url = await serve(answer)
    esplora = EsploraSource(name="evil", base_url=url, policy=FAST)
    bcom = BlockchainComSource(name="evil", base_url=url, policy=FAST)
    rpc = RpcClient(source="evil", url=url, credentials=RpcCredentials(), timeout_s=2)
    w3 = web3.AsyncWeb3(BoundedAsyncHTTPProvider(url))
    try:
        return [
            row("Esplora tip (status = deep array)", await atimed(esplora.tip, runs)),
            row(
                "blockchain.com header_at (deep array)",
                await atimed(lambda: bcom.header_at(830592), runs),
            ),
            row(
                "bitcoind RPC batch (result = deep array)",
                await atimed(lambda: asyncio.to_thread(rpc.call, "getbestblockhash"), runs),
            ),
            row(
                "EVM RPC eth_chainId via BoundedAsyncHTTPProvider",
                await atimed(lambda: w3.eth.chain_id, runs),
            ),
        ]
    finally:
        await esplora.close()
        await bcom.close()
        rpc.close()
        await w3.provider.disconnect()
        await runner.cleanup()


def honest(runs: int) -> list[tuple[str, float, float]]:
    block = whole_block_body(
        ReplayServer(kind="blockchain_com", tip_height=832608), 830592, min_bytes=4_000_000
    )
    status = '{"in_best_chain": true, "height": 830592, "next_best": null}'
    mb = len(block) / 1e6
    return [
        row(
            f"blockchain.com whole block ({mb:.1f} MB): bounds check",
            timed(lambda: check_bounds(block), runs),
        ),
        row(
            f"blockchain.com whole block ({mb:.1f} MB): json.loads alone",
            timed(lambda: json.loads(block, parse_float=Decimal), runs),
        ),
        row(
            "Esplora status (61 B): loads_bounded", timed(lambda: loads_bounded(status), runs * 50)
        ),
        row("Esplora status (61 B): json.loads", timed(lambda: json.loads(status), runs * 50)),
    ]


def plain_json_loads_exit() -> int:
    code = "import json, web3; json.loads('[' * 100000 + ']' * 100000)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--check", action="store_true", help="exit 1 if a bar is missed")
    args = parser.parse_args()
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, "
        f"recursion limit {sys.getrecursionlimit()} (web3 imported)"
    )
    rows = [
        row(f"loads_bounded: {name}", timed(lambda b=body: loads_bounded(b), args.runs))
        for name, body in BODIES.items()
    ]
    adapters = asyncio.run(through_adapters(args.runs))
    print(f"\n{'hostile body':<62} {'median ms':>10} {'max ms':>8}")
    for what, median, worst in rows + adapters:
        print(f"{what:<62} {median:>10.2f} {worst:>8.2f}")
    print(f"\n{'honest body':<62} {'median ms':>10} {'max ms':>8}")
    for what, median, worst in honest(args.runs):
        print(f"{what:<62} {median:>10.3f} {worst:>8.3f}")
    status = plain_json_loads_exit()
    print(
        f"\nplain json.loads of the deep body with web3 imported: exit status {status}"
        + (" (SIGSEGV)" if status == -11 else "")
    )
    missed = [what for what, median, _ in rows + adapters if median >= BAR_MS]
    if missed:
        print(f"bar missed (median >= {BAR_MS:g} ms): {missed}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
