"""The PostgreSQL server the tests use: its URL is in PYUFTP_TEST_POSTGRESQL.

Without it the PostgreSQL tests skip, saying how to run them; with CI set they fail instead,
so that CI cannot pass without having run them. Each store gets a schema of its own, dropped
afterwards."""
from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

URL = os.environ.get("PYUFTP_TEST_POSTGRESQL", "")
HOW = ("PostgreSQL tests need a server: run `eval \"$(bash .ci/postgres.sh)\"` (as root: it "
       "installs Debian's postgresql and starts a throw-away server on 127.0.0.1), or set "
       "PYUFTP_TEST_POSTGRESQL=postgresql://user@127.0.0.1:port/db yourself")


def require() -> str:
    """The server's URL, or skip the test (fail it when CI is set)."""
    problem = None
    if not URL:
        problem = "PYUFTP_TEST_POSTGRESQL is not set"
    else:
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            problem = "psycopg is not installed (pip install '.[postgresql]')"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the PostgreSQL tests. {HOW}")
        pytest.skip(f"{problem}. {HOW}")
    return URL


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def store_url(schema: str, **options: Any) -> str:
    """The URL of the test server with pyuftp's options (schema=…, handling_lease=…)."""
    url = require()
    query = "&".join(f"{k}={v}" for k, v in {"schema": schema, **options}.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def fresh_store(**options: Any) -> Any:
    """A PostgreSQLStore in a new, empty schema."""
    from pyuftp.store.postgresql import PostgreSQLStore

    return PostgreSQLStore(require(), schema=new_schema(), **options)


def drop(schema: str | None) -> None:
    """Drop a test schema and everything in it."""
    if not schema or not schema.startswith("t_"):
        return
    import psycopg

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def dropped(store: Any) -> None:
    """After a test: drop the schema of a PostgreSQL store (others: nothing)."""
    if type(store).__name__ == "PostgreSQLStore":
        drop(store.schema)
