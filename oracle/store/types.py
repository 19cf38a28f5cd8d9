"""Column types that keep exact values exact on both Postgres and SQLite.

Part of the store stage (DESIGN.md data flow: crosscheck -> store -> index).

* ``Uint256``: a non-negative integer up to 2^256-1 (wei amounts, the 10^18
  index integer). Postgres gets ``NUMERIC(78, 0)``. SQLite has no exact big
  numeric type (its NUMERIC affinity silently turns big integers into REAL),
  so there it is a ``VARCHAR(78)`` holding the decimal digits.
* ``UtcDateTime``: timezone-aware UTC datetimes. SQLite stores no offset, so
  values are normalised to UTC on the way in and tagged UTC on the way out; a
  naive datetime is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from oracle.errors import InputError

UINT256_MAX = (1 << 256) - 1


class Uint256(TypeDecorator[int]):
    """Exact unsigned 256-bit integer: NUMERIC(78, 0) on Postgres, decimal text on SQLite."""

    impl = Numeric(78, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(78))
        return dialect.type_descriptor(Numeric(78, 0, asdecimal=True))

    def process_bind_param(self, value: int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"expected an integer for a 256-bit column, got {value!r}")
        if not 0 <= value <= UINT256_MAX:
            raise InputError(f"value out of range for a 256-bit unsigned column: {value}")
        return str(value) if dialect.name == "sqlite" else Decimal(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)

    @property
    def python_type(self) -> type[int]:
        return int


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetime on every backend; naive datetimes are rejected."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise InputError(f"expected a datetime, got {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise InputError(
                f"datetime must be timezone-aware (UTC), got naive {value.isoformat()}"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
