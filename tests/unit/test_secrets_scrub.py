"""Secrets never reach a log line or an alert: URL keys, credentials, frame locals.

The log tests read what the real handler writes (``setup_logging`` as the
daemon calls it, stderr captured), not structlog's captured event dicts: the
promise is about the rendered line, whoever logged it (our code, web3's or
aiohttp's own loggers, a traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from oracle.logs import scrub_secrets, setup_logging
from tests.unit.test_alerts import Receiver, _alerter, receiver  # noqa: F401 (fixture)

KEY = "AbCdEf0123456789GhIjKlMnOpQrSt"
ALCHEMY = f"https://eth-mainnet.g.alchemy.com/v2/{KEY}"
INFURA_KEY = "9aa3d95b3bc440fa88ea12eaa4456161"
#: (text, secrets that must be gone, text that must stay)
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    (f"POST {ALCHEMY} failed", (KEY,), ("https://eth-mainnet.g.alchemy.com/v2/***", "failed")),
    (f"url='{ALCHEMY}/'", (KEY,), ("/v2/***/'",)),
    (f"https://mainnet.infura.io/v3/{INFURA_KEY}", (INFURA_KEY,), ("infura.io/v3/***",)),
    ("http://oracle:hunter2@127.0.0.1:8332/", ("hunter2", "oracle:"), ("http://***@127.0.0.1",)),
    ("wss://tok3nOnly@node.example/ws", ("tok3nOnly",), ("wss://***@node.example/ws",)),
    (
        "https://api.example/q?apikey=s3cr3t&height=830592",
        ("s3cr3t",),
        ("apikey=***", "height=830592"),
    ),
    ("https://rpc.example/#access_token=xyz987", ("xyz987",), ("access_token=***",)),
    (f"https://rpc.example/?k={KEY}", (KEY,), ("k=***",)),
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
        ("eyJhbGciOiJIUzI1NiJ9",),
        ("Bearer ***",),
    ),
    ("password=hunter2 user=oracle", ("hunter2",), ("password=***", "user=oracle")),
    ('{"rpc_password": "hunter2"}', ("hunter2",), ('"rpc_password": "***"',)),
    (f"({ALCHEMY})", (KEY,), ("/v2/***)",)),
]
#: Text that must come out unchanged: our own URLs and requests are not secrets.
KEPT = [
    "https://mempool.space/api/blocks/tip/hash",
    "http://127.0.0.1:8332/",
    "GET /block-height/830592?format=json",
    "https://blockchain.info/block-height/830592?format=json",
    "sqlite+aiosqlite:///var/dev/bme-oracle.sqlite",
    "tx 0x" + "ab" * 32 + " sent",
    "token SBME84-250-300-190718 priced",
]


@pytest.mark.parametrize(("text", "secrets", "kept"), CASES)
def test_scrub_secrets(text: str, secrets: tuple[str, ...], kept: tuple[str, ...]) -> None:
    scrubbed = scrub_secrets(text)
    for secret in secrets:
        assert secret not in scrubbed, scrubbed
    for part in kept:
        assert part in scrubbed, scrubbed


@pytest.mark.parametrize("text", KEPT)
def test_scrub_secrets_keeps_what_is_not_secret(text: str) -> None:
    assert scrub_secrets(text) == text


@pytest.fixture
def configured() -> Iterator[Any]:
    """``setup_logging`` as the daemon does it; the process's logging put back afterwards."""

    def configure(fmt: str) -> None:
        setup_logging(fmt=fmt, level="info")  # type: ignore[arg-type]

    try:
        yield configure
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if getattr(handler, "_bme_oracle", False):
                root.removeHandler(handler)
        structlog.reset_defaults()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_carry_no_key(
    fmt: str, configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configured(fmt)
    structlog.get_logger("oracle.test").warning(
        f"publish failed: POST {ALCHEMY} refused", rpc_url=ALCHEMY, error=f"HTTP 401 url={ALCHEMY}"
    )
    # web3 logs its endpoint in its own words, through the standard library
    logging.getLogger("web3.providers.rpc").warning("Making request HTTP. URI: %s", ALCHEMY)
    try:
        raise ConnectionError(f"Cannot connect to {ALCHEMY}")
    except ConnectionError:
        structlog.get_logger("oracle.test").exception("chain_unreachable")
    err = capsys.readouterr().err
    assert "alchemy.com/v2/***" in err
    assert KEY not in err


def _fails_with_secret_locals() -> None:
    password = "hunter2-in-a-frame"  # noqa: F841 (what rich would print)
    key_bytes = bytes.fromhex("deadbeef" * 8)  # noqa: F841
    raise RuntimeError("signing failed")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_tracebacks_show_no_frame_locals(
    fmt: str, configured: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import rich  # noqa: F401  (installed: structlog's console default would use it)

    configured(fmt)
    try:
        _fails_with_secret_locals()
    except RuntimeError:
        structlog.get_logger("oracle.test").exception("publish_failed")
    err = capsys.readouterr().err
    assert "signing failed" in err and "_fails_with_secret_locals" in err  # a traceback...
    assert "hunter2-in-a-frame" not in err  # ...without the frame's values
    assert "deadbeef" not in err and "de\\xad" not in err


async def test_webhook_alert_and_its_log_line_carry_no_key(
    receiver: tuple[Receiver, str],  # noqa: F811
    configured: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hook, url = receiver
    configured("json")
    alerter, _ = _alerter((url,))
    await alerter.alert(
        "publish_failed",
        f"eth_sendRawTransaction to {ALCHEMY} failed",
        key="412",
        rpc_url=ALCHEMY,
        detail={"endpoint": f"https://mainnet.infura.io/v3/{INFURA_KEY}", "attempts": 3},
    )
    await alerter.drain()
    await alerter.close()
    payload = hook.received[0]
    assert KEY not in repr(payload) and INFURA_KEY not in repr(payload)
    assert payload["message"] == (
        "eth_sendRawTransaction to https://eth-mainnet.g.alchemy.com/v2/*** failed"
    )
    assert payload["fields"]["detail"] == {
        "endpoint": "https://mainnet.infura.io/v3/***",
        "attempts": 3,
    }
    err = capsys.readouterr().err
    assert '"alert": "publish_failed"' in err
    assert KEY not in err and INFURA_KEY not in err
