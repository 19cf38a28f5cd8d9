"""Helpers shared by the repository sections: dialect-neutral upserts, JSON and hashing.

Store stage of DESIGN.md. Postgres and SQLite both speak ``INSERT ... ON
CONFLICT``; SQLAlchemy exposes it per dialect, so ``insert_for`` picks the
right construct for the session's engine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from oracle.errors import InputError
from oracle.store.session import Database

T = TypeVar("T")


def insert_for(session: AsyncSession, table: Any) -> Any:
    """``INSERT`` with ``on_conflict_do_*`` for the session's dialect."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise InputError(f"unsupported database dialect {name!r}")  # pragma: no cover


def jsonable(value: Any, where: str = "value") -> Any:
    """A JSON-safe deep copy: mappings -> dicts, sequences -> lists, bytes -> 0x hex."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise InputError(f"{where}: cannot store {type(value).__name__} {value!r:.60} as JSON")


def canonical_hash(value: Any) -> str:
    """sha256 hex of canonical JSON (sorted keys, no spaces): equal content, equal hash."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class RepositoryBase:
    """What every repository section needs: the database and its transaction runner."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def _tx(self, what: str, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await self._db.transaction(fn, what=what)

    async def _read1(self, what: str, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Like ``_tx`` for ``fn`` that runs exactly one read statement (cheaper)."""
        return await self._db.transaction(fn, what=what, single_read=True)
