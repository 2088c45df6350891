"""Key commands: ``keygen`` (a new keys file) and ``keys dns`` (the DNS records a party
publishes). The keys-file format is :mod:`pyuftp.signing.keyfile`'s."""
from __future__ import annotations

import argparse
import os
import re
import sys

from ._common import OK, Commands, Usage, add_command, public_key, role

#: what the ``_usef`` TXT record says: the USEF version implemented (the spec's example)
USEF_VERSION = "2015"


def _keygen(args: argparse.Namespace) -> int:
    from ..signing.crypto import SigningKey
    from ..signing.keyfile import format_keys

    text = format_keys(SigningKey.generate())
    if args.out is None:
        sys.stdout.write(text)
        return OK
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(args.out, flags, 0o600)  # private from its first byte
    except FileExistsError:
        raise Usage(f"{args.out!r} exists: pyuftp never overwrites a keys file") from None
    except OSError as exc:
        raise Usage(f"cannot create {args.out!r}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(text)
    print(f"wrote {args.out} (mode 600); publish: {text.splitlines()[2].split()[-1]}",
          file=sys.stderr)
    return OK


def add_keygen(commands: Commands[argparse.ArgumentParser]) -> None:
    parser = add_command(
        commands, "keygen", "make a new CS1 signing key pair (a keys file)",
        "Generate an Ed25519 key pair for signing UFTP messages and print it as a keys "
        "file: the private key (base64, keep it secret), the public key (base64) and the "
        "cs1. string to publish for other parties. pyuftp.load_keys(path) reads the file; "
        "give others the file without its private line.", _keygen)
    parser.add_argument("--out", metavar="FILE",
                        help="write the keys file here (made readable by you only; an "
                             "existing file is never overwritten) instead of stdout")


def dns_records(domain: str, party_role: str, keys: list[str], endpoint_host: str,
                ttl: int, usef_version: str = USEF_VERSION) -> list[str]:
    """The zone-file lines a party publishes: ``_usef`` TXT, ``_<role>._usef`` TXT with its
    one or two ``cs1.`` keys, ``_http._<role>._usef`` CNAME to its endpoint's host."""
    base = domain.strip().rstrip(".").lower()
    label = f"_{party_role.lower()}._usef.{base}."
    names = [f"_usef.{base}.", label, f"_http.{label}"]
    width = max(len(n) for n in names)
    target = endpoint_host.strip().rstrip(".").lower() + "."
    return [
        f"; UFTP records of {base} as {party_role}; publish them in a DNSSEC-signed zone",
        f"{names[0]:<{width}} {ttl} IN TXT   \"{usef_version}\"",
        f"{names[1]:<{width}} {ttl} IN TXT   \"{' '.join(keys)}\"",
        f"{names[2]:<{width}} {ttl} IN CNAME {target}",
    ]


_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
                                 r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.?", re.IGNORECASE)


def _keys_dns(args: argparse.Namespace) -> int:
    for name, value in (("--domain", args.domain), ("--endpoint-host", args.endpoint_host)):
        if value is not None and not _NAME.fullmatch(value):
            raise Usage(f"{name} {value[:80]!r} is not a domain name")
    if not 1 <= len(args.key) <= 2:
        raise Usage("give one --key, or two during a key rotation (the old and the new)")
    keys = [public_key(value).public_key_cs1 for value in args.key]
    if len(set(keys)) != len(keys):
        raise Usage("the two --key options name the same key")
    for line in dns_records(args.domain, args.role, keys, args.endpoint_host or args.domain,
                            args.ttl, args.usef_version):
        print(line)
    return OK


def add_keys(commands: Commands[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "keys", "key publishing (keys dns)",
                        "Commands about publishing keys.", lambda _args: OK)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    parser = add_command(
        actions, "dns", "print the DNS records to publish",
        "Print, as zone-file lines, the DNS records through which other parties find your "
        "key and endpoint: _usef TXT (the USEF version), _<role>._usef TXT (your cs1. key; "
        "two during a key rotation) and _http._<role>._usef CNAME (your endpoint's host). "
        "See the key rotation procedure in the docs (keys page).", _keys_dns)
    parser.add_argument("--domain", required=True, help="your domain, e.g. dso.example.com")
    parser.add_argument("--role", required=True, type=role, help="your role: AGR, CRO, DSO")
    parser.add_argument("--key", action="append", default=[], metavar="KEY",
                        help="a keys file or public key; give it twice during a rotation")
    parser.add_argument("--endpoint-host", metavar="HOST",
                        help="the host your service listens on (default: --domain)")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    parser.add_argument("--usef-version", default=USEF_VERSION,
                        help=f"the _usef TXT value (default {USEF_VERSION})")
