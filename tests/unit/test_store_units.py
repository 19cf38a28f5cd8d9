"""Pure parts of the store: exact column types, input validation, JSON, error classification.

Why: these decide whether a value is stored exactly and whether a failure is
retried, reported as a conflict, or as an unreachable database; they are
checked here without a database, the behaviour end to end in tests/integration.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import exc
from sqlalchemy.dialects import postgresql, sqlite

from oracle.errors import InputError, SchemaOutdated, StoreConflict, StoreUnavailable
from oracle.store import validate
from oracle.store._sql import canonical_hash, jsonable
from oracle.store.models import Base
from oracle.store.session import is_transient, translate, validate_url
from oracle.store.types import UINT256_MAX, Uint256, UtcDateTime

PG, LITE = postgresql.dialect(), sqlite.dialect()


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_uint256_round_trips_exactly_on_both_dialects(value: int) -> None:
    column = Uint256()
    on_pg = column.process_bind_param(value, PG)
    on_lite = column.process_bind_param(value, LITE)
    assert on_pg == Decimal(value) and on_lite == str(value)
    assert column.process_result_value(on_pg, PG) == value
    assert column.process_result_value(on_lite, LITE) == value


@pytest.mark.parametrize("bad", [-1, UINT256_MAX + 1, 1.5, "12", True])
def test_uint256_rejects_what_it_cannot_store_exactly(bad: object) -> None:
    with pytest.raises(InputError):
        Uint256().process_bind_param(bad, PG)  # type: ignore[arg-type]


def test_uint256_is_numeric_78_on_postgres_and_text_on_sqlite() -> None:
    assert str(Uint256().dialect_impl(PG).compile(dialect=PG)) == "NUMERIC(78, 0)"
    assert str(Uint256().dialect_impl(LITE).compile(dialect=LITE)) == "VARCHAR(78)"


def test_no_float_columns_except_latency() -> None:
    floats = [
        f"{t.name}.{c.name}"
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if c.type.python_type is float
    ]
    assert floats == ["source_health.latency_ms"]


def test_utc_datetime_normalises_and_refuses_naive() -> None:
    column = UtcDateTime()
    plus_two = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert column.process_bind_param(plus_two, LITE) == datetime(2024, 1, 1, 10)  # noqa: DTZ001
    assert column.process_bind_param(plus_two, PG) == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert column.process_result_value(datetime(2024, 1, 1, 10), LITE) == datetime(  # noqa: DTZ001
        2024, 1, 1, 10, tzinfo=UTC
    )
    with pytest.raises(InputError, match="naive"):
        column.process_bind_param(datetime(2024, 1, 1), PG)  # noqa: DTZ001


def test_validation_normalises_hex_and_names_the_bad_value() -> None:
    assert validate.block_hash_hex("AB" * 32) == "ab" * 32
    assert validate.address("0x" + "AB" * 20) == "0x" + "ab" * 20
    with pytest.raises(InputError, match="'0x12'"):
        validate.address("0x12")
    with pytest.raises(InputError, match="bits should be <= 4294967295"):
        validate.bits(1 << 32)
    with pytest.raises(InputError, match="unknown network 'bitcoin'"):
        validate.network("bitcoin")
    with pytest.raises(InputError, match="80 bytes"):
        validate.raw_header(b"\x00", required=True)


def test_jsonable_and_canonical_hash() -> None:
    value = {"b": b"\x01\x02", "a": [1, (2, 3)], "n": 2**200}
    assert jsonable(value) == {"b": "0x0102", "a": [1, [2, 3]], "n": 2**200}
    assert canonical_hash({"x": 1, "y": 2}) == canonical_hash({"y": 2, "x": 1})
    with pytest.raises(InputError, match=r"report\.when"):
        jsonable({"when": datetime.now(UTC)}, "report")


def _dbapi_error(
    message: str, cls: type[exc.DBAPIError] = exc.OperationalError, **attrs: object
) -> exc.DBAPIError:
    orig = Exception(message)
    for key, value in attrs.items():
        setattr(orig, key, value)
    return cls("SELECT 1", {}, orig)


def test_transient_errors_are_retried_and_others_not() -> None:
    assert is_transient(ConnectionRefusedError(111, "refused"))
    assert is_transient(_dbapi_error("terminating connection", sqlstate="57P01"))
    assert is_transient(_dbapi_error("the database system is starting up", sqlstate="57P03"))
    assert is_transient(_dbapi_error("database is locked"))
    assert not is_transient(_dbapi_error("duplicate key", exc.IntegrityError, sqlstate="23505"))
    assert not is_transient(_dbapi_error('database "x" does not exist', sqlstate="3D000"))


def test_translate_maps_to_the_store_error_tree_and_redacts() -> None:
    url = "postgresql+asyncpg://oracle:pw@db:5432/oracle"
    conflict = translate(
        _dbapi_error('duplicate key value violates unique constraint "uq_x"', exc.IntegrityError),
        url,
    )
    assert isinstance(conflict, StoreConflict) and "uq_x" in str(conflict)
    missing = translate(
        _dbapi_error('relation "retargets" does not exist', exc.ProgrammingError, sqlstate="42P01"),
        url,
    )
    assert isinstance(missing, SchemaOutdated) and "bme-oracle db upgrade" in str(missing)
    down = translate(ConnectionRefusedError(111, "Connect call failed"), url)
    assert isinstance(down, StoreUnavailable)
    assert "oracle:***@db:5432" in str(down) and "pw" not in str(down).replace("***", "")


def test_validate_url() -> None:
    assert validate_url("sqlite+aiosqlite:///x.sqlite")
    with pytest.raises(InputError, match="postgresql\\+asyncpg://"):
        validate_url("postgresql://u:secret@h/db")
    with pytest.raises(InputError, match="not a database URL"):
        validate_url("::::")
