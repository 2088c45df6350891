"""Shared test fixtures: the official UFTP schemas (the referee) and example payloads."""
from __future__ import annotations

import asyncio
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

SPEC = Path(__file__).resolve().parent.parent.parent / "shared" / "uftp-spec" / "xsd"
OFFICIAL_PARTS = ("UFTP-common.xsd", "UFTP-agr-cro.xsd", "UFTP-agr-dso.xsd", "UFTP-cro-dso.xsd")


@lru_cache(maxsize=None)
def _official_schema(version: str) -> etree.XMLSchema:
    folder = SPEC / version
    # The official files come per role; one schema that includes them all covers every message.
    includes = "".join(
        f'<xs:include schemaLocation="{(folder / part).as_uri()}"/>' for part in OFFICIAL_PARTS
    )
    union = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="qualified">'
        f"{includes}</xs:schema>"
    )
    return etree.XMLSchema(etree.fromstring(union.encode(), base_url=folder.as_uri() + "/"))


def missing_schemas() -> str | None:
    """Why the official schemas cannot be used, or None when every version's folder is there."""
    absent = [str(SPEC / v) for v in ("3.0.0", "3.1.0") if not (SPEC / v).is_dir()]
    if not absent:
        return None
    return (f"the official UFTP schemas are not at {', '.join(absent)}: put the specification's "
            "xsd/ folder (uftp-spec/xsd/3.0.0, 3.1.0, ...) in shared/uftp-spec/ beside this "
            "repository's folder, or symlink it there")


@pytest.fixture(scope="session")
def official_schema():
    """``official_schema(version)`` -> the official XSD of that version. Without them a test
    is skipped locally (the reason says how to provide them) but fails in CI (``CI`` set)."""
    reason = missing_schemas()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must check against the official schemas: {reason}")
        pytest.skip(reason)
    return _official_schema


METADATA = ("version", "message_id", "conversation_id", "time_stamp", "sender_domain",
            "recipient_domain")


def fresh(message_type: str, **fields: Any) -> dict[str, Any]:
    """The example payload of ``message_type`` without its metadata (what a client fills in),
    moved to now (so it passes the business rules' clock checks), with ``fields`` added or
    changed."""
    import datetime as dt

    from pyuftp.message.examples import example

    now = dt.datetime.now(dt.timezone.utc)
    payload = {k: v for k, v in example(message_type, now=now).items() if k not in METADATA}
    payload.update(fields)
    return payload


def run(coro: Any, timeout: float = 60.0) -> Any:
    """Run a test's coroutine, bounded in time."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def assert_officially_valid(schema: etree.XMLSchema, xml: str | bytes) -> None:
    root = etree.fromstring(xml.encode() if isinstance(xml, str) else xml)
    if not schema.validate(root):
        raise AssertionError(f"not valid against the official schema: {schema.error_log}")


@pytest.fixture(autouse=True)
def business_rules(request):
    """Which of pyuftp's business rules (``DEFAULT_RULES``) are on for a test.

    Transport tests exercise transport: their messages name the examples' message ids, which
    no archive of theirs holds, so only the stateless rules stay on for them ("stateless",
    the default). Rule tests, the demo, the README and the examples set ``RULES = "all"`` in
    their module; the interoperability tests, whose peer examples carry fixed 2024 dates,
    ``RULES = "none"``. The rules themselves are tested in test_rules*.py.
    """
    from pyuftp.rules import DEFAULT_RULES

    mode = getattr(request.module, "RULES", "stateless")
    saved = set(DEFAULT_RULES._enabled)
    if mode == "stateless":
        DEFAULT_RULES.disable(*[rule.id for rule in DEFAULT_RULES if rule.stateful])
    elif mode == "none":
        DEFAULT_RULES.disable(*[rule.id for rule in DEFAULT_RULES])
    try:
        yield mode
    finally:
        DEFAULT_RULES._enabled = saved


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory):
    """One mypy cache for the tests that run mypy on users' files: the first run checks
    pyuftp's modules, the next ones only their own file."""
    return tmp_path_factory.mktemp("mypy-cache")
