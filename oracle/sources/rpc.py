"""Blocking JSON-RPC client for bitcoind, built on python-bitcoinrpc's ``AuthServiceProxy``.

Runs in worker threads (``BitcoindSource`` calls it through ``asyncio.to_thread``);
each call borrows one proxy from a small pool, because a proxy is one HTTP
connection and is not thread-safe. A proxy that saw any transport error is
thrown away, as python-bitcoinrpc's docs advise.

Why not ``AuthServiceProxy.batch_``: with Bitcoin Core >= 28 a JSON-RPC 2.0
success element has no ``"error"`` key and ``batch_`` does
``response['error']`` -> ``KeyError`` (jgarzik/python-bitcoinrpc PR #112, open);
it also raises on the first failing element and loses the rest. We post the
batch ourselves through the proxy's connection and read each element with
``.get("error")``, matched by id. (tests/unit/test_sources_bitcoind_rpc.py shows
both the upstream failure and our handling on Core 28's response format.)

Replies are read with our own ``_get_response``, not python-bitcoinrpc's: the
body is capped (``MAX_RPC_RESPONSE_BYTES``) and parsed by
``boundedjson.loads_bounded`` (nesting and number sizes bounded), so a hostile
or broken node gets a typed ``SourceOversized``/``SourceMalformed``, never a
crash; python-bitcoinrpc's own ``json.loads`` (unbounded, and its debug log of
the whole reply) is never used.
"""

from __future__ import annotations

import base64
import decimal
import http.client
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from bitcoinrpc.authproxy import (  # untyped: see [[tool.mypy.overrides]]
    USER_AGENT,
    AuthServiceProxy,
    EncodeDecimal,
    JSONRPCException,
)

from oracle.errors import (
    HeightNotFound,
    SourceAuthFailed,
    SourceError,
    SourceMalformed,
    SourceOversized,
    SourceTimeout,
    SourceUnavailable,
    SourceWarmingUp,
)
from oracle.sources.boundedjson import JsonRejected, loads_bounded
from oracle.sources.checks import upstream

RPC_IN_WARMUP = -28
RPC_INVALID_PARAMETER = -8
RPC_INVALID_ADDRESS_OR_KEY = -5
_NON_JSON_HTTP = -342
#: Largest RPC reply read (a batch of 2016 verbose headers is ~1.3 MB).
MAX_RPC_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RpcError:
    """One failed element of a batch (code and message as bitcoind sent them)."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class RpcCredentials:
    """User/password, or a cookie file re-read per connection (rewritten on each restart)."""

    user: str = ""
    password: str = ""
    cookie_file: str = ""

    def auth_header(self, source: str) -> bytes:
        user, password = self.user, self.password
        if self.cookie_file:
            try:
                text = Path(self.cookie_file).read_text(encoding="utf-8").strip()
            except FileNotFoundError as exc:
                # bitcoind deletes its cookie on shutdown and writes a new one on start
                raise SourceUnavailable(
                    f"cookie file {self.cookie_file} does not exist (is the node running?)",
                    source=source,
                ) from exc
            except OSError as exc:
                raise SourceAuthFailed(
                    f"cannot read cookie file {self.cookie_file}: {exc.strerror}", source=source
                ) from exc
            user, _, password = text.partition(":")
        return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class _Proxy(AuthServiceProxy):  # type: ignore[misc]
    """An ``AuthServiceProxy`` whose credentials come from a header, not the URL.

    Passwords are not percent-decoded by ``urlparse``; passing the header
    directly supports any password and keeps it out of the URL.
    """

    def __init__(
        self,
        url: str,
        auth_header: bytes,
        timeout_s: float,
        *,
        max_response_bytes: int = MAX_RPC_RESPONSE_BYTES,
    ) -> None:
        parts = urlsplit(url)
        super().__init__(
            f"{parts.scheme}://x:x@{parts.hostname}:{parts.port or 80}/", timeout=timeout_s
        )
        self._path = parts.path or "/"
        self._host = parts.hostname or ""
        self._auth = auth_header
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes

    def post(self, payload: Any) -> Any:
        conn: http.client.HTTPConnection = self._AuthServiceProxy__conn
        # bytes, not str: http.client then sends headers and body in one segment; a str
        # body goes out separately and Nagle + delayed ACK stall each call by ~40 ms
        body = json.dumps(payload, default=EncodeDecimal).encode()
        conn.request(
            "POST",
            self._path,
            body,
            {
                "Host": self._host,
                "User-Agent": USER_AGENT,
                "Authorization": self._auth.decode(),
                "Content-type": "application/json",
                # One request per connection: bitcoind's HTTP server writes headers and
                # body separately, and on a kept-alive connection Nagle + our delayed
                # ACK then stall every reply by ~40 ms; a local connect costs ~0.1 ms.
                "Connection": "close",
            },
        )
        if conn.sock is not None:
            conn.sock.settimeout(self._timeout_s)
        return self._get_response()

    def _get_response(self) -> Any:
        """The reply, capped and parsed within bounds (replaces python-bitcoinrpc's).

        Raises ``SourceOversized``/``SourceMalformed`` without source or request;
        ``RpcClient._post`` names them.
        """
        conn: http.client.HTTPConnection = self._AuthServiceProxy__conn
        response = conn.getresponse()
        media_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            # python-bitcoinrpc's code and wording: error_from_rpc reads 401 from it
            raise JSONRPCException(
                {
                    "code": _NON_JSON_HTTP,
                    "message": f"non-JSON HTTP response with '{response.status} "
                    f"{upstream(response.reason, 40)}' from server",
                }
            )
        cap = self._max_response_bytes
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared[:19]) > cap:
            raise SourceOversized(f"response of {declared} bytes exceeds the cap of {cap}")
        body = response.read(cap + 1)
        if len(body) > cap:
            raise SourceOversized(f"response exceeds the cap of {cap} bytes")
        try:
            return loads_bounded(body, parse_float=decimal.Decimal)
        except JsonRejected as exc:
            raise SourceMalformed(
                f"response rejected: {exc}: {upstream(body[:60].decode('utf-8', 'replace'))}"
            ) from exc

    def shut(self) -> None:
        self._AuthServiceProxy__conn.close()


def split_url_credentials(url: str) -> tuple[str, str, str]:
    """(url without user:password, user, password) — credentials percent-decoded."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, "", ""
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    clean = parts._replace(netloc=netloc).geturl()
    return clean, unquote(parts.username), unquote(parts.password or "")


def parse_batch_response(
    response: Any, ids: Sequence[int], *, source: str, request: str
) -> list[Any | RpcError]:
    """Results of a batch in request order, each a value or an ``RpcError``.

    Accepts legacy elements (``result`` and ``error: null``) and JSON-RPC 2.0
    elements (only ``result`` or only ``error``), matched by ``id``.
    """
    if not isinstance(response, list):
        raise SourceMalformed(
            f"batch response should be a JSON array, got {type(response).__name__}",
            source=source,
            request=request,
        )
    by_id: dict[Any, Any] = {}
    for element in response:
        if not isinstance(element, dict) or "id" not in element:
            raise SourceMalformed(
                f"batch element without id: {upstream(element)}", source=source, request=request
            )
        by_id[element["id"]] = element
    out: list[Any | RpcError] = []
    for rpc_id in ids:
        element = by_id.get(rpc_id)
        if element is None:
            raise SourceMalformed(
                f"batch response has no element for id {rpc_id}", source=source, request=request
            )
        error = element.get("error")
        if error is not None:
            if not isinstance(error, dict):
                raise SourceMalformed(
                    f"error should be an object, got {upstream(error)}",
                    source=source,
                    request=request,
                )
            code = error.get("code")
            out.append(
                RpcError(code if isinstance(code, int) else None, str(error.get("message", "")))
            )
        elif "result" not in element:
            raise SourceMalformed(
                f"batch element {rpc_id} has neither result nor error",
                source=source,
                request=request,
            )
        else:
            out.append(element["result"])
    return out


def error_from_rpc(err: RpcError, *, source: str, request: str) -> SourceError:
    """The typed source error for an RPC error element/exception."""
    # the node's own words are quoted as an excerpt (our -342 text already marks its part)
    said = err.message if err.code == _NON_JSON_HTTP else upstream(err.message)
    text = f"RPC error {err.code}: {said}"
    if err.code == RPC_IN_WARMUP:
        return SourceWarmingUp(f"node is warming up ({said})", source=source, request=request)
    if err.code == RPC_INVALID_PARAMETER and "out of range" in err.message:
        return HeightNotFound(
            f"height past the node's tip ({said})", source=source, request=request
        )
    if err.code == RPC_INVALID_ADDRESS_OR_KEY:
        return HeightNotFound(f"block not found ({said})", source=source, request=request)
    if err.code == _NON_JSON_HTTP and "401" in err.message:
        return SourceAuthFailed("wrong RPC credentials (HTTP 401)", source=source, request=request)
    if err.code == _NON_JSON_HTTP:
        return SourceUnavailable(f"non-JSON HTTP response: {said}", source=source, request=request)
    return SourceMalformed(text, source=source, request=request)


class RpcClient:
    """Thread-safe blocking client: ``call`` and ``batch`` with typed errors."""

    def __init__(
        self,
        *,
        source: str,
        url: str,
        credentials: RpcCredentials,
        timeout_s: float,
        max_response_bytes: int = MAX_RPC_RESPONSE_BYTES,
    ) -> None:
        self.source = source
        self.url = url
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self._idle: list[_Proxy] = []
        self._lock = threading.Lock()
        self._next_id = 0

    def _ids(self, n: int) -> list[int]:
        with self._lock:
            start = self._next_id
            self._next_id += n
        return list(range(start + 1, start + n + 1))

    def _borrow(self) -> _Proxy:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return _Proxy(
            self.url,
            self.credentials.auth_header(self.source),
            self.timeout_s,
            max_response_bytes=self.max_response_bytes,
        )

    def _post(self, payload: Any, request: str) -> Any:
        proxy = self._borrow()
        try:
            response = proxy.post(payload)
        except JSONRPCException as exc:
            proxy.shut()
            raise error_from_rpc(
                RpcError(exc.code, str(exc.message)), source=self.source, request=request
            ) from exc
        except TimeoutError as exc:
            proxy.shut()
            raise SourceTimeout(
                f"no answer within {self.timeout_s} s", source=self.source, request=request
            ) from exc
        except (SourceMalformed, SourceOversized) as exc:  # from _Proxy._get_response
            proxy.shut()
            raise type(exc)(str(exc), source=self.source, request=request) from exc
        except (OSError, http.client.HTTPException) as exc:
            proxy.shut()
            raise SourceUnavailable(  # http.client's text may quote what the server sent
                f"cannot reach {self.url}: {type(exc).__name__} {upstream(str(exc))}",
                source=self.source,
                request=request,
            ) from exc
        except ValueError as exc:  # http.client: a chunk size that is not a number
            proxy.shut()
            raise SourceMalformed(
                f"unreadable HTTP response ({type(exc).__name__})",
                source=self.source,
                request=request,
            ) from exc
        with self._lock:
            self._idle.append(proxy)
        return response

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any | RpcError]:
        """Several calls in one HTTP request; each element succeeds or fails on its own."""
        ids = self._ids(len(calls))
        request = "batch " + ",".join(f"{m}{tuple(p)}" for m, p in calls)[:200]
        payload = [
            {"jsonrpc": "2.0", "method": method, "params": params, "id": rpc_id}
            for rpc_id, (method, params) in zip(ids, calls, strict=True)
        ]
        response = self._post(payload, request)
        if isinstance(response, dict) and isinstance(response.get("error"), dict):
            # the whole batch was refused (e.g. warm-up before dispatch, bad request)
            error = response["error"]
            code = error.get("code")
            raise error_from_rpc(
                RpcError(code if isinstance(code, int) else None, str(error.get("message", ""))),
                source=self.source,
                request=request,
            )
        return parse_batch_response(response, ids, source=self.source, request=request)

    def call(self, method: str, *params: Any) -> Any:
        """One call; raises the typed error of a failing call."""
        request = f"{method}{params}"
        (result,) = self.batch([(method, list(params))])
        if isinstance(result, RpcError):
            raise error_from_rpc(result, source=self.source, request=request)
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for proxy in idle:
            proxy.shut()
