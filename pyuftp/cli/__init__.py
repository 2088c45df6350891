"""The ``pyuftp`` command line (``python -m pyuftp``, or ``pyuftp`` once installed).

Every command is one function ``add_NAME(commands)`` that makes its subparser (a one-line
summary, a description, its options, and ``run``: the function that does the work and
returns the exit status), listed once in :data:`COMMANDS`. To add a command: write its
``add_`` function (in the module of its family, or a new one) and add one line here. Heavy
imports happen inside the ``run`` functions, so ``--help`` stays quick.

Exit status: 0 ok, 1 the thing checked is bad (an invalid message, a signature that does not
verify, a failed delivery), 2 a usage error. See docs/cli.rst.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from . import archive, conformance, keys, lookup, messages, net, seal, simulate, store
from ._common import BAD, USAGE, Bad, Usage, fail
from ._format import format_payload, format_xml

__all__ = ["main", "build_parser", "COMMANDS", "format_payload", "format_xml"]

DESCRIPTION = ("pyuftp: the USEF Flex Trading Protocol (UFTP, Shapeshifter) as plain Python "
               "dicts, signed and sent over HTTP.")
EPILOG = ("Try 'pyuftp demo' first. 'pyuftp COMMAND --help' says what a command takes. "
          "Exit status: 0 ok, 1 the message, signature or delivery checked is bad, 2 usage.")

#: every command, in the order --help lists them: one line each
COMMANDS: tuple[Callable[..., None], ...] = (
    messages.add_example,
    messages.add_validate,
    messages.add_show,
    messages.add_convert,
    seal.add_sign,
    seal.add_verify,
    seal.add_open,
    net.add_send,
    net.add_ping,
    lookup.add_lookup_command,
    store.add_outbox,
    store.add_store,
    archive.add_archive,
    keys.add_keygen,
    keys.add_keys,
    net.add_demo,
    conformance.add_conformance,
    simulate.add_simulate,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pyuftp``."""
    from .. import __version__

    parser = argparse.ArgumentParser(prog="pyuftp", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"pyuftp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status."""
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    try:
        status = int(args.run(args))
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader went away (`pyuftp example | head`): say nothing more. stdout is
        # pointed at /dev/null so that the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BAD
    except Usage as exc:
        return fail(name, str(exc), USAGE)
    except Bad as exc:
        return fail(name, str(exc), BAD)
    except KeyboardInterrupt:
        return fail(name, "interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the store's, a key's, a network's: one line
        from ..exceptions import PyUFTPError

        if isinstance(exc, (PyUFTPError, OSError)):
            return fail(name, str(exc), BAD)
        raise
