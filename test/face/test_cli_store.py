"""``pyuftp outbox ...`` and ``pyuftp archive ...`` as subprocesses on real SQLite stores,
and the store method they added, ``retry_outgoing``, on both backends."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import pyuftp
from pyuftp.store.archiving import entry
from pyuftp.discovery import Directory
from pyuftp.signing.envelope import wrap
from pyuftp.server.service import ShapeshifterDsoService
from pyuftp.store import MemoryStore, OutboxItem, SQLiteStore, open_store
from pyuftp.sync import SyncService

from conftest import fresh
from test_cli_ops import cli

AGR, DSO = "agr.example.com", "dso.example.com"


def signed_offer(private_key: str) -> tuple[bytes, dict, bytes]:
    """(SignedMessage, payload as sent, payload XML) of a new FlexOffer from the AGR."""
    xml, sent = pyuftp.message.codec.build_message(
        "FlexOffer", fresh("FlexOffer", sender_domain=AGR, recipient_domain=DSO))
    return wrap(xml, private_key, AGR, "AGR"), sent, xml.encode()


def item(body: bytes, message_id: str) -> OutboxItem:
    now = time.time()
    return OutboxItem(message_id, "FlexOffer", AGR, DSO, "DSO", body, now, now + 3600)


@pytest.fixture
def store_file(tmp_path: Path):
    """A SQLite store with one pending, one failed and one delivered item (real signed
    FlexOffers), the AGR's keys at tmp_path/agr.keys."""
    assert cli("keygen", "--out", str(tmp_path / "agr.keys")).returncode == 0
    keys = pyuftp.load_keys(tmp_path / "agr.keys")
    path = tmp_path / "agr.sqlite"
    ids = {}
    with SQLiteStore(path) as store:
        for state in ("pending", "failed", "delivered"):
            body, sent, _ = signed_offer(keys.private_key)
            ids[state] = store.add_outgoing(item(body, sent["message_id"]))
        store.mark_failed(ids["failed"], "http://dso answered HTTP 503: down\nforged", 503)
        store.mark_delivered(ids["delivered"])
    return path, ids, keys


def test_outbox_list_shows_pending_and_failed(store_file):
    path, ids, _ = store_file
    result = cli("outbox", "list", "--store", f"sqlite:///{path}", "--json")
    assert result.returncode == 0, result.stderr
    listed = {r["id"]: r for r in json.loads(result.stdout)}
    assert set(listed) == {ids["pending"], ids["failed"]}
    assert listed[ids["failed"]]["last_status"] == 503
    text = cli("outbox", "list", "--store", str(path), "--state", "all").stdout
    assert len(text.splitlines()) == 3
    assert "forged" in text and "\nforged" not in text  # the peer's newline stays escaped


def test_outbox_show_opens_the_signed_message(store_file):
    path, ids, _ = store_file
    result = cli("outbox", "show", str(ids["failed"]), "--store", str(path))
    assert result.returncode == 0, result.stderr
    assert "'FlexOffer'" in result.stdout and "'offer_options'" in result.stdout
    missing = cli("outbox", "show", "999", "--store", str(path))
    assert missing.returncode == 1 and "no outbox item 999" in missing.stderr


def test_outbox_retry_without_to_requeues(store_file):
    path, ids, _ = store_file
    result = cli("outbox", "retry", "--all", "--store", str(path), "--retry-for", "2h")
    assert result.returncode == 0, result.stderr
    with SQLiteStore(path) as store:
        again = [i for i in store.outgoing("pending") if i.id == ids["failed"]][0]
    assert again.next_attempt_at <= time.time() and again.expires_at > time.time() + 7000


def test_outbox_retry_posts_now_to_a_real_service(store_file):
    path, ids, keys = store_file
    directory = Directory()
    directory.add(AGR, "AGR", keys.public_key, "http://127.0.0.1:9/unused")
    private, _ = pyuftp.generate_keypair()
    with SyncService(ShapeshifterDsoService, DSO, private, directory.key, directory.endpoint,
                     port=0, timeout=30) as dso:
        result = cli("outbox", "retry", str(ids["failed"]), str(ids["pending"]), "--store",
                     str(path), "--to", dso.service.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[2/2]" in result.stderr and result.stdout.count(": delivered") == 2
    with SQLiteStore(path) as store:
        assert {i.id for i in store.outgoing("delivered")} == set(ids.values())
    refused = cli("outbox", "retry", str(ids["delivered"]), "--store", str(path))
    assert refused.returncode == 1 and "was delivered" in refused.stderr


def test_outbox_forget_and_usage_errors(store_file, tmp_path):
    path, ids, _ = store_file
    kept = cli("outbox", "forget", "--before", "1d", "--store", str(path), "--json")
    assert json.loads(kept.stdout)["forgotten"] == {"delivered": 0, "failed": 0}
    time.sleep(0.01)
    gone = cli("outbox", "forget", "--before", "0s", "--store", str(path), "--json")
    assert json.loads(gone.stdout)["forgotten"] == {"delivered": 1, "failed": 1}
    assert cli("outbox", "forget", "--before", "soon", "--store", str(path)).returncode == 2
    missing = cli("outbox", "list", "--store", str(tmp_path / "typo.sqlite"))
    assert missing.returncode == 2 and not (tmp_path / "typo.sqlite").exists()


def test_a_store_in_use_is_named_not_a_traceback(store_file):
    path, _, _ = store_file
    with SQLiteStore(path):
        result = cli("outbox", "list", "--store", str(path))
    assert result.returncode == 1 and "in use by another process" in result.stderr


@pytest.fixture
def archive_file(tmp_path: Path):
    """A SQLite store whose archive holds a conversation: a FlexOffer sent by the AGR and,
    received from the DSO, its FlexOfferResponse (kept signed: not yet handled)."""
    agr_private, _ = pyuftp.generate_keypair()
    dso_private, dso_public = pyuftp.generate_keypair()
    (tmp_path / "dso.pub").write_text(f"public key: {dso_public}\n")
    body, offer, offer_xml = signed_offer(agr_private)
    answer_xml, answer = pyuftp.message.codec.build_message("FlexOfferResponse", fresh(
        "FlexOfferResponse", sender_domain=DSO, recipient_domain=AGR,
        conversation_id=offer["conversation_id"], flex_offer_message_id=offer["message_id"],
        result="Rejected", rejection_reason="too late"))
    signed_answer = wrap(answer_xml, dso_private, DSO, "DSO")
    with SQLiteStore(tmp_path / "agr.sqlite") as store:
        store.add_outgoing(item(body, offer["message_id"]),
                           archive=entry("out", "FlexOffer", offer, offer_xml, "AGR", "DSO"))
        store.record_received(DSO, answer["message_id"], "digest", signed_answer, time.time(),
                              archive=entry("in", "FlexOfferResponse", answer,
                                            answer_xml.encode(), "DSO", "AGR"))
        store.set_outcome("out", DSO, offer["message_id"], "Rejected", "too late")
    return tmp_path, offer, answer, offer_xml


def test_archive_query_and_timeline(archive_file):
    folder, offer, answer, _ = archive_file
    store = str(folder / "agr.sqlite")
    found = json.loads(cli("archive", "query", "--store", store, "--counterparty", DSO,
                           "--type", "FlexOffer", "--json").stdout)
    assert [m["message_id"] for m in found] == [offer["message_id"]]
    assert found[0]["outcome"] == "Rejected"
    timeline = cli("archive", "show", offer["conversation_id"], "--store", store)
    assert timeline.returncode == 0, timeline.stderr
    lines = timeline.stdout.splitlines()[1:]
    assert "-> FlexOffer" in lines[0] and "Rejected (too late)" in lines[0]
    assert "<- FlexOfferResponse" in lines[1]
    assert cli("archive", "query", "--store", store, "--type", "FlexOfer").returncode == 2


def test_archive_export_keeps_the_original_xml_and_verifies(archive_file):
    folder, offer, answer, offer_xml = archive_file
    result = cli("archive", "export", "--store", str(folder / "agr.sqlite"), "--conversation",
                 offer["conversation_id"], "--key", str(folder / "dso.pub"), "--out",
                 str(folder / "export"), "--json")
    assert result.returncode == 0, result.stderr
    sent, received = json.loads(result.stdout)["messages"]
    assert sent["payload_xml"].encode() == offer_xml
    assert received["signed_xml"].startswith("<SignedMessage")
    # delivered long since, yet the archive kept the envelope it was posted in (#23)
    assert sent["signed_xml"].startswith("<SignedMessage")
    assert sent["verification"]["now"]["checked"] is True
    assert received["verification"]["now"] == {
        "checked": True, "valid": True,
        "key": pyuftp.load_keys(folder / "dso.pub").public_key_cs1}
    assert (folder / "export" / "001-out-FlexOffer.xml").read_bytes() == offer_xml
    assert (folder / "export" / "002-in-FlexOfferResponse.signed.xml").exists()
    assert json.loads((folder / "export" / "export.json").read_text())["messages"]


def _postgresql() -> Any:
    import pg

    return open_store(pg.store_url(pg.new_schema()))


@pytest.mark.parametrize("make", [MemoryStore, lambda: SQLiteStore(":memory:"), _postgresql],
                         ids=["memory", "sqlite", "postgresql"])
def test_retry_outgoing_makes_a_failed_item_pending_again(make):
    with make() as store:
        first = store.add_outgoing(item(b"<SignedMessage/>", "m1"))
        second = store.add_outgoing(item(b"<SignedMessage/>", "m2"))
        store.mark_failed(first, "gone", 404)
        store.mark_delivered(second)
        now = time.time()
        store.retry_outgoing(first, now, now + 60)
        again = store.outgoing("pending")
        assert [i.id for i in again] == [first] and again[0].expires_at == now + 60
        assert again[0].last_error == "gone"  # kept for inspection
        assert [i.id for i in store.claim_due(now + 1)] == [first]
        with pytest.raises(ValueError, match="delivered"):
            store.retry_outgoing(second, now, now + 60)
        with pytest.raises(KeyError):
            store.retry_outgoing(99, now, now + 60)


def test_store_migrate_makes_and_upgrades_a_sqlite_store(tmp_path):
    path = tmp_path / "party.sqlite"
    made = cli("store", "migrate", f"sqlite:///{path}")
    assert made.returncode == 0 and "schema up to date" in made.stdout, made.stderr
    assert path.exists()
    again = cli("store", "migrate", str(path))  # a path is a store too; done already
    assert again.returncode == 0, again.stderr
    usage = cli("store", "migrate", "mysql://db.example.com/x")
    assert usage.returncode == 2 and "mysql" in usage.stderr, usage.stderr
