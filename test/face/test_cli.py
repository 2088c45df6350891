"""The command line: the demo (the main job), keygen, example."""
from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pyuftp
from pyuftp.signing.crypto import SigningKey, VerifyKey

RULES = "all"  # every business rule on (see conftest.business_rules)

ROOT = Path(__file__).resolve().parents[2]


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


def test_example_prints_the_dict_in_field_order():
    from pyuftp.message.catalog import MESSAGES

    result = pyuftp_cli("example", "FlexOffer")
    assert result.returncode == 0, result.stderr
    dict_part = result.stdout.split("'FlexOffer'\n", 1)[1]
    keys = re.findall(r"^    '(\w+)':", dict_part, re.M)
    assert keys[:3] == ["version", "sender_domain", "recipient_domain"]
    order = MESSAGES["3.1.0"]["FlexOffer"].keys()
    assert keys == [k for k in order if k in keys]


def test_help_has_no_rst_markup_and_every_command_a_description():
    for args in ([], ["example"], ["keygen"], ["demo"]):
        result = pyuftp_cli(*args, "--help")
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "``" not in text and ":class:" not in text and ":ref:" not in text
        usage, _, rest = text.partition("\n\n")
        assert rest.strip() and not rest.lstrip().startswith(("positional", "options")), args
        assert " a AGR" not in text and "an DSO" not in text


def test_example_help_lists_the_types_once():
    text = pyuftp_cli("example", "--help").stdout
    assert text.count("FlexOfferRevocationResponse") == 1
    assert "MESSAGE_TYPE" in text


def test_version_prints_the_version():
    result = pyuftp_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pyuftp {pyuftp.__version__}"


def test_example_refuses_an_unknown_type():
    result = pyuftp_cli("example", "FlexOfer")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
