"""The ``pyuftp`` command line.

    pyuftp example FlexOffer     render an example message, parse it back, show both
    pyuftp keygen                print a new CS1 key pair
    pyuftp demo                  a full UFTP trading cycle between DSO, AGR and CRO on loopback
"""
from __future__ import annotations

import argparse
import pprint
import sys


def _example(args: argparse.Namespace) -> int:
    from . import create_message, parse_message
    from .examples import example

    xml = create_message(args.message_type, example(args.message_type, args.version),
                         version=args.version)
    message_type, payload = parse_message(xml)
    print(xml)
    print()
    print(message_type)
    pprint.pprint(payload, width=100, sort_dicts=True)
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from .crypto import SigningKey, generate_keypair

    private_key, public_key = generate_keypair()
    print(f"private key (keep secret): {private_key}")
    print(f"public key:                {public_key}")
    print(f"publish as:                {SigningKey(private_key).public_key_cs1}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    from .catalog import DEFAULT_VERSION, MESSAGE_TYPES, VERSIONS

    parser = argparse.ArgumentParser(prog="pyuftp", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    example = commands.add_parser("example", help="render and parse an example message")
    example.add_argument("message_type", nargs="?", default="FlexOffer", choices=MESSAGE_TYPES)
    example.add_argument("--version", default=DEFAULT_VERSION, choices=VERSIONS)
    example.set_defaults(run=_example)

    keygen = commands.add_parser("keygen", help="print a new CS1 signing key pair")
    keygen.set_defaults(run=_keygen)

    demo = commands.add_parser("demo", help="play a full UFTP cycle on 127.0.0.1")
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    demo.set_defaults(run=_demo)

    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
