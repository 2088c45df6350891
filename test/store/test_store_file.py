"""The SQLite store's file (issue #16.7 and the backlog of #16): the one-process lock is on
the file itself, whatever name, hard link or symlink opens it; a store file deleted or
replaced under a running service stops it accepting (5xx, never 200); the per-peer backlog
that ``max_backlog`` limits is counted from the store, so it survives a restart.

Real files, real processes (store_holder.py, store_service.py), real sockets on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

import pyuftp
import pyuftp.exceptions
from pyuftp.signing.envelope import seal_message
from pyuftp.exceptions import StoreError
from pyuftp.sending.outbox import Outbox
from pyuftp.store import MemoryStore, OutboxItem, SQLiteStore

from conftest import fresh

HERE = Path(__file__).resolve().parents[1]  # test/: the helper scripts
# children import the pyuftp this process imported (so a run against another tree tests it)
TREE = str(Path(pyuftp.__file__).resolve().parent.parent)
ENV = dict(os.environ, PYTHONPATH=TREE + os.pathsep + os.environ.get("PYTHONPATH", ""))
DSO_KEY, DSO_PUBLIC = pyuftp.generate_keypair()
AGR_KEY, AGR_PUBLIC = pyuftp.generate_keypair()
PATH = "/shapeshifter/api/v3/message"


def item(n: int, domain: str = "b", role: str = "DSO") -> OutboxItem:
    return OutboxItem(f"id-{n}", "FlexOffer", "a", domain, role, b"x", 1.0, 2.0)


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """The next line of the process's output, or '' if none came in ``timeout`` seconds."""
    if not select.select([process.stdout], [], [], timeout)[0]:
        return ""
    return process.stdout.readline().strip()


@contextmanager
def holder(path: Path, seconds: float = 30) -> Iterator[subprocess.Popen]:
    """store_holder.py on ``path``, once it has the store open; SIGKILLed at the end."""
    with subprocess.Popen([sys.executable, str(HERE / "store_holder.py"), str(path),
                           str(seconds)], env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:
        try:
            assert read_line(process, 20) == "open", process.stderr.read()
            yield process
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


def closed_port() -> int:
    """A loopback port nobody listens on (the AGR's endpoint is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def service(store: Path, log: Path, max_backlog: int = 1000,
            seconds: float = 120) -> Iterator[tuple[subprocess.Popen, int | None]]:
    """store_service.py on ``store`` (logging to ``log``): (process, its port or None if
    it ended without listening). Killed at the end."""
    url = f"http://127.0.0.1:{closed_port()}{PATH}"
    process = subprocess.Popen(
        [sys.executable, str(HERE / "store_service.py"), str(store), DSO_KEY, AGR_PUBLIC, url,
         str(max_backlog), str(seconds)],
        env=ENV, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    try:
        line = read_line(process, 30)
        yield process, int(line) if line.isdigit() else None
    finally:
        process.kill()
        process.wait(10)


def post(port: int, body: bytes, timeout: float = 10.0) -> int:
    """POST ``body`` on a new connection; the HTTP status."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; "
                     f"charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close"
                     "\r\n\r\n".encode() + body)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def test_message() -> bytes:
    payload = fresh("TestMessage", sender_domain="agr.example.com",
                    recipient_domain="dso.example.com")
    return seal_message("TestMessage", payload, AGR_KEY, "AGR")[0]


test_message.__test__ = False  # a helper, not a test


def quick_check(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("PRAGMA quick_check")]
    finally:
        conn.close()


# --- the lock is on the file ------------------------------------------------------------------

def test_a_hard_link_symlink_or_new_name_of_a_held_file_is_refused(tmp_path):
    path = tmp_path / "held.sqlite"
    link, symlink, renamed = tmp_path / "link.sqlite", tmp_path / "sym.sqlite", tmp_path / "moved"
    with holder(path) as process:
        os.link(path, link)
        symlink.symlink_to(path)
        for other in (path, link, symlink):
            with pytest.raises(StoreError, match=rf"in use by another process \(pid "
                                                 rf"{process.pid}\); one process per SQLite"):
                SQLiteStore(other)
        path.rename(renamed)  # the holder's file under a new name is still its file
        with pytest.raises(StoreError, match=rf"in use by another process \(pid {process.pid}"):
            SQLiteStore(renamed)
        renamed.rename(path)
    assert process.returncode == -signal.SIGKILL
    # The OS dropped the dead process's lock, but its last commits are in held.sqlite-wal,
    # which SQLite finds only by that name: by another name they would be lost, then replayed
    # over newer pages (a corrupt file). So that name first, once.
    with pytest.raises(StoreError, match=r"it is also .*held\.sqlite \(a hard link\), whose "
                                         r"journal .*held\.sqlite-wal holds transactions"):
        SQLiteStore(link)
    with SQLiteStore(path) as store:
        assert [i.message_id for i in store.outgoing()] == ["held"]
    with SQLiteStore(link) as store:  # closed cleanly: its journal was folded in
        assert [i.message_id for i in store.outgoing()] == ["held"]
    assert quick_check(path) == ["ok"]


def test_a_second_process_on_a_hard_link_does_not_start(tmp_path):
    path, link = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    with holder(path) as first:
        os.link(path, link)
        second = subprocess.run([sys.executable, str(HERE / "store_holder.py"), str(link), "5"],
                                env=ENV, capture_output=True, text=True, timeout=30)
        assert second.returncode != 0 and "open" not in second.stdout
        assert f"in use by another process (pid {first.pid})" in second.stderr


def test_in_process_by_another_name_and_a_foreign_lock_note(tmp_path):
    path, link = tmp_path / "mine.sqlite", tmp_path / "alias.sqlite"
    first = SQLiteStore(path)
    try:
        os.link(path, link)
        with pytest.raises(StoreError, match=r"another store object of this process .*opened "
                                             r"as .*mine\.sqlite"):
            SQLiteStore(link)
        first.add_outgoing(item(1))  # the refusal left the first one's file alone
    finally:
        first.close()
    # a lock note about another file (or from an older pyuftp) decides nothing
    Path(f"{path}.lock").write_text("1 0:0\n")
    with holder(path) as process:  # its own note now; from the link, /proc/locks names it
        Path(f"{link}.lock").write_text(f"{os.getpid()} 1:2\n")
        with pytest.raises(StoreError, match=rf"another process \(pid ({process.pid}|unknown)"):
            SQLiteStore(link)
    with SQLiteStore(path) as store:  # the killed holder's journal goes by this name
        assert [i.message_id for i in store.outgoing()] == ["id-1", "held"]
    for suffix in ("", ".lock"):
        assert stat.S_IMODE(os.stat(f"{path}{suffix}").st_mode) == 0o600


def test_two_services_one_file_by_two_names(tmp_path):
    path, link = tmp_path / "dso.sqlite", tmp_path / "dso-link.sqlite"
    with service(path, tmp_path / "first.log") as (first, port):
        assert port is not None, (tmp_path / "first.log").read_text()[-2000:]
        os.link(path, link)
        with service(link, tmp_path / "second.log") as (second, other_port):
            assert other_port is None, "the second service started"
            second.wait(30)
            log = (tmp_path / "second.log").read_text()
            assert second.returncode != 0, log[-2000:]
            assert "StoreError" in log and f"in use by another process (pid {first.pid})" in log
        assert post(port, test_message()) == 200  # the first one serves on
    assert quick_check(path) == ["ok"]


# --- a store file deleted or replaced while in use ------------------------------------------

@pytest.mark.parametrize("how", ["unlink", "rename", "replace"])
def test_a_lost_store_file_refuses_everything(tmp_path, caplog, how):
    path = tmp_path / "lost.sqlite"
    store = SQLiteStore(path)
    try:
        assert store.record_received("a", "m1", "d", b"x", 1.0) == "new"
        if how == "unlink":
            path.unlink()
        elif how == "rename":
            path.rename(tmp_path / "elsewhere.sqlite")
        else:
            path.unlink()
            sqlite3.connect(path).close()  # another file by that name
        with caplog.at_level(logging.ERROR, logger="pyuftp"):
            for n in range(3):  # at once, not after a second
                with pytest.raises(StoreError, match=r"lost\.sqlite was (deleted|replaced).*"
                                                     r"nothing more is accepted"):
                    store.record_received("a", f"m{n + 2}", "d", b"x", 1.0)
            for call in (store.unhandled, lambda: store.add_outgoing(item(1))):
                with pytest.raises(StoreError, match="nothing more is accepted"):
                    call()
        errors = [r for r in caplog.records if "nothing more is accepted" in r.getMessage()]
        assert len(errors) == 1 and errors[0].levelno == logging.ERROR  # once
        assert str(path) in errors[0].getMessage()
    finally:
        store.close()


def test_other_writes_notice_a_lost_file_within_a_second(tmp_path):
    path = tmp_path / "lost.sqlite"
    with SQLiteStore(path) as store:
        store.add_outgoing(item(1))
        path.unlink()
        deadline = time.monotonic() + 5
        with pytest.raises(StoreError, match="deleted"):
            while time.monotonic() < deadline:  # bounded: CHECK_INTERVAL is 1 s
                store.add_outgoing(item(2))
                time.sleep(0.05)
        assert time.monotonic() < deadline


def test_a_service_whose_store_file_is_deleted_answers_5xx_not_200(tmp_path):
    path = tmp_path / "dso.sqlite"
    log = tmp_path / "service.log"
    with service(path, log) as (process, port):
        assert port is not None, log.read_text()[-2000:]
        assert post(port, test_message()) == 200
        path.unlink()
        statuses = [post(port, test_message()) for _ in range(5)]
        assert all(500 <= status < 600 for status in statuses), statuses
        assert process.poll() is None  # refusing, not dead
    lines = log.read_text().splitlines()
    errors = [line for line in lines if line.startswith("ERROR pyuftp.store")]
    assert len(errors) == 1 and str(path) in errors[0] and "deleted" in errors[0], errors


# --- the backlog survives a restart -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_pending_counts(tmp_path, kind):
    store = SQLiteStore(tmp_path / "counts.sqlite") if kind == "sqlite" else MemoryStore()
    with store:
        assert store.pending_counts() == {}
        ids = [store.add_outgoing(item(n, "b" if n % 3 else "c", "DSO")) for n in range(9)]
        store.add_outgoing(item(9, "b", "CRO"))
        store.mark_delivered(ids[1])
        store.mark_failed(ids[2], "no", 400)
        store.mark_retry(ids[4], 1, 5.0, "later", 503)  # still pending
        store.claim_due(10.0)  # claimed: still pending
        assert store.pending_counts() == {("b", "DSO"): 4, ("c", "DSO"): 3, ("b", "CRO"): 1}


def test_an_outbox_counts_what_an_earlier_process_left_pending(tmp_path):
    path = tmp_path / "outbox.sqlite"

    async def never(item: OutboxItem) -> None:
        raise pyuftp.exceptions.TemporaryDeliveryError("down")

    async def scenario() -> None:
        with SQLiteStore(path) as store:
            outbox = Outbox(store, never, first_backoff=60)
            for n in range(7):
                await outbox.submit(item(n))
            assert outbox.backlog(("b", "DSO")) == 7
        with SQLiteStore(path) as store:  # a new process, as far as the outbox knows
            outbox = Outbox(store, never, first_backoff=60)
            await outbox.submit(item(7))
            await outbox.start()
            try:
                assert outbox.backlog(("b", "DSO")) == 8  # not 1: counted, not remembered
            finally:
                await outbox.stop()
    asyncio.run(scenario())


def test_max_backlog_holds_across_a_restart(tmp_path):
    path = tmp_path / "dso.sqlite"
    limit = 5
    with service(path, tmp_path / "first.log", max_backlog=limit) as (first, port):
        assert port is not None, (tmp_path / "first.log").read_text()[-2000:]
        statuses = []
        for _ in range(4 * limit):  # bounded: the answers pile up, the peer being down
            statuses.append(post(port, test_message()))
            if statuses[-1] == 503:
                break
            time.sleep(0.05)
        assert statuses.count(200) >= limit and statuses[-1] == 503, statuses
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    with SQLiteStore(path) as store:
        assert store.pending_counts()[("agr.example.com", "AGR")] >= limit
    with service(path, tmp_path / "second.log", max_backlog=limit) as (_, port):
        assert port is not None, (tmp_path / "second.log").read_text()[-2000:]
        assert post(port, test_message()) == 503  # at once: the backlog is in the store
