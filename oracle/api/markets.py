"""``/v1/markets`` and ``/v1/markets/{name}``: the series of a BmeMarket, read from the chain.

Every other ``/v1`` answer comes from the database snapshot; these come from the
market contract on the publisher's EVM node (``[market] address``, ``publisher.rpc_url``),
because the market is the chain's state, not the oracle's. So that they can never
hold up the rest of the API:

* the contract is read at most once per ``market.cache_ttl_s`` however many clients
  ask (``oracle.monitor.cache.Refreshing``: one load in flight, shared), in a task of
  its own, and each load gives up after ``market.read_timeout_s``;
* an EVM node that is down, slow or on the wrong chain is a prompt 503
  (``market_unavailable``) naming the reason in the oracle's own words (no URL: RPC
  URLs carry provider keys); a failure is remembered for a second, so a burst of
  requests does not hammer a dead node;
* without a configured market both answer 404 (``no_market``).

A series is named as its tokens are (``BME14-4.85-5.4-261215``, or a token's name;
``5.40`` reads as ``5.4``); the shapes are ``oracle.market.present.series_json``,
which ``bme-oracle market status --json`` prints too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from oracle.api.bodies import Body, json_body, respond
from oracle.api.context import CONTEXT, ApiError
from oracle.api.params import query_value
from oracle.api.views import scrub
from oracle.config import Config
from oracle.errors import InputError
from oracle.monitor.cache import Refreshing

log = structlog.get_logger(__name__)
#: The form of a series or token name (``oracle.index.tokens``; its checks go further).
NAME_PATTERN = re.compile(
    r"[LS]?BME[1-9][0-9]{0,7}-(0|[1-9][0-9]{0,29})(\.[0-9]{1,7})?"
    r"-(0|[1-9][0-9]{0,29})(\.[0-9]{1,7})?-[0-9]{6}"
)
ADDRESS_PATTERN = re.compile(r"0x[0-9a-fA-F]{40}")
#: The dev chain id: anvil answers "latest" calls with a stale block time there, so the
#: market is read at the pending block (as the CLI does, ``oracle.commands.chain.evm``).
DEV_CHAIN_ID = 31337


@dataclass(frozen=True, slots=True)
class MarketReading:
    """One reading of the market: the rendered list and each series' JSON by name."""

    market: dict[str, Any]
    chain_time: int
    series: tuple[dict[str, Any], ...]
    body: Body
    by_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, market: dict[str, Any], chain_time: int, series: Sequence[dict[str, Any]]
    ) -> MarketReading:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for item in series:
            by_name.setdefault(item["name"], []).append(item)
        body = json_body({"market": market, "chain_time": chain_time, "series": list(series)})
        return cls(market, chain_time, tuple(series), body, by_name)

    def detail(self, name: str, collateral: str | None) -> Body:
        """The body of one series (by canonical name, and collateral if several share it)."""
        found = [
            item
            for item in self.by_name.get(name, [])
            if collateral is None or item["collateral"]["address"].lower() == collateral.lower()
        ]
        if not found:
            raise ApiError(404, "not_found", f"no series {name} on the market")
        if len(found) > 1:
            raise ApiError(
                400,
                "ambiguous_series",
                f"several series are named {name}; add ?collateral= with one of "
                + ", ".join(item["collateral"]["address"] for item in found),
            )
        return json_body({"market": self.market, "chain_time": self.chain_time, "series": found[0]})


class MarketView:
    """The market reading of one API (see the module docstring); closed with the app."""

    def __init__(self, config: Config) -> None:
        section = config.market
        self.address = section.address
        self.rpc_url = config.publisher.rpc_url
        self.chain_id = config.publisher.chain_id
        self.read_timeout_s = section.read_timeout_s
        self._w3: Any = None
        self._readings: Refreshing[MarketReading] = Refreshing(
            self._load, ttl_s=section.cache_ttl_s, error_ttl_s=1.0, name="api-markets"
        )

    async def reading(self) -> MarketReading:
        if not self.address:
            raise ApiError(
                404, "no_market", "this oracle serves no market ([market] address is not set)"
            )
        try:
            return await self._readings.get()
        except TimeoutError:
            reason = f"the EVM node did not answer within {self.read_timeout_s:g} s"
        except ApiError:
            raise
        except Exception as exc:  # whatever the node or the contract did: a 503 saying so
            reason = scrub(_first_line(exc)) or type(exc).__name__
        raise self._unavailable(reason)

    def _unavailable(self, reason: str) -> ApiError:
        return ApiError(
            503, "market_unavailable", f"cannot read the market {self.address}: {reason}"
        )

    def _connect(self) -> Any:
        if self._w3 is None:
            from oracle.publish.contract import connect

            self._w3 = connect(self.rpc_url, timeout_s=self.read_timeout_s)
        return self._w3

    async def _load(self) -> MarketReading:
        """One reading, bounded in time; a failure is logged once per load, not per request."""
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await self._read()
        except Exception as exc:
            log.warning("api_market_unavailable", market=self.address, error=_first_line(exc))
            raise

    async def _read(self) -> MarketReading:
        from oracle.market.chain import MarketContract
        from oracle.market.reads import describe

        w3 = self._connect()
        try:
            chain_id = await w3.eth.chain_id
        except OSError as exc:
            raise self._unavailable(f"the EVM node is unreachable ({type(exc).__name__})") from exc
        if chain_id != self.chain_id:
            raise self._unavailable(
                f"the EVM node is chain {chain_id}, not publisher.chain_id {self.chain_id}"
            )
        block = "pending" if chain_id == DEV_CHAIN_ID else "latest"
        w3.eth.default_block = block
        if not await w3.eth.get_code(self.address):
            raise self._unavailable(f"no contract there on chain {chain_id}")
        market = MarketContract(w3, self.address)
        infos = await market.list_series()
        series = await asyncio.gather(*(describe(w3, market, info) for info in infos))
        chain_time = int((await w3.eth.get_block(block))["timestamp"])
        about = {
            "address": market.address,
            "chain_id": chain_id,
            "oracle": await market.oracle(),
            "collaterals": list(await market.collateral_allowlist()),
        }
        return MarketReading.of(about, chain_time, series)

    async def close(self) -> None:
        await self._readings.close()
        if self._w3 is not None:
            await self._w3.provider.disconnect()
            self._w3 = None


def _first_line(exc: BaseException) -> str:
    """``Class: first line`` of an error (the node's own words are scrubbed by the caller)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


#: Where ``build_app`` puts the ``MarketView``.
MARKETS: web.AppKey[MarketView] = web.AppKey("bme_oracle_markets", MarketView)


def install(app: web.Application) -> None:
    """Give ``app`` its ``MarketView`` (from the context's configuration), closed on cleanup."""
    view = MarketView(app[CONTEXT].config)
    app[MARKETS] = view

    async def close(_app: web.Application) -> None:
        await view.close()

    app.on_cleanup.append(close)


async def list_markets(request: web.Request) -> web.Response:
    """Every series of the market: terms, tokens and supplies, ledger, settlement."""
    return respond(request, (await request.app[MARKETS].reading()).body)


async def get_market(request: web.Request) -> web.Response:
    """One series by name (``?collateral=`` picks among series of the same name).

    A name that is not of the form ``[L|S]BME<N>-<Floor>-<Cap>-<YYMMDD>`` is a 400; one
    of that form that no series can have (N not a multiple of 14, Floor >= Cap, no such
    date) is a 404 saying why, like a series nobody created."""
    from oracle.index.tokens import parse_series

    text = request.match_info["name"]
    if not NAME_PATTERN.fullmatch(text):
        raise ApiError(
            400,
            "bad_parameter",
            f"name should be a series or token name such as BME14-4.85-5.4-261215, "
            f"got {text[:80]!r}",
        )
    try:
        name = parse_series(text).series_name
    except InputError as exc:
        raise ApiError(404, "not_found", f"no series can be named so: {exc}") from None
    collateral = query_value(request, "collateral")
    if collateral is not None and not ADDRESS_PATTERN.fullmatch(collateral):
        raise ApiError(
            400, "bad_parameter", f"collateral should be a 0x address, got {collateral[:50]!r}"
        )
    reading = await request.app[MARKETS].reading()
    return respond(request, reading.detail(name, collateral))
