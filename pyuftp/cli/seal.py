"""Commands about signatures: ``sign`` (payload to SignedMessage), ``verify`` (check one)
and ``open`` (take one apart without checking it)."""
from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from ._common import (OK, Bad, Commands, Usage, add_command, add_file, add_json,
                      print_json, private_key, public_key, read_input, role)
from .messages import load


def sender_role(message_type: str, given: str | None) -> str:
    """The role that sends ``message_type``: ``given``, else the only one that may."""
    from ..message.catalog import spec

    roles = ("AGR", "CRO", "DSO")
    able = [r for r in roles if any(spec().may_send(r, to, message_type) for to in roles)]
    if given is not None:
        if given not in able:
            raise Usage(f"a {given} does not send {message_type} (sent by {', '.join(able)})")
        return given
    if len(able) != 1:
        raise Usage(f"{message_type} is sent by {', '.join(able)}: say which with --role")
    return able[0]


def _sign(args: argparse.Namespace) -> int:
    from ..signing.envelope import wrap

    key = private_key(args.key)
    loaded = load(read_input(args.file))
    if loaded.envelope is not None:
        raise Usage("this is a SignedMessage already; sign its payload (pyuftp open --xml)")
    signer = sender_role(loaded.message_type, args.role)
    data = wrap(loaded.payload_xml, key, loaded.payload["sender_domain"], signer)
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    return OK


def add_sign(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "sign", "seal a payload into a SignedMessage",
        "Validate a payload message (XML, or the JSON form) and seal it with a private key "
        "into a SignedMessage envelope, printed on stdout. The payload XML is sealed byte for "
        "byte as given; the envelope names the payload's sender domain and the sender's "
        "role (--role, needed only for types more than one role sends).", _sign)
    add_file(parser, "the payload message")
    parser.add_argument("--key", required=True, metavar="KEYFILE",
                        help="the keys file with your private key (pyuftp keygen)")
    parser.add_argument("--role", type=role, help="your role: AGR, CRO or DSO")


def _verify(args: argparse.Namespace) -> int:
    key = public_key(args.key)
    data = read_input(args.file)
    from ._common import is_signed_message

    if not is_signed_message(data):
        raise Bad("not a SignedMessage (a payload message carries no signature)")
    loaded = load(data, key)
    envelope = loaded.envelope
    assert envelope is not None
    result = {"valid": True, "sender_domain": envelope.sender_domain,
              "sender_role": envelope.sender_role, "message_type": loaded.message_type,
              "message_id": loaded.payload.get("message_id")}
    if args.json:
        print_json(result)
    else:
        print(f"{args.file}: signature valid: {loaded.message_type} "
              f"{result['message_id']} from {envelope.sender_domain} ({envelope.sender_role})")
    return OK


def add_verify(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "verify", "check the signature of a SignedMessage",
        "Check that a SignedMessage was sealed with the private key of the given public key, "
        "that the payload inside is valid and that it names the envelope's sender. Exit "
        "status 0: it verifies; 1: it does not (the reason is printed).", _verify)
    add_file(parser, "the SignedMessage")
    parser.add_argument("--key", required=True, metavar="PUBLIC",
                        help="the sender's public key (base64, cs1., or a keys file)")
    add_json(parser)


def _open(args: argparse.Namespace) -> int:
    from ..signing.crypto import SIGNATURE_BYTES
    from ..signing.envelope import open_envelope
    from ..exceptions import PyUFTPError
    from ._common import is_signed_message

    data = read_input(args.file)
    if not is_signed_message(data):
        raise Bad("not a SignedMessage")
    try:
        envelope = open_envelope(data)
    except PyUFTPError as exc:
        raise Bad(str(exc)) from None
    if len(envelope.sealed) < SIGNATURE_BYTES:
        raise Bad(f"the body holds {len(envelope.sealed)} bytes, fewer than a signature")
    signature, payload = envelope.sealed[:SIGNATURE_BYTES], envelope.sealed[SIGNATURE_BYTES:]
    if args.xml:
        sys.stdout.buffer.write(payload)
        return OK
    report: dict[str, Any] = {
        "sender_domain": envelope.sender_domain, "sender_role": envelope.sender_role,
        "signature": base64.b64encode(signature).decode("ascii"),
        "payload_xml": payload.decode("utf-8", "replace")}
    if args.json:
        print_json(report)
        return OK
    print(f"# sender: {envelope.sender_domain} ({envelope.sender_role})")
    print(f"# signature (base64, not checked): {report['signature']}")
    print(report["payload_xml"])
    return OK


def add_open(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "open", "take a SignedMessage apart (without checking it)",
        "Print what a SignedMessage holds: the sender domain and role its envelope names, "
        "the signature and the payload XML, without checking the signature (that is "
        "'pyuftp verify'). --xml prints only the payload XML, byte for byte, for a pipe.",
        _open)
    add_file(parser, "the SignedMessage")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--xml", action="store_true", help="print only the payload XML")
    add_json(output, "the parts")
