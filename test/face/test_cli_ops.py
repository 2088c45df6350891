"""The operator's command line on real files: validate, show, convert, sign, verify, open,
keygen, keys dns, and the manners of the whole (exit codes, help, pipes). Each command runs
as a subprocess, ``python -m pyuftp ...``. The commands that talk to a service are in
test_cli_net.py, the store's in test_cli_store.py."""
from __future__ import annotations

import argparse

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import pyuftp
from pyuftp.cli import build_parser
from pyuftp.message.catalog import MESSAGE_TYPES, VERSIONS
from pyuftp.message.examples import example
from pyuftp.message.json_form import from_json, to_json

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, stdin: bytes | None = None, cwd: Path = ROOT,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "pyuftp", *args], cwd=cwd, env=env,
                            input=stdin.decode() if stdin is not None else None,
                            capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A FlexOffer, a keys file (AGR) and its public part, and a bad FlexOffer."""
    xml = pyuftp.create_message("FlexOffer", example("FlexOffer"))
    (tmp_path / "offer.xml").write_text(xml)
    assert cli("keygen", "--out", str(tmp_path / "agr.keys")).returncode == 0
    lines = (tmp_path / "agr.keys").read_text().splitlines()
    (tmp_path / "agr.pub").write_text("\n".join(l for l in lines if not l.startswith("private")))
    bad = xml.replace('Power="-200000"', 'Power="abc"').replace('Price="180.00"', 'Price="x"')
    (tmp_path / "bad.xml").write_text(bad)
    return tmp_path


def test_validate_says_valid_and_exits_0(files):
    result = cli("validate", str(files / "offer.xml"))
    assert result.returncode == 0, result.stderr
    assert "valid FlexOffer 3.1.0" in result.stdout


def test_validate_names_every_error_in_dict_terms(files):
    result = cli("validate", "--json", str(files / "bad.xml"))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    fields = [e["field"] for e in report["errors"]]
    assert "FlexOffer.offer_options[0].isps[0].power" in fields
    assert "FlexOffer.offer_options[0].price" in fields
    assert len(fields) >= 2 and report["valid"] is False
    text = cli("validate", str(files / "bad.xml")).stdout
    assert "FlexOffer.offer_options[0].isps[0].power: 'abc' is not an integer" in text


def test_validate_reads_stdin_and_refuses_what_is_not_xml(files):
    result = cli("validate", "-", stdin=(files / "offer.xml").read_bytes())
    assert result.returncode == 0 and "valid FlexOffer" in result.stdout
    result = cli("validate", "-", stdin=b"<FlexOfer/>")
    assert result.returncode == 1 and "FlexOfer" in result.stdout


def test_validate_reports_business_rules(files):
    payload = example("FlexOffer")
    payload["offer_options"][0]["isps"][0]["start"] = 10_000  # past the period's last ISP
    xml = pyuftp.create_message("FlexOffer", payload, rules=False)
    (files / "rule.xml").write_text(xml)
    result = cli("validate", str(files / "rule.xml"))
    assert result.returncode == 1
    assert "rule:" in result.stdout
    assert cli("validate", "--no-rules", str(files / "rule.xml")).returncode == 0


def test_a_missing_file_is_a_usage_error():
    result = cli("validate", "/nonexistent/offer.xml")
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_sign_verify_open_round(files):
    signed = cli("sign", "--key", str(files / "agr.keys"), str(files / "offer.xml"))
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.startswith("<SignedMessage") and 'SenderRole="AGR"' in signed.stdout
    (files / "offer.signed.xml").write_text(signed.stdout)
    verified = cli("verify", "--key", str(files / "agr.pub"), str(files / "offer.signed.xml"))
    assert verified.returncode == 0, verified.stderr
    assert "signature valid: FlexOffer" in verified.stdout
    inner = cli("open", "--xml", str(files / "offer.signed.xml"))
    assert inner.stdout.encode() == (files / "offer.xml").read_bytes()
    parts = json.loads(cli("open", "--json", str(files / "offer.signed.xml")).stdout)
    assert parts["sender_domain"] == "agr.example.com" and len(parts["signature"]) == 88


def test_verify_refuses_another_key_and_a_changed_message(files):
    signed = cli("sign", "--key", str(files / "agr.keys"), str(files / "offer.xml")).stdout
    (files / "s.xml").write_text(signed)
    other = pyuftp.generate_keypair()[1]
    result = cli("verify", "--key", other, str(files / "s.xml"))
    assert result.returncode == 1 and "signature does not verify" in result.stderr
    result = cli("verify", "--key", str(files / "agr.pub"), str(files / "offer.xml"))
    assert result.returncode == 1 and "not a SignedMessage" in result.stderr


def test_sign_asks_for_the_role_where_the_type_leaves_it_open(files):
    xml = pyuftp.create_message("TestMessage", example("TestMessage"))
    (files / "test.xml").write_text(xml)
    result = cli("sign", "--key", str(files / "agr.keys"), str(files / "test.xml"))
    assert result.returncode == 2 and "--role" in result.stderr
    result = cli("sign", "--key", str(files / "agr.keys"), "--role", "agr",
                 str(files / "test.xml"))
    assert result.returncode == 0 and 'SenderRole="AGR"' in result.stdout


def test_show_prints_the_dict_and_checks_the_signature(files):
    shown = cli("show", str(files / "offer.xml"))
    assert shown.returncode == 0
    assert shown.stdout.startswith("'FlexOffer'\n{\n    'version': '3.1.0',")
    signed = cli("sign", "--key", str(files / "agr.keys"), str(files / "offer.xml")).stdout
    (files / "s.xml").write_text(signed)
    shown = cli("show", "--key", str(files / "agr.pub"), str(files / "s.xml"))
    assert "signature verified" in shown.stdout and "'offer_options'" in shown.stdout
    unchecked = cli("show", str(files / "s.xml"))
    assert "NOT checked" in unchecked.stdout
    wrong = cli("show", "--key", pyuftp.generate_keypair()[1], str(files / "s.xml"))
    assert wrong.returncode == 1


def test_convert_xml_to_json_and_back(files):
    as_json = cli("convert", str(files / "offer.xml"))
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["message_type"] == "FlexOffer"
    assert document["payload"]["isp_duration"] == "PT15M"
    assert document["payload"]["offer_options"][0]["price"] == "180.00"
    (files / "offer.json").write_text(as_json.stdout)
    back = cli("convert", str(files / "offer.json"))
    assert back.returncode == 0, back.stderr
    assert pyuftp.parse_message(back.stdout) == pyuftp.parse_message(
        (files / "offer.xml").read_text())


@pytest.mark.parametrize("version", VERSIONS)
def test_every_example_round_trips_through_json(version):
    for message_type in MESSAGE_TYPES:
        xml = pyuftp.create_message(message_type, example(message_type, version),
                                    version=version, rules=False)
        parsed = pyuftp.parse_message(xml)
        text = to_json(*parsed)
        assert json.loads(text)  # plain JSON
        again = from_json(text)
        assert again == parsed, message_type
        xml_again = pyuftp.create_message(*again, rules=False)
        assert pyuftp.parse_message(xml_again) == parsed, message_type


def test_keygen_writes_a_private_keys_file_that_load_keys_reads(files):
    path = files / "agr.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = pyuftp.load_keys(path)
    assert keys.private_key is not None and "..." in repr(keys)
    assert keys.private_key not in repr(keys)
    assert keys.verify_key.unseal(keys.signing_key.seal(b"x")) == b"x"
    public = pyuftp.load_keys(files / "agr.pub")
    assert public.private_key is None and public.public_key == keys.public_key
    again = cli("keygen", "--out", str(path))
    assert again.returncode == 2 and "never overwrites" in again.stderr


def test_load_keys_refuses_keys_that_do_not_belong_together(tmp_path):
    one, two = (cli("keygen").stdout.splitlines() for _ in range(2))
    (tmp_path / "mixed.keys").write_text("\n".join([one[0], two[1]]))
    with pytest.raises(pyuftp.InvalidKey, match="do not belong together"):
        pyuftp.load_keys(tmp_path / "mixed.keys")
    (tmp_path / "other.keys").write_text("secret: abc\n")
    with pytest.raises(pyuftp.InvalidKey, match="line 1") as caught:
        pyuftp.load_keys(tmp_path / "other.keys")
    assert "abc" not in str(caught.value)


def test_keys_dns_prints_the_zone_lines(files):
    new = cli("keygen").stdout
    (files / "new.keys").write_text(new)
    result = cli("keys", "dns", "--domain", "DSO.example.com", "--role", "dso", "--key",
                 str(files / "agr.pub"), "--key", str(files / "new.keys"),
                 "--endpoint-host", "uftp.dso.example.com")
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if not l.startswith(";")]
    old_cs1 = pyuftp.load_keys(files / "agr.pub").public_key_cs1
    new_cs1 = pyuftp.load_keys(files / "new.keys").public_key_cs1
    assert lines[0].split() == ["_usef.dso.example.com.", "3600", "IN", "TXT", '"2015"']
    assert lines[1].split()[:4] == ["_dso._usef.dso.example.com.", "3600", "IN", "TXT"]
    assert f'"{old_cs1} {new_cs1}"' in lines[1]
    assert lines[2].split() == ["_http._dso._usef.dso.example.com.", "3600", "IN", "CNAME",
                                "uftp.dso.example.com."]
    assert "PRIVATE" not in result.stdout.upper()
    three = cli("keys", "dns", "--domain", "d.example", "--role", "DSO", *(
        ["--key", str(files / "agr.pub")] * 3))
    assert three.returncode == 2


def test_example_through_a_closed_pipe_ends_quietly():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "pyuftp", "example", "FlexOffer"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_mistyped_type_gets_a_suggestion_not_a_list():
    result = cli("example", "FlexOfer")
    assert result.returncode == 2
    assert "did you mean 'FlexOffer'?" in result.stderr
    assert "FlexOfferRevocationResponse" not in result.stderr


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (sub)command parser below ``parser``, with its words: ("outbox", "list")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from _subcommands(sub, path + (name,))


def test_every_command_has_a_description_and_no_docs_path():
    top = cli("--help").stdout  # the real entry point, once
    assert "docs/" not in top
    found = dict(_subcommands(build_parser()))
    for command in ("example", "validate", "show", "convert", "sign", "verify", "open",
                    "send", "ping", "lookup", "outbox", "store", "archive", "keygen", "keys",
                    "demo"):
        assert f"\n    {command} " in top and (command,) in found, command
    for words in [("outbox", a) for a in ("list", "show", "retry", "forget")] + [
            ("archive", a) for a in ("query", "show", "export")] + [("keys", "dns"),
                                                                   ("store", "migrate")]:
        assert words in found, words
    for words, sub in found.items():  # the help of each, as `pyuftp WORDS --help` prints it
        text = sub.format_help()
        usage, _, rest = text.partition("\n\n")
        assert rest.strip() and not rest.lstrip().startswith(("positional", "options")), words
        assert "``" not in text and ":ref:" not in text and "docs/" not in text, words


def test_convert_names_the_field_of_a_bad_json_value(tmp_path):
    document = json.loads(to_json(*pyuftp.parse_message(pyuftp.create_message(
        "FlexOffer", example("FlexOffer")))))
    document["payload"]["period"] = "tomorrow"
    (tmp_path / "bad.json").write_text(json.dumps(document))
    result = cli("convert", str(tmp_path / "bad.json"))
    assert result.returncode == 1
    assert "FlexOffer.period: 'tomorrow'" in result.stderr
    (tmp_path / "other.json").write_text('{"type": "FlexOffer"}')
    result = cli("convert", str(tmp_path / "other.json"))
    assert result.returncode == 1 and '"message_type"' in result.stderr
