"""Schemathesis fuzzes the API from its own OpenAPI document: no 500s, answers match the document.

The server runs on a real port from its own thread (schemathesis' client is
synchronous) over a real store of mainnet retargets, on Postgres and SQLite.
Both valid and invalid inputs are generated; every built-in check runs
(server errors, status codes and content types the document declares,
response bodies against their schemas, 405 for unsupported methods, ...).
Examples are bounded so the suite stays fast.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from oracle.api import ROUTES
from oracle.api.openapi import build_document
from oracle.store.repository import open_repository
from tests.fixtures.postgres import BACKENDS, create_database, drop_database, sqlalchemy_url
from tests.integration.api_world import NET, ThreadedApi, fill

MAX_EXAMPLES = 25


@pytest_asyncio.fixture(scope="module", params=BACKENDS)
async def fuzz_store_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _store_templates: Any,
) -> AsyncIterator[str]:
    database = None
    if request.param == "sqlite":
        path = Path(tmp_path_factory.mktemp("fuzz")) / "store.sqlite"
        shutil.copyfile(await _store_templates.sqlite_template(), path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        database = await create_database(template=await _store_templates.postgres_template())
        url = sqlalchemy_url(database)
    repository = await open_repository(url)
    try:
        await fill(repository)
    finally:
        await repository.close()
    try:
        yield url
    finally:
        if database is not None:
            await drop_database(database)


@pytest.fixture(scope="module")
def base_url(fuzz_store_url: str) -> Iterator[str]:
    server = ThreadedApi(fuzz_store_url)
    url = server.start()
    try:
        # The document fuzzed below must be the one the server serves.
        served = requests.get(f"{url}/openapi.json", timeout=10).json()
        assert served == DOCUMENT
        yield url
    finally:
        server.stop()


# Built from the same route table as the served document (checked equal above);
# loaded at import because schemathesis' lazy fixture loader does not run on pytest 9.2.
DOCUMENT = json.loads(json.dumps(build_document(ROUTES, network=NET)))
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=10)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_api_has_no_server_errors_and_matches_its_document(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url)
