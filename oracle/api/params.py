"""Request-parameter parsing for the HTTP API: the bounds and the strict integer parsers.

Sits between the raw request and the handlers (``oracle.api.handlers``): every
path or query value a handler uses goes through one of these functions first,
and bad input becomes a JSON 400 (``ApiError`` with code ``bad_parameter``)
here, before any I/O. The same ``MAX_*`` bounds are documented in the OpenAPI
document by the route table (``oracle.api.routes``), so what is accepted and
what is documented cannot drift apart.

Parsing is deliberately narrower than ``int()``: digits only (no sign, spaces,
underscores or exponents), at most 12 digits for non-negative values and 19
for signed times, so an over-long value is refused without being converted.
"""

from __future__ import annotations

import re

from aiohttp import web

from oracle.api.context import ApiError

MAX_EPOCH = 999_999_999
MAX_N_DAYS = 14_000_000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 50
DEFAULT_DISAGREEMENTS = 100
#: ``?format=`` of the history endpoints.
FORMATS = ("json", "csv")
#: Unix times are accepted within signed 64 bits.
MAX_ABS_TIME = 2**63 - 1

_DIGITS = re.compile(r"[0-9]{1,12}")
_SIGNED = re.compile(r"-?[0-9]{1,19}")


def parse_non_negative(text: str, what: str, *, maximum: int) -> int:
    """``text`` as an integer 0..``maximum``, or a 400 naming ``what``."""
    if not _DIGITS.fullmatch(text) or int(text) > maximum:
        raise ApiError(
            400, "bad_parameter", f"{what} should be an integer 0..{maximum}, got {text!r}"
        )
    return int(text)


def parse_n_days(text: str) -> int:
    """The ``N`` of ``/v1/index/{n}``: a positive multiple of 14 up to ``MAX_N_DAYS``."""
    n = parse_non_negative(text, "N", maximum=MAX_N_DAYS) if _DIGITS.fullmatch(text) else -1
    if n <= 0 or n % 14:
        raise ApiError(400, "bad_parameter", f"N should be a positive multiple of 14, got {text!r}")
    return n


def parse_at(text: str | None, what: str = "at") -> int | None:
    """An optional unix time such as ``?at=`` (signed 64 bits); ``None`` when absent."""
    if text is None:
        return None
    if not _SIGNED.fullmatch(text) or abs(int(text)) > MAX_ABS_TIME:
        raise ApiError(400, "bad_parameter", f"{what} should be an integer unix time, got {text!r}")
    return int(text)


def query_value(request: web.Request, name: str) -> str | None:
    """The one value of query parameter ``name`` (None when absent). Given twice, it is
    ambiguous (``?limit=5&limit=500``): a 400, not a silent pick of the first."""
    values = request.query.getall(name, ())
    if len(values) > 1:
        raise ApiError(400, "bad_parameter", f"{name} should be given once, got {len(values)}")
    return values[0] if values else None


def query_range(request: web.Request) -> tuple[int | None, int | None]:
    """``?from=&to=`` of a history: optional unix times (``from`` after ``to``: no points)."""
    start = parse_at(query_value(request, "from"), "from")
    return start, parse_at(query_value(request, "to"), "to")


def query_csv(request: web.Request) -> bool:
    """``?format=``: ``json`` (the default) or ``csv``; True for CSV."""
    text = query_value(request, "format")
    if text is None:
        return False
    if text not in FORMATS:
        raise ApiError(
            400, "bad_parameter", f"format should be one of {', '.join(FORMATS)}, got {text!r}"
        )
    return text == "csv"


def query_int(
    request: web.Request, name: str, *, default: int | None, minimum: int, maximum: int
) -> int | None:
    """Query parameter ``name`` as an integer ``minimum..maximum``, or ``default`` if absent."""
    text = query_value(request, name)
    if text is None:
        return default
    value = parse_non_negative(text, name, maximum=maximum)
    if value < minimum:
        raise ApiError(400, "bad_parameter", f"{name} should be at least {minimum}, got {text!r}")
    return value
