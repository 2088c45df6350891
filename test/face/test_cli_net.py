"""``pyuftp send`` and ``pyuftp ping`` as subprocesses, against a real DSO service on
127.0.0.1 (run by this test process through the blocking facade, pyuftp.sync)."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

import pyuftp
from pyuftp.discovery import Directory
from pyuftp.server.service import ShapeshifterDsoService
from pyuftp.sync import SyncService

from conftest import fresh
from test_cli_ops import cli

AGR, DSO = "agr.example.com", "dso.example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dso(tmp_path: Path):
    """A DSO service on 127.0.0.1 that knows the AGR of ``tmp_path/agr.keys`` at the port
    ``tmp_path/agr.port`` names; it records the FlexOffers and TestMessages it gets."""
    assert cli("keygen", "--out", str(tmp_path / "agr.keys")).returncode == 0
    agr_port = free_port()
    directory = Directory()
    directory.add(AGR, "AGR", pyuftp.load_keys(tmp_path / "agr.keys").public_key,
                  f"http://127.0.0.1:{agr_port}/shapeshifter/api/v3/message")
    private, public = pyuftp.generate_keypair()
    (tmp_path / "dso.pub").write_text(f"public key: {public}\n")
    got: list[str] = []
    lock = threading.Lock()
    with SyncService(ShapeshifterDsoService, DSO, private, directory.key, directory.endpoint,
                     port=0, timeout=30) as service:
        def recorder(kind: str):
            def handle(payload: dict) -> None:
                with lock:
                    got.append(kind)
            return handle

        for kind in ("FlexOffer", "TestMessage"):
            service.add_handler(kind, recorder(kind))
        service.got, service.agr_port, service.folder = got, agr_port, tmp_path
        yield service


def wait_for(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded in time
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_send_signs_and_posts_several_files_with_progress(dso):
    folder = dso.folder
    for number in (1, 2):
        xml = pyuftp.create_message("FlexOffer", fresh("FlexOffer", sender_domain=AGR,
                                                       recipient_domain=DSO))
        (folder / f"offer{number}.xml").write_text(xml)
    result = cli("send", "--key", str(folder / "agr.keys"), "--to", dso.service.url,
                 str(folder / "offer1.xml"), str(folder / "offer2.xml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[1/2]" in result.stderr and "[2/2]" in result.stderr
    assert result.stdout.count("sent FlexOffer") == 2
    assert wait_for(lambda: dso.got.count("FlexOffer") == 2), dso.got


def test_send_reports_a_refusal_and_goes_on(dso):
    folder = dso.folder
    assert cli("keygen", "--out", str(folder / "stranger.keys")).returncode == 0
    xml = pyuftp.create_message("FlexOffer", fresh("FlexOffer", sender_domain=AGR,
                                                   recipient_domain=DSO))
    (folder / "offer.xml").write_text(xml)
    (folder / "junk.xml").write_text("<FlexOffer/>")
    result = cli("send", "--json", "--key", str(folder / "stranger.keys"), "--to",
                 dso.service.url, str(folder / "junk.xml"), str(folder / "offer.xml"))
    assert result.returncode == 1
    first, second = json.loads(result.stdout)
    assert first["sent"] is False and "version" in first["error"]
    assert second["sent"] is False and second["status"] == 401  # not the AGR's key
    assert dso.got == []


def test_ping_reports_the_http_status(dso):
    folder = dso.folder
    result = cli("ping", dso.service.url, "--domain", DSO, "--key", str(folder / "agr.keys"),
                 "--from", AGR, "--role", "AGR", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["status"] == 200
    assert wait_for(lambda: "TestMessage" in dso.got)


def test_ping_waits_for_the_answer_on_a_temporary_service(dso):
    folder = dso.folder
    result = cli("ping", dso.service.url, "--domain", DSO, "--key", str(folder / "agr.keys"),
                 "--from", AGR, "--role", "AGR", "--listen", f"127.0.0.1:{dso.agr_port}",
                 "--peer-key", str(folder / "dso.pub"), "--timeout", "20")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"TestMessageResponse from {DSO} in ")


def test_ping_of_a_silent_port_fails_with_1(tmp_path):
    assert cli("keygen", "--out", str(tmp_path / "agr.keys")).returncode == 0
    url = f"http://127.0.0.1:{free_port()}/shapeshifter/api/v3/message"
    result = cli("ping", url, "--domain", DSO, "--key", str(tmp_path / "agr.keys"), "--from", AGR,
                 "--role", "AGR", "--timeout", "5")
    assert result.returncode == 1
    assert "failed" in result.stdout and "cannot reach" in result.stdout
