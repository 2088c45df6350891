"""The command line: the demo (the main job), keygen, example."""
from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pyuftp
from pyuftp.crypto import SigningKey, VerifyKey

ROOT = Path(__file__).resolve().parent.parent


def pyuftp_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyuftp", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_demo_plays_a_full_cycle():
    result = pyuftp_cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    sent = re.findall(r"^-> (\S+): ", result.stdout, re.M)
    answered = re.findall(r"^<- (\S+): ", result.stdout, re.M)
    for message_type in ("TestMessage", "DSOPortfolioUpdate", "AGRPortfolioUpdate",
                         "DSOPortfolioQuery", "AGRPortfolioQuery", "D-Prognosis", "FlexRequest",
                         "FlexOffer", "FlexOrder", "FlexReservationUpdate", "FlexOfferRevocation",
                         "Metering", "FlexSettlement"):
        assert message_type in sent
        assert message_type + "Response" in answered
    assert len(sent) == len(answered) == 14
    assert re.search(r"^OK: 14 exchanges \(28 signed messages\)", result.stdout, re.M)


def test_keygen_prints_a_usable_pair():
    result = pyuftp_cli("keygen")
    assert result.returncode == 0
    private = re.search(r"private key \(keep secret\): (\S+)", result.stdout).group(1)
    public = re.search(r"public key:\s+(\S+)", result.stdout).group(1)
    cs1 = re.search(r"publish as:\s+(cs1\.\S+)", result.stdout).group(1)
    assert len(base64.b64decode(private)) == 64 and len(base64.b64decode(public)) == 32
    key = SigningKey(private)
    assert key.public_key == public
    assert VerifyKey(cs1).unseal(key.seal(b"<TestMessage/>")) == b"<TestMessage/>"


def test_example_renders_and_parses():
    result = pyuftp_cli("example", "FlexOrder", "--version", "3.0.0")
    assert result.returncode == 0, result.stderr
    xml = result.stdout.split("\n\n", 1)[0]
    assert pyuftp.parse_message(xml)[0] == "FlexOrder"
    assert 'Version="3.0.0"' in xml
